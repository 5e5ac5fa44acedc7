/*
 * ring.c - the io_uring that servers/uring.c and servers/corouring.c share: one
 * set-up, one receive strategy, one wait, so that comparing the two compares
 * callbacks with coroutines and nothing else.
 *
 * The receive: one multishot receive per connection, armed when it opens and again
 * only when a completion lacks IORING_CQE_F_MORE (the peer closed, every buffer was
 * taken, or we paused it). The kernel fills a buffer of a provided-buffer ring each
 * time data comes, so an idle connection holds none; the request is parsed where it
 * lies and the buffer goes back. Bytes that come while the connection is sending
 * stay in their buffers (struct ring_rx) until it reads again.
 *
 * The sockets: direct descriptors where the kernel has them (ring_setup_files()).
 * Each operation on a connection then names its socket by its index in the ring's
 * own table of files, so the kernel skips the fd table: no fd is allocated and
 * installed per accept, none is looked up per operation, and a close is one more
 * operation of the turn instead of a system call. Every operation on a socket can
 * take one: accept (IORING_FILE_INDEX_ALLOC), receive, send, poll, cancel
 * (IORING_ASYNC_CANCEL_FD_FIXED), close, and the splice of a file body from its pipe
 * to the socket, whose output IOSQE_FIXED_FILE names. What is not a socket stays a
 * real fd: the listener (the fallback below accepts on it by hand), the cached files
 * and the pipes, spliced file -> pipe with no fixed file at either end (a splice's
 * input could be one, SPLICE_F_FD_IN_FIXED, but the files belong to the file cache,
 * shared with every model, and the pipes to the pool: registering them would cost a
 * system call per open for a lookup saved per splice).
 */
#include "ring.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"

/* What both servers submit; the kernel must have them all, and multishot receive
 * (Linux 6.0+). */
static const int ring_ops_needed[] = {IORING_OP_ACCEPT,      IORING_OP_RECV,   IORING_OP_SEND,
                                      IORING_OP_SENDMSG,     IORING_OP_SPLICE, IORING_OP_POLL_ADD,
                                      IORING_OP_ASYNC_CANCEL};

static int ring_setup(struct ring *r)
{
    /* DEFER_TASKRUN: the kernel finishes completions inside our io_uring_enter
     * instead of interrupting the thread; SINGLE_ISSUER lets it skip locks. */
    struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP |
                                         IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                                .cq_entries = RING_CQ_ENTRIES};
    r->mode = "SINGLE_ISSUER+DEFER_TASKRUN";
    if (r->s->cfg.sqpoll) {
        /* --sqpoll: a kernel thread takes the submissions as they are queued, so a turn
         * that has completions waiting makes no system call; it spins RING_SQPOLL_IDLE_MS
         * after the last before it sleeps, on any core (no SQ_AFF: on 2 cores, beside
         * the client). The completions' work then runs on that thread, so there is no
         * DEFER_TASKRUN (the kernel refuses the two together). */
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SINGLE_ISSUER |
                  IORING_SETUP_SQPOLL;
        p.sq_thread_idle = RING_SQPOLL_IDLE_MS;
        r->mode = "SQPOLL+SINGLE_ISSUER";
    }
    int e = io_uring_queue_init_params(RING_SQ_ENTRIES, &r->uring, &p);
    if (e == -EINVAL && !r->s->cfg.sqpoll) { /* before Linux 6.1 */
        p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
                                     .cq_entries = RING_CQ_ENTRIES};
        r->mode = "no DEFER_TASKRUN (kernel before 6.1)";
        e = io_uring_queue_init_params(RING_SQ_ENTRIES, &r->uring, &p);
    }
    if (e < 0) {
        server_warn(r->s, "io_uring_queue_init: %s%s", strerror(-e),
                    e == -ENOMEM ? " (rings count against the user's RLIMIT_MEMLOCK, `ulimit -l`, "
                                   "shared by all of that user's processes)"
                                 : "");
        return -1;
    }
    r->has_ring = true;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&r->uring);
    bool ok = probe && (p.features & IORING_FEAT_NODROP);
    for (size_t i = 0; ok && i < sizeof ring_ops_needed / sizeof ring_ops_needed[0]; i++)
        ok = io_uring_opcode_supported(probe, ring_ops_needed[i]);
    io_uring_free_probe(probe);
    if (!ok) {
        server_warn(r->s, "this kernel's io_uring lacks what this server uses (Linux 6.0+)");
        return -1;
    }
    /* A registered ring fd spares every io_uring_enter the lookup of the ring's file in
     * the fd table (liburing then passes IORING_ENTER_REGISTERED_RING). Optional. */
    r->fd_registered = io_uring_register_ring_fd(&r->uring) == 1;
    return 0;
}

/* A buffer's id: the kernel's 16 bits (the top half of a completion's flags), so
 * every id fits the uint16_t that io_uring_buf_ring_add() takes. */
_Static_assert(RING_BUFS <= INT16_MAX + 1, "a buffer id fits held_next's int16_t");

static uint16_t ring_cqe_bid(unsigned cqe_flags)
{
    return (uint16_t)(cqe_flags >> IORING_CQE_BUFFER_SHIFT); /* 32 - 16 bits: nothing lost */
}

static char *ring_buf(struct ring *r, uint16_t bid)
{
    return r->bufs + (size_t)bid * RING_BUF_SIZE;
}

/* The provided-buffer ring, by hand (liburing 2.3 has no io_uring_setup_buf_ring):
 * page-aligned, registered, then filled. */
static int ring_setup_buffers(struct ring *r)
{
    void *br = mmap(NULL, RING_BUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    r->br = br == MAP_FAILED ? NULL : br;
    r->bufs = malloc((size_t)RING_BUFS * RING_BUF_SIZE);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uintptr_t)r->br, .ring_entries = RING_BUFS, .bgid = RING_BGID};
    int e = r->br && r->bufs ? io_uring_register_buf_ring(&r->uring, &reg, 0) : -ENOMEM;
    if (e < 0) {
        server_warn(r->s, "cannot set up the receive buffer ring: %s", strerror(-e));
        return -1;
    }
    io_uring_buf_ring_init(r->br);
    for (uint16_t bid = 0; bid < RING_BUFS; bid++)
        io_uring_buf_ring_add(r->br, ring_buf(r, bid), RING_BUF_SIZE, bid,
                              io_uring_buf_ring_mask(RING_BUFS), bid);
    io_uring_buf_ring_advance(r->br, RING_BUFS);
    return 0;
}

#define RING_SINK_SIZE 65536 /* server_drain_input()'s 16 x 4 KiB, in one receive */

/* The table of direct descriptors, one entry per slot of the server's connection
 * table, so that an index is a slot (sparse: all empty; Linux 5.19+, which multishot
 * accept already needs). None if C10K_RING_NO_DIRECT is set (the fallback, for the
 * tests), or if processes share one count of connections (bin/prefork's, not ours:
 * ring_admit() checks the limit before server_admit(), which no other process may
 * change between the two). */
static void ring_setup_files(struct ring *r)
{
    const char *off = getenv("C10K_RING_NO_DIRECT");
    if ((off && *off) || r->s->all_nconns)
        return;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&r->uring);
    bool ok = probe && io_uring_opcode_supported(probe, IORING_OP_CLOSE) &&
              (r->uring.features & IORING_FEAT_CQE_SKIP); /* 5.17 */
    io_uring_free_probe(probe);
    if (!ok || io_uring_register_files_sparse(&r->uring, (unsigned)r->s->max_fds) < 0)
        return; /* plain fds, as before 5.19 */
    if (!(r->sink = malloc(RING_SINK_SIZE))) {
        (void)io_uring_unregister_files(&r->uring);
        return;
    }
    r->direct = true;
}

int ring_init(struct ring *r, struct server *s)
{
    *r = (struct ring){.s = s};
    if (ring_setup(r) < 0 || ring_setup_buffers(r) < 0)
        return -1;
    ring_setup_files(r);
    return 0;
}

void ring_close(struct ring *r)
{
    if (r->has_ring)
        io_uring_queue_exit(&r->uring); /* also drops the buffer ring's registration */
    r->has_ring = false;
}

void ring_exit(struct ring *r)
{
    ring_close(r);
    if (r->br)
        munmap(r->br, RING_BUFS * sizeof(struct io_uring_buf));
    r->br = NULL;
    free(r->bufs);
    r->bufs = NULL;
    free(r->sink);
    r->sink = NULL;
}

struct io_uring_sqe *ring_sqe(struct ring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    if (!sqe) { /* the SQ is full: hand it to the kernel, then there is room */
        int e = io_uring_submit(&r->uring);
        if (!(sqe = io_uring_get_sqe(&r->uring)))
            server_warn(r->s, "no submission entry: %s", strerror(e < 0 ? -e : EAGAIN));
    }
    return sqe;
}

/* ---- sockets: direct descriptors, or fds ----------------------------------------- */

void ring_prep_accept(const struct ring *r, struct io_uring_sqe *sqe, int listen_fd)
{
    if (r->direct)
        io_uring_prep_multishot_accept_direct(sqe, listen_fd, NULL, NULL, SOCK_NONBLOCK);
    else
        io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

bool ring_admit(struct ring *r, int fd)
{
    struct server *s = r->s;
    if (!r->direct)
        return server_admit(s, fd);
    /* server_admit() would close() a refused one, and fd is no fd: the limit is
     * checked here first, so that server_admit() only counts it in. */
    if (fd >= s->max_fds || atomic_load(&s->nconns) >= s->max_conns) {
        ring_close_socket(r, fd);
        return false;
    }
    return server_admit(s, fd);
}

void ring_close_socket(struct ring *r, int fd)
{
    if (!r->direct) {
        close(fd);
        return;
    }
    struct io_uring_sqe *sqe = ring_sqe(r);
    if (sqe) { /* done in the next turn's io_uring_enter, with its other operations */
        io_uring_prep_close_direct(sqe, (unsigned)fd);
        /* No completion unless it fails: one would end that turn's wait at once, and
         * cost a turn (an io_uring_enter) per connection. */
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, RING_UNTRACKED);
        return;
    }
    int none = -1; /* no entry free: emptied by a system call of its own */
    int e = io_uring_register_files_update(&r->uring, (unsigned)fd, &none, 1);
    if (e < 0)
        server_warn(r->s, "cannot close a direct descriptor: %s", strerror(-e));
}

void ring_close_conn(struct ring *r, struct conn *c)
{
    if (!r->direct) {
        server_close_conn(r->s, c);
        return;
    }
    int fd = c->fd;
    bool linger = c->linger;
    conn_close(c);
    server_conn_gone(r->s); /* counted out first, as server_close_conn() does */
    if (!r->has_ring)       /* after ring_close(): the table went with the ring */
        return;
    /* server_drain_input(), by the ring: the input that waits is read (MSG_DONTWAIT:
     * no more than waits) into a sink nobody reads, so that the close sends FIN, not
     * RST; hard-linked, the close follows whatever the receive's result. */
    struct io_uring_sqe *sqe;
    if (linger && io_uring_sq_space_left(&r->uring) < 2)
        io_uring_submit(&r->uring); /* a chain must not be split across submits */
    if (linger && (sqe = ring_sqe(r))) {
        io_uring_prep_recv(sqe, fd, r->sink, RING_SINK_SIZE, MSG_DONTWAIT);
        sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
        io_uring_sqe_set_data64(sqe, RING_UNTRACKED);
    }
    ring_close_socket(r, fd);
}

void ring_shutdown(struct ring *r, int fd)
{
    if (!r->direct)
        shutdown(fd, SHUT_RDWR);
}

void ring_prep_cancel_socket(const struct ring *r, struct io_uring_sqe *sqe, int fd)
{
    io_uring_prep_cancel_fd(
        sqe, fd, IORING_ASYNC_CANCEL_ALL | (r->direct ? IORING_ASYNC_CANCEL_FD_FIXED : 0));
}

/* ---- sending ------------------------------------------------------------------- */

void ring_prep_send(const struct ring *r, struct io_uring_sqe *sqe, int fd,
                    const struct conn_tx *tx, struct msghdr *msg, struct iovec iov[2])
{
    /* MSG_WAITALL: the kernel finishes a short send itself; one completion. The flags
     * are bits, unsigned as the kernel's msg_flags; liburing 2.3 takes them as unsigned
     * for SENDMSG but as int for SEND, where the bits are the same (all below bit 31). */
    unsigned flags = MSG_NOSIGNAL | MSG_WAITALL;
    if (tx->more)
        flags |= MSG_MORE;
    if (tx->len2 > 0) { /* the head and a cached body in one go */
        iov[0] = (struct iovec){(void *)tx->buf, tx->len};
        iov[1] = (struct iovec){(void *)tx->buf2, tx->len2};
        *msg = (struct msghdr){.msg_iov = iov, .msg_iovlen = 2};
        io_uring_prep_sendmsg(sqe, fd, msg, flags);
    } else {
        io_uring_prep_send(sqe, fd, tx->buf, tx->len, (int)flags);
    }
    ring_on_socket(r, sqe);
}

/* Buffer bid goes back to the ring: the kernel may fill it again. */
static void ring_give(struct ring *r, uint16_t bid)
{
    io_uring_buf_ring_add(r->br, ring_buf(r, bid), RING_BUF_SIZE, bid,
                          io_uring_buf_ring_mask(RING_BUFS), 0);
    io_uring_buf_ring_advance(r->br, 1);
}

void ring_recycle(struct ring *r, unsigned cqe_flags)
{
    if (cqe_flags & IORING_CQE_F_BUFFER)
        ring_give(r, ring_cqe_bid(cqe_flags));
}

/* ---- a connection's multishot receive ---------------------------------------- */

/* ring_rx_feed() hands a whole buffer to conn_on_input_from(): it fits, since a
 * connection that waits for input holds less than a header block. */
_Static_assert(HTTP_MAX_HEADER + RING_BUF_SIZE <= CONN_IN_CAP,
               "a buffer fits after a partial head");

void ring_rx_init(struct ring_rx *rx)
{
    *rx = (struct ring_rx){.first = -1, .last = -1};
}

void ring_prep_recv(const struct ring *r, struct io_uring_sqe *sqe, int fd, struct ring_rx *rx)
{
    /* Length 0: each completion fills at most one provided buffer. */
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    ring_on_socket(r, sqe);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RING_BGID;
    rx->armed = true;
}

/* Appends buffer bid, holding len bytes, to rx's held ones. */
static void ring_rx_hold(struct ring *r, struct ring_rx *rx, uint16_t bid, int len)
{
    r->held_len[bid] = (uint16_t)len;
    r->held_next[bid] = -1;
    if (rx->last >= 0)
        r->held_next[rx->last] = (int16_t)bid;
    else
        rx->first = (int32_t)bid;
    rx->last = (int32_t)bid;
    rx->held++;
}

/* Takes the oldest held buffer off rx's list; returns its id. */
static uint16_t ring_rx_pop(struct ring *r, struct ring_rx *rx)
{
    uint16_t bid = (uint16_t)rx->first; /* >= 0: rx holds one */
    rx->first = r->held_next[bid];
    if (rx->first < 0)
        rx->last = -1;
    rx->held--;
    return bid;
}

void ring_rx_on_cqe(struct ring *r, struct ring_rx *rx, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) /* its last: armed again only when wanted */
        rx->armed = rx->cancelling = false;
    /* -ENOBUFS (no buffer was free) and -ECANCELED (a pause) end the receive only: it
     * is armed again when the connection next wants to read. */
    if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER))
        ring_rx_hold(r, rx, ring_cqe_bid(cqe->flags), cqe->res);
    else if (cqe->res != -ENOBUFS && cqe->res != -ECANCELED)
        rx->ended = true; /* 0: the peer closed; else the socket failed */
    if (rx->held > RING_RX_HOLD)
        (void)ring_rx_cancel(r, rx, cqe->user_data); /* no entry free: the next completion */
}

enum conn_want ring_rx_feed(struct ring *r, struct ring_rx *rx, struct conn *c)
{
    enum conn_want want = CONN_READ;
    while (want == CONN_READ && rx->first >= 0) {
        uint16_t bid = ring_rx_pop(r, rx);
        want = conn_on_input_from(c, ring_buf(r, bid), r->held_len[bid]);
        ring_give(r, bid); /* parsed in place, or copied: it can take the next receive */
    }
    if (want == CONN_READ && rx->ended) /* every byte before the end is in */
        want = conn_on_input(c, 0);
    return want;
}

int ring_rx_cancel(struct ring *r, struct ring_rx *rx, uint64_t user_data)
{
    if (!rx->armed || rx->cancelling)
        return 0;
    struct io_uring_sqe *sqe = ring_sqe(r);
    if (!sqe)
        return -1;
    io_uring_prep_cancel64(sqe, user_data, 0);
    io_uring_sqe_set_data64(sqe, RING_UNTRACKED);
    rx->cancelling = true;
    return 0;
}

void ring_rx_drop(struct ring *r, struct ring_rx *rx)
{
    while (rx->first >= 0)
        ring_give(r, ring_rx_pop(r, rx));
}

void ring_rx_end(struct ring *r, struct ring_rx *rx, uint64_t user_data, int fd)
{
    if (ring_rx_cancel(r, rx, user_data) < 0)
        ring_shutdown(r, fd); /* ends it as well, without the ring */
    ring_rx_drop(r, rx);
}

int ring_wait(struct ring *r, int timeout_ms)
{
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
    struct io_uring_cqe *cqe;
    /* -EBUSY: completions overflowed (kept, FEAT_NODROP); reaping makes room. */
    int e = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts, NULL);
    if (e < 0 && e != -ETIME && e != -EINTR && e != -EBUSY && e != -EAGAIN) {
        server_warn(r->s, "io_uring_enter: %s", strerror(-e));
        return -1;
    }
    return 0;
}

void ring_accept_backlog(struct ring *r, void (*open_fn)(void *arg, int fd), void *arg)
{
    int fd;
    if (r->direct) { /* the table is full: a socket accepted here would be no slot's */
        while ((fd = accept4(r->s->listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
            close(fd);
        return;
    }
    while ((fd = server_accept(r->s, true)) >= 0)
        open_fn(arg, fd);
    server_accept_failed(r->s, errno);
}
