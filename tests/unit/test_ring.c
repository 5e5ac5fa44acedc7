/*
 * test_ring.c - common/ring.c against the kernel's io_uring, without a server loop.
 *
 * A connection's slot is one end of a socketpair; the test writes requests into
 * the other end, receives them through the ring into provided buffers, and checks
 * what ring_on_recv() made of them: a whole request parsed where it lies, a split
 * one put together, the buffer back in the ring each time. Then the answer goes out
 * through ring_prep_send() and is read back from the other end.
 */
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
static int peer = -1; /* the client's end of the socketpair */

/* A connection on one end of a fresh socketpair; the other end is peer. */
static struct conn *open_pair(void)
{
    int sv[2];
    if (!CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0))
        return NULL;
    peer = sv[1];
    return server_open_conn(&s, sv[0]);
}

static void close_pair(struct conn *c)
{
    server_close_conn(&s, c);
    close(peer);
}

/* Submits what is queued and takes one completion: its result and flags. */
static bool complete_one(int *res, unsigned *flags)
{
    struct io_uring_cqe *cqe;
    if (!CHECK_EQ_INT(ring_wait(&r, 2000), 0) ||
        !CHECK_EQ_INT(io_uring_peek_cqe(&r.uring, &cqe), 0))
        return false;
    *res = cqe->res;
    *flags = cqe->flags;
    io_uring_cqe_seen(&r.uring, cqe);
    return true;
}

/* The buffer ring's tail: it moves on by one for each buffer given back. */
static unsigned ring_tail(void)
{
    return __atomic_load_n(&r.br->tail, __ATOMIC_ACQUIRE);
}

/* Writes text to the peer, receives it through the ring, hands it to c. */
static enum conn_want receive(struct conn *c, const char *text, size_t len)
{
    int res;
    unsigned flags, tail;
    if (!CHECK_EQ_INT(write(peer, text, len), len))
        return CONN_CLOSE;
    ring_prep_recv(ring_sqe(&r), c);
    if (!complete_one(&res, &flags))
        return CONN_CLOSE;
    CHECK_EQ_INT(res, len);
    CHECK(flags & IORING_CQE_F_BUFFER);
    tail = ring_tail();
    enum conn_want want = ring_on_recv(&r, c, res, flags);
    CHECK_EQ_INT((unsigned short)(ring_tail() - tail), 1); /* the buffer is back */
    return want;
}

/* Sends what c plans through the ring; reads it back from the peer into buf. */
static size_t send_reply(struct conn *c, char *buf, size_t cap)
{
    struct conn_tx tx;
    struct msghdr msg;
    struct iovec iov[2];
    int res;
    unsigned flags;
    size_t got = 0;
    ssize_t n;

    conn_tx(c, &tx, true);
    if (!CHECK(tx.len > 0))
        return 0;
    ring_prep_send(ring_sqe(&r), c->fd, &tx, &msg, iov);
    if (!complete_one(&res, &flags) || !CHECK_EQ_INT(res, tx.len + tx.len2))
        return 0;
    CHECK_EQ_INT(conn_on_output(c, (size_t)res), CONN_READ);
    while (got < (size_t)res && (n = read(peer, buf + got, cap - got)) > 0)
        got += (size_t)n;
    return got;
}

static void ring_sets_up(void)
{
    CHECK(r.mode != NULL);
    CHECK(r.br != NULL && r.bufs != NULL);
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
    int res;
    unsigned flags, tail;
    struct conn *c = open_pair();
    if (!c)
        return;
    shutdown(peer, SHUT_WR);
    ring_prep_recv(ring_sqe(&r), c);
    if (complete_one(&res, &flags)) {
        CHECK_EQ_INT(res, 0);
        CHECK(!(flags & IORING_CQE_F_BUFFER));
        tail = ring_tail();
        CHECK_EQ_INT(ring_on_recv(&r, c, res, flags), CONN_CLOSE);
        CHECK_EQ_INT(ring_tail(), tail);
    }
    close_pair(c);
}

int main(void)
{
    alarm(30);
    fake_server_open(&s, "test_ring");
    fake_server_write("small.txt", SMALL_TEXT, strlen(SMALL_TEXT));
    check_case("ring_init");
    if (!CHECK_EQ_INT(ring_init(&r, &s), 0)) {
        ring_exit(&r);
        fake_server_close(&s);
        return check_report();
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
#undef CASE
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_case(cases[i].name);
        cases[i].run();
    }
    ring_exit(&r);
    fake_server_close(&s);
    return check_report();
}
