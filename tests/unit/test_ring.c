/*
 * test_ring.c - common/ring.c against the kernel's io_uring, without a server loop.
 *
 * A connection's slot is one end of a socketpair; the test writes requests into
 * the other end, receives them through the connection's multishot receive into
 * provided buffers, and checks what ring_rx_feed() made of them: a whole request
 * parsed where it lies, a split one put together, the buffer back in the ring each
 * time, bytes that come while the connection sends held for later, a connection
 * that holds too many paused. The answer goes out through ring_prep_send() and is
 * read back from the other end.
 *
 * Every case runs twice: with the connection's socket a direct descriptor in the
 * ring's table (where the kernel has them), then with plain fds
 * (C10K_RING_NO_DIRECT=1, the fallback).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "conn.h"
#include "fake_server.h"
#include "ring.h"
#include "server.h"

#define SMALL_TEXT "hello, world\n"
#define GET_SMALL "GET /small.txt HTTP/1.1\r\nHost: h\r\n\r\n"

static struct server s;
static struct ring r;
static int peer = -1;     /* the client's end of the socketpair */
static struct ring_rx rx; /* the connection's receive */
static bool want_direct;  /* the ring's sockets should be direct descriptors */

#define RX_DATA 7 /* the receive's user_data */

/* A connection on one end of a fresh socketpair; the other end is peer. Direct, the
 * end goes into the ring's table at the index of its fd number, and the fd is closed,
 * as the ring's accept would have left no fd. */
static struct conn *open_pair(void)
{
    int sv[2];
    if (!CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0))
        return NULL;
    peer = sv[1];
    ring_rx_init(&rx);
    if (r.direct) {
        CHECK_EQ_INT(io_uring_register_files_update(&r.uring, (unsigned)sv[0], &sv[0], 1), 1);
        close(sv[0]);
    }
    return server_open_conn(&s, sv[0]);
}

/* Submits what is queued and takes one completion, copied into out. */
static bool complete_one(struct io_uring_cqe *out)
{
    struct io_uring_cqe *cqe;
    if (!CHECK_EQ_INT(ring_wait(&r, 2000), 0) ||
        !CHECK_EQ_INT(io_uring_peek_cqe(&r.uring, &cqe), 0))
        return false;
    *out = *cqe;
    io_uring_cqe_seen(&r.uring, cqe);
    return true;
}

/* Arms c's receive if it is not, then takes its next completion into cqe. */
static bool next_rx(struct conn *c, struct io_uring_cqe *cqe)
{
    if (!rx.armed) {
        struct io_uring_sqe *sqe = ring_sqe(&r);
        ring_prep_recv(&r, sqe, c->fd, &rx);
        io_uring_sqe_set_data64(sqe, RX_DATA);
    }
    do {
        if (!complete_one(cqe))
            return false;
    } while (cqe->user_data != RX_DATA); /* a cancel's own completion */
    ring_rx_on_cqe(&r, &rx, cqe);
    return true;
}

/* Cancels the receive, waits for its last completion, then closes both ends. */
static void close_pair(struct conn *c)
{
    struct io_uring_cqe cqe;
    CHECK_EQ_INT(ring_rx_cancel(&r, &rx, RX_DATA), 0);
    while (rx.armed && next_rx(c, &cqe))
        ;
    ring_rx_drop(&r, &rx);
    ring_close_conn(&r, c);
    CHECK(io_uring_submit(&r.uring) >= 0); /* direct: the close, done at once */
    struct io_uring_cqe *done;             /* and silent: a completion would cost a turn */
    CHECK_EQ_INT(io_uring_peek_cqe(&r.uring, &done), -EAGAIN);
    if (peer >= 0)
        close(peer);
}

/* The buffer ring's tail: it moves on by one for each buffer given back. */
static unsigned ring_tail(void)
{
    return __atomic_load_n(&r.br->tail, __ATOMIC_ACQUIRE);
}

/* Writes text to the peer, receives it through the ring, hands it to c. */
static enum conn_want receive(struct conn *c, const char *text, size_t len)
{
    struct io_uring_cqe cqe;
    unsigned tail;
    if (!CHECK_EQ_INT(write(peer, text, len), len) || !next_rx(c, &cqe))
        return CONN_CLOSE;
    CHECK_EQ_INT(cqe.res, len);
    CHECK(cqe.flags & IORING_CQE_F_BUFFER);
    CHECK(cqe.flags & IORING_CQE_F_MORE); /* the receive stays armed */
    tail = ring_tail();
    enum conn_want want = ring_rx_feed(&r, &rx, c);
    CHECK_EQ_INT((unsigned short)(ring_tail() - tail), 1); /* the buffer is back */
    return want;
}

/* Sends what c plans through the ring; reads it back from the peer into buf. */
static size_t send_reply(struct conn *c, char *buf, size_t cap)
{
    struct conn_tx tx;
    struct msghdr msg;
    struct iovec iov[2];
    struct io_uring_cqe cqe;
    size_t got = 0;
    ssize_t n;

    conn_tx(c, &tx, true);
    if (!CHECK(tx.len > 0))
        return 0;
    struct io_uring_sqe *sqe = ring_sqe(&r);
    ring_prep_send(&r, sqe, c->fd, &tx, &msg, iov);
    io_uring_sqe_set_data64(sqe, RX_DATA + 1);
    if (!complete_one(&cqe) || !CHECK_EQ_INT(cqe.res, tx.len + tx.len2))
        return 0;
    CHECK_EQ_INT(conn_on_output(c, (size_t)cqe.res), CONN_READ);
    while (got < (size_t)cqe.res && (n = read(peer, buf + got, cap - got)) > 0)
        got += (size_t)n;
    return got;
}

static void ring_sets_up(void)
{
    CHECK(r.mode != NULL);
    CHECK(r.br != NULL && r.bufs != NULL);
    CHECK(r.fd_registered);              /* Linux 5.18+ */
    CHECK_EQ_INT(r.direct, want_direct); /* Linux 5.19+, unless C10K_RING_NO_DIRECT */
}

static void whole_request_is_answered_from_the_provided_buffer(void)
{
    char reply[1024];
    struct conn *c = open_pair();
    if (!c)
        return;
    CHECK_EQ_INT(receive(c, GET_SMALL, strlen(GET_SMALL)), CONN_WRITE);
    CHECK_EQ_INT(c->in_len, 0);
    size_t n = send_reply(c, reply, sizeof reply - 1);
    reply[n] = '\0';
    CHECK(strncmp(reply, "HTTP/1.1 200 ", 13) == 0);
    CHECK(n > strlen(SMALL_TEXT) && strcmp(reply + n - strlen(SMALL_TEXT), SMALL_TEXT) == 0);
    close_pair(c);
}

static void split_request_is_put_together(void)
{
    char reply[1024];
    struct conn *c = open_pair();
    if (!c)
        return;
    CHECK_EQ_INT(receive(c, GET_SMALL, 10), CONN_READ);
    CHECK_EQ_INT(c->in_len, 10);
    CHECK_EQ_INT(receive(c, GET_SMALL + 10, strlen(GET_SMALL) - 10), CONN_WRITE);
    CHECK(send_reply(c, reply, sizeof reply) > strlen(SMALL_TEXT));
    close_pair(c);
}

static void peer_close_ends_without_a_buffer(void)
{
    struct io_uring_cqe cqe;
    unsigned tail;
    struct conn *c = open_pair();
    if (!c)
        return;
    shutdown(peer, SHUT_WR);
    if (next_rx(c, &cqe)) {
        CHECK_EQ_INT(cqe.res, 0);
        CHECK(!(cqe.flags & (IORING_CQE_F_BUFFER | IORING_CQE_F_MORE))); /* its last */
        CHECK(!rx.armed);
        tail = ring_tail();
        CHECK_EQ_INT(ring_rx_feed(&r, &rx, c), CONN_CLOSE);
        CHECK_EQ_INT(ring_tail(), tail);
    }
    close_pair(c);
}

/* A pipelined request and the peer's FIN come while the first answer is unsent:
 * both wait in the receive's keeping, then the second is answered and c closes. */
static void bytes_that_come_while_sending_are_held(void)
{
    char reply[1024];
    struct io_uring_cqe cqe;
    struct conn *c = open_pair();
    if (!c)
        return;
    CHECK_EQ_INT(receive(c, GET_SMALL, strlen(GET_SMALL)), CONN_WRITE);
    CHECK_EQ_INT(write(peer, GET_SMALL, strlen(GET_SMALL)), strlen(GET_SMALL));
    shutdown(peer, SHUT_WR);
    while (rx.armed && next_rx(c, &cqe)) /* the second request, then the end */
        ;
    CHECK_EQ_INT(rx.held, 1);
    CHECK(rx.ended);
    CHECK(send_reply(c, reply, sizeof reply) > strlen(SMALL_TEXT));
    CHECK_EQ_INT(ring_rx_feed(&r, &rx, c), CONN_WRITE);
    CHECK_EQ_INT(rx.held, 0);
    CHECK(send_reply(c, reply, sizeof reply) > strlen(SMALL_TEXT));
    CHECK_EQ_INT(ring_rx_feed(&r, &rx, c), CONN_CLOSE);
    close_pair(c);
}

/* A connection that does not read while the peer keeps sending holds at most
 * RING_RX_HOLD buffers, and one more: then its receive is cancelled. */
static void a_connection_holding_too_much_is_paused(void)
{
    static char bytes[(RING_RX_HOLD + 1) * RING_BUF_SIZE];
    struct io_uring_cqe cqe;
    struct conn *c = open_pair();
    if (!c)
        return;
    memset(bytes, 'x', sizeof bytes);
    CHECK_EQ_INT(write(peer, bytes, sizeof bytes), sizeof bytes);
    for (int i = 0; i < 2 * RING_RX_HOLD && (i == 0 || rx.armed); i++)
        if (!next_rx(c, &cqe))
            break;
    CHECK(!rx.armed);
    CHECK_EQ_INT(cqe.res, -ECANCELED);
    CHECK_EQ_INT(rx.held, RING_RX_HOLD + 1);
    close_pair(c);
}

/* After a close, the peer reads the end of the stream: the socket is gone. */
static void close_ends_the_socket(void)
{
    char byte;
    struct conn *c = open_pair();
    if (!c)
        return;
    int fd = peer;
    peer = -1;
    close_pair(c); /* closes no peer */
    CHECK_EQ_INT(read(fd, &byte, 1), 0);
    close(fd);
}

/* The cases, once with the ring set up as the environment says. */
static void run_cases(const char *mode)
{
    char name[128];
    snprintf(name, sizeof name, "ring_init (%s)", mode);
    check_case(name);
    if (!CHECK_EQ_INT(ring_init(&r, &s), 0)) {
        ring_exit(&r);
        return;
    }
    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {
#define CASE(fn) {#fn, fn}
        CASE(ring_sets_up),
        CASE(whole_request_is_answered_from_the_provided_buffer),
        CASE(split_request_is_put_together),
        CASE(peer_close_ends_without_a_buffer),
        CASE(bytes_that_come_while_sending_are_held),
        CASE(a_connection_holding_too_much_is_paused),
        CASE(close_ends_the_socket),
#undef CASE
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(name, sizeof name, "%s (%s)", cases[i].name, mode);
        check_case(name);
        cases[i].run();
    }
    ring_exit(&r);
}

int main(void)
{
    alarm(30);
    fake_server_open(&s, "test_ring");
    fake_server_write("small.txt", SMALL_TEXT, strlen(SMALL_TEXT));
    unsetenv("C10K_RING_NO_DIRECT");
    want_direct = true;
    run_cases("direct descriptors");
    setenv("C10K_RING_NO_DIRECT", "1", 1);
    want_direct = false;
    run_cases("plain fds");
    fake_server_close(&s);
    return check_report();
}
