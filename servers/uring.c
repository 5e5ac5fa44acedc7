/*
 * uring.c - model 5, asynchronous I/O with io_uring (liburing).
 *
 * The process waits in io_uring_enter(2), once per loop turn
 * (io_uring_submit_and_wait_timeout), and it waits for completions, not for
 * readiness: it asks the kernel to accept, receive, send or splice, and is
 * told when that is done, the bytes already copied. Both of Stevens' phases,
 * waiting for data and copying it, happen in the kernel; one enter submits
 * every request queued since the last and collects every completion.
 *
 * What to look at: each request carries (op, generation, fd) in user_data
 * (union uring_tag), and a connection's slot and fd are freed only once its
 * last completion is back (struct uring_conn counts them; a multishot operation
 * counts once, until the completion without IORING_CQE_F_MORE). Used (Linux 6.0+):
 * multishot accept; one multishot recv per connection into a provided-buffer ring
 * (an idle connection holds no buffer), the request parsed where it lies; head and
 * cached body in one SENDMSG; file bodies spliced file -> pipe -> socket through a
 * small pool of pipes (common/pipepool.c); cancel by fd; SINGLE_ISSUER +
 * DEFER_TASKRUN where the kernel has them (6.1); the ring's fd registered, so
 * that io_uring_enter need not look it up. The ring's set-up, receive and wait
 * are common/ring.c's, shared with corouring.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "pipepool.h"
#include "ring.h"
#include "server.h"

enum uring_op {
    OP_ACCEPT = 1,
    OP_LISTEN_POLL,
    OP_LISTEN_CANCEL,
    OP_RECV,
    OP_SEND,
    OP_SPLICE_IN,
    OP_SPLICE_OUT,
    OP_POLL_OUT,
    OP_CANCEL
};

/* What a completion tells about its request, packed into the 64-bit user_data
 * (as liburing's examples do): which operation, on which fd, for which of the
 * connections that fd has served. */
union uring_tag {
    uint64_t u64;
    struct {
        int32_t fd;
        uint32_t gen : 24; /* the connection's generation (struct uring_conn) */
        uint32_t op : 8;   /* enum uring_op */
    };
};
_Static_assert(sizeof(union uring_tag) == sizeof(uint64_t), "a tag is one user_data");

/* A connection: the protocol's state, and what this model tracks beside it. */
struct uring_conn {
    struct conn conn;
    uint32_t gen : 24;  /* bumped on every reuse of the slot: tells stale completions apart */
    unsigned in_flight; /* operations submitted whose completions are not back yet */
    bool closing;       /* closing: waits for its last completion */
    struct ring_rx rx;  /* its multishot receive, and what it brought while we sent */
    struct msghdr msg;  /* head + cached body; read by the kernel at submit */
    struct iovec iov[2];
    struct pipe_user pipe; /* the pipe a file body is spliced through, while it has one */
};

struct uring {
    struct server *s;
    struct ring ring; /* common/ring.c, shared with corouring.c */
    struct pipepool pipes;
    int listen_ops; /* accept, poll or cancel in flight on the listener */
    bool stopping;
};

static struct uring_conn *uring_conn(struct conn *c)
{
    return container_of(c, struct uring_conn, conn);
}

static void uring_after(struct uring *u, struct conn *c, enum conn_want want);
static void uring_send_next(struct uring *u, struct conn *c);

/* ---- submission ------------------------------------------------------------- */

/* The user_data of op on c's connection: (op, generation, fd). */
static uint64_t uring_tag(enum uring_op op, struct conn *c)
{
    union uring_tag tag = {.fd = c->fd, .gen = uring_conn(c)->gen, .op = op};
    return tag.u64;
}

/* Tags sqe with (op, generation, fd) and counts it until it completes; c NULL: the listener. */
static void uring_track(struct uring *u, struct io_uring_sqe *sqe, enum uring_op op, struct conn *c)
{
    union uring_tag tag = {.fd = u->s->listen_fd, .op = op};
    if (c) {
        tag.u64 = uring_tag(op, c);
        uring_conn(c)->in_flight++;
    } else {
        u->listen_ops++;
    }
    io_uring_sqe_set_data64(sqe, tag.u64);
}

/* ---- closing: the fd and the slot outlive every operation on them ------------------ */

/* The last step of a close, once no operation refers to the fd: the pipe goes
 * back to the pool and the slot is freed. uring_close() below has already taken
 * the connection off the deadline list (conn_forget_deadline), so that
 * conn_next_expired() never returns a connection whose close is under way. */
static void uring_finish_close(struct uring *u, struct conn *c)
{
    struct pipe_user *pu = &uring_conn(c)->pipe;
    if (pu->pipe)
        pipepool_put(&u->pipes, pu, pu->in_pipe > 0);
    ring_close_conn(&u->ring, c);
}

static void uring_close(struct uring *u, struct conn *c)
{
    struct uring_conn *uc = uring_conn(c);
    if (uc->closing)
        return;
    uc->closing = true;
    c->want = CONN_CLOSE;
    conn_forget_deadline(c);
    pipepool_leave(&u->pipes, &uc->pipe);
    if (uc->in_flight == (uc->rx.armed ? 1u : 0u)) {
        /* Nothing in flight but the recv: it is cancelled and not waited for. It
         * writes only into the ring's buffers, and its last completion, if the fd
         * number serves a new connection by then, carries an older generation. */
        ring_rx_end(&u->ring, &uc->rx, uring_tag(OP_RECV, c), c->fd);
        uring_finish_close(u, c);
        return;
    }
    ring_rx_drop(&u->ring, &uc->rx);
    /* The multishot recv, or a poll waiting for room, would never end on
     * its own. The fd stays open until all are back, so the kernel cannot
     * give its number to a new connection while a late completion is due. */
    struct io_uring_sqe *sqe = ring_sqe(&u->ring);
    if (!sqe) {
        ring_shutdown(&u->ring, c->fd); /* ends them as well, without the ring */
        return;
    }
    ring_prep_cancel_socket(&u->ring, sqe, c->fd);
    uring_track(u, sqe, OP_CANCEL, c);
}

/* ---- accepting ---------------------------------------------------------------- */

static void uring_arm_recv(struct uring *u, struct conn *c);

static void uring_arm_accept(struct uring *u)
{
    struct io_uring_sqe *sqe = ring_sqe(&u->ring);
    if (!sqe)
        return; /* the loop tries again next turn */
    ring_prep_accept(&u->ring, sqe, u->s->listen_fd);
    uring_track(u, sqe, OP_ACCEPT, NULL);
}

static void uring_open(struct uring *u, int fd)
{
    struct conn *c = server_open_conn(u->s, fd);
    struct uring_conn *uc = uring_conn(c);
    uc->gen++;
    uc->in_flight = 0;
    uc->closing = false;
    uc->pipe = (struct pipe_user){0};
    ring_rx_init(&uc->rx);
    uring_arm_recv(u, c);
}

static void uring_open_backlog(void *u, int fd)
{
    uring_open(u, fd);
}

/* Out of fds: the accept ended. What waits is taken by hand, then a poll waits
 * for the next client (ring_accept_backlog). */
static void uring_accept_without_fds(struct uring *u)
{
    ring_accept_backlog(&u->ring, uring_open_backlog, u);
    struct io_uring_sqe *sqe = ring_sqe(&u->ring);
    if (!sqe)
        return;
    io_uring_prep_poll_add(sqe, u->s->listen_fd, POLLIN);
    uring_track(u, sqe, OP_LISTEN_POLL, NULL);
}

static void uring_on_accept(struct uring *u, const struct io_uring_cqe *cqe)
{
    struct server *s = u->s;
    int fd = cqe->res;
    bool more = cqe->flags & IORING_CQE_F_MORE; /* else the multishot accept has ended */
    if (!more)
        u->listen_ops--;
    if (fd >= 0) {
        /* server_accept()'s limits, for an fd the kernel accepted for us. */
        if (u->stopping)
            ring_close_socket(&u->ring, fd);
        else if (ring_admit(&u->ring, fd))
            uring_open(u, fd);
    } else if (accept_error_kind(-fd) == ACCEPT_NO_FDS) {
        if (!u->stopping)
            uring_accept_without_fds(u);
        return;
    } else {
        server_accept_failed(s, -fd);
    }
    if (!more && !u->stopping)
        uring_arm_accept(u);
}

/* ---- receiving ---------------------------------------------------------------- */

/* Arms c's multishot recv: once when it opens, again only after it ended. */
static void uring_arm_recv(struct uring *u, struct conn *c)
{
    struct io_uring_sqe *sqe = ring_sqe(&u->ring);
    if (!sqe) {
        uring_close(u, c);
        return;
    }
    ring_prep_recv(&u->ring, sqe, c->fd, &uring_conn(c)->rx); /* buffers picked when data comes */
    uring_track(u, sqe, OP_RECV, c);
}

/* The recv brought bytes (or the end): a connection that waits for them takes
 * them now; one that is sending finds them held when it reads again. */
static void uring_on_recv(struct uring *u, struct conn *c, const struct io_uring_cqe *cqe)
{
    ring_rx_on_cqe(&u->ring, &uring_conn(c)->rx, cqe);
    if (c->want == CONN_READ)
        uring_after(u, c, CONN_READ);
}

/* ---- sending: one operation, or one linked chain, in flight per socket ----------- */

/* A pipe came free and c waited for one: its transfer goes on. */
static void uring_pipe_ready(struct pipe_user *pu, void *arg)
{
    uring_send_next(arg, &container_of(pu, struct uring_conn, pipe)->conn);
}

/* A file body: splice file -> pipe, linked to splice pipe -> socket. A link
 * starts the second only when the first is done, so its completion comes first. */
static void uring_send_file(struct uring *u, struct conn *c, const struct conn_tx *tx)
{
    struct pipe_user *pu = &uring_conn(c)->pipe;
    struct io_uring_sqe *sqe;
    if (!pu->pipe) {
        int r = pipepool_get(&u->pipes, pu);
        if (r > 0) /* none free: uring_pipe_ready() when one is */
            return;
        if (r < 0) {
            server_warn(u->s, "pipe: %s", strerror(errno));
            goto fail;
        }
    }
    struct pipepool_pipe *p = pu->pipe;
    if (io_uring_sq_space_left(&u->ring.uring) < 2) /* a chain must not be split across submits */
        io_uring_submit(&u->ring.uring);
    size_t len = pu->in_pipe;
    if (len == 0) {
        len = tx->file_len < p->cap ? tx->file_len : p->cap;
        if (!(sqe = ring_sqe(&u->ring)))
            goto fail;
        io_uring_prep_splice(sqe, tx->file_fd, tx->file_off, p->wr, -1, (unsigned)len, 0);
        sqe->flags |= IOSQE_IO_LINK;
        uring_track(u, sqe, OP_SPLICE_IN, c);
    }
    if (!(sqe = ring_sqe(&u->ring)))
        goto fail;
    io_uring_prep_splice(sqe, p->rd, -1, c->fd, -1, (unsigned)len, 0);
    ring_on_socket(&u->ring, sqe); /* the output: the socket */
    uring_track(u, sqe, OP_SPLICE_OUT, c);
    return;
fail:
    uring_close(u, c);
}

static void uring_send_next(struct uring *u, struct conn *c)
{
    struct conn_tx tx;
    conn_tx(c, &tx, true);
    if (tx.len == 0) {
        uring_send_file(u, c, &tx);
        return;
    }
    struct io_uring_sqe *sqe = ring_sqe(&u->ring);
    if (!sqe) {
        uring_close(u, c);
        return;
    }
    ring_prep_send(&u->ring, sqe, c->fd, &tx, &uring_conn(c)->msg, uring_conn(c)->iov);
    uring_track(u, sqe, OP_SEND, c);
}

static void uring_on_splice_out(struct uring *u, struct conn *c, int res)
{
    struct pipe_user *pu = &uring_conn(c)->pipe;
    if (res == -ECANCELED) { /* the splice into the pipe came up short: go on from there */
        uring_send_next(u, c);
        return;
    }
    if (res < 0 && res != -EAGAIN) {
        uring_close(u, c);
        return;
    }
    if (res > 0) {
        pu->in_pipe -= (uint32_t)res;
        enum conn_want want = conn_on_output(c, (size_t)res);
        if (pu->in_pipe == 0) { /* given back between chunks too, so waiters get turns */
            pipepool_put(&u->pipes, pu, false);
            uring_after(u, c, want);
            return;
        }
    }
    /* Short, or -EAGAIN: the socket is full, and a splice cannot wait for room. */
    struct io_uring_sqe *sqe = ring_sqe(&u->ring);
    if (!sqe) {
        uring_close(u, c);
        return;
    }
    io_uring_prep_poll_add(sqe, c->fd, POLLOUT);
    ring_on_socket(&u->ring, sqe);
    uring_track(u, sqe, OP_POLL_OUT, c);
    pipepool_park(&u->pipes, pu);
}

/* ---- the loop ------------------------------------------------------------------ */

static void uring_after(struct uring *u, struct conn *c, enum conn_want want)
{
    struct ring_rx *rx = &uring_conn(c)->rx;
    if (want == CONN_READ) /* what came while it was busy goes first */
        want = ring_rx_feed(&u->ring, rx, c);
    if (want == CONN_READ) {
        if (!rx->armed) /* ended (no buffer was free, or paused): armed again */
            uring_arm_recv(u, c);
    } else if (want == CONN_WRITE) {
        /* The last response: nothing more is read. The recv, cancelled now, ends in
         * the turn that submits the send instead of waking a turn of its own. */
        if (c->res.close)
            (void)ring_rx_cancel(&u->ring, rx, uring_tag(OP_RECV, c));
        uring_send_next(u, c);
    } else {
        uring_close(u, c);
    }
}

static void uring_on_conn_cqe(struct uring *u, const struct io_uring_cqe *cqe, enum uring_op op)
{
    union uring_tag tag = {.u64 = cqe->user_data};
    int res = cqe->res;
    struct conn *c = server_conn(u->s, tag.fd);
    struct uring_conn *uc = uring_conn(c);
    if (!c->open || uc->gen != tag.gen || uc->in_flight == 0) {
        ring_recycle(&u->ring, cqe->flags); /* cannot happen while slots outlive their operations */
        return;
    }
    if (!(cqe->flags & IORING_CQE_F_MORE)) /* a multishot recv's last, or a one-shot's */
        uc->in_flight--;
    if (uc->closing) {
        ring_recycle(&u->ring, cqe->flags);
        if (uc->in_flight == 0)
            uring_finish_close(u, c);
        return;
    }
    switch (op) {
    case OP_RECV: uring_on_recv(u, c, cqe); break;
    case OP_SEND: uring_after(u, c, res > 0 ? conn_on_output(c, (size_t)res) : CONN_CLOSE); break;
    case OP_SPLICE_IN: /* the linked splice-out completes next, and decides */
        if (res > 0)
            uc->pipe.in_pipe += (uint32_t)res;
        else if (res == 0) /* the file shrank: conn_on_output() ends the connection */
            uring_after(u, c, conn_on_output(c, 0));
        else if (res != -EAGAIN)
            uring_close(u, c);
        break;
    case OP_SPLICE_OUT: uring_on_splice_out(u, c, res); break;
    case OP_POLL_OUT:
        pipepool_leave(&u->pipes, &uc->pipe);
        if (res > 0)
            uring_send_next(u, c);
        else
            uring_close(u, c);
        break;
    default: break;
    }
}

static void uring_on_cqe(struct uring *u, const struct io_uring_cqe *cqe)
{
    union uring_tag tag = {.u64 = cqe->user_data};
    enum uring_op op = (enum uring_op)tag.op;
    if (cqe->user_data == RING_UNTRACKED) { /* a paused recv's cancel */
        return;
    } else if (op == OP_ACCEPT) {
        uring_on_accept(u, cqe);
    } else if (op == OP_LISTEN_POLL || op == OP_LISTEN_CANCEL) {
        u->listen_ops--;
        if (op == OP_LISTEN_POLL && !u->stopping) /* a client waits, and fds may be back */
            uring_arm_accept(u);
    } else {
        uring_on_conn_cqe(u, cqe, op);
    }
}

/* Stops accepting and closes every connection; each ends when its operations do. */
static void uring_stop(struct uring *u)
{
    struct server *s = u->s;
    u->stopping = true;
    struct io_uring_sqe *sqe = ring_sqe(&u->ring);
    if (sqe) {
        io_uring_prep_cancel_fd(sqe, s->listen_fd, IORING_ASYNC_CANCEL_ALL);
        uring_track(u, sqe, OP_LISTEN_CANCEL, NULL);
    }
    for (int fd = 0; fd < s->max_fds; fd++)
        if (server_conn(s, fd)->open)
            uring_close(u, server_conn(s, fd));
}

/* ---- setup -------------------------------------------------------------------- */

static void uring_teardown(struct uring *u)
{
    ring_exit(&u->ring);
    pipepool_destroy(&u->pipes);
}

static int uring_run(struct server *s)
{
    struct uring u = {.s = s};

    pipepool_init(&u.pipes, RING_PIPE_SIZE, uring_pipe_ready, &u);
    if (ring_init(&u.ring, s) < 0) {
        uring_teardown(&u);
        return -1;
    }
    server_warn(s,
                "io_uring: %s%s%s, multishot accept, multishot recv into %d provided buffers, "
                "cached bodies by sendmsg, file bodies by splice (%d pipes)",
                u.ring.mode, u.ring.fd_registered ? ", registered ring fd" : "",
                u.ring.direct ? ", direct descriptors" : "", RING_BUFS, PIPEPOOL_PIPES);
    uring_arm_accept(&u);

    uint64_t stop_by = 0;
    for (;;) {
        uint64_t now = clock_now_ms();
        if (server_stopping() && !u.stopping) {
            uring_stop(&u);
            stop_by = now + RING_STOP_MS;
        }
        if (u.stopping && ((atomic_load(&s->nconns) == 0 && u.listen_ops == 0) || now > stop_by))
            break;
        int ms = deadline_ms_to_next(&s->env.idle, now, u.stopping ? 100 : 1000);
        /* The one system call of a turn: submit all that is queued, wait for completions. */
        if (ring_wait(&u.ring, ms) < 0)
            break;
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&u.ring.uring, head, cqe)
        {
            uring_on_cqe(&u, cqe);
            n++;
        }
        io_uring_cq_advance(&u.ring.uring, n);

        struct conn *c;
        while ((c = conn_next_expired(&s->env, clock_now_ms())))
            uring_close(&u, c);
        if (u.listen_ops == 0 && !u.stopping) /* an accept that found no SQE */
            uring_arm_accept(&u);
    }
    bool clean = u.stopping;
    /* Connections left only after a failed stop: the ring goes first, taking
     * the operations that might still use their buffers with it. */
    ring_close(&u.ring);
    for (int fd = 0; fd < s->max_fds; fd++)
        if (server_conn(s, fd)->open)
            ring_close_conn(&u.ring, server_conn(s, fd));
    uring_teardown(&u);
    return clean ? 0 : -1;
}

int main(int argc, char **argv)
{
    return server_main(argc, argv, "uring", sizeof(struct uring_conn), uring_run);
}
