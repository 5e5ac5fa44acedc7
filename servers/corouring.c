/*
 * corouring.c - coroutines over a completion source: bin/coro's code shape,
 * io_uring's events.
 *
 * serve_connection() is servers/coro.c's (and blocking.c's) loop: read, answer,
 * send the head, send the body. But where coro.c tries a nonblocking call and
 * parks on EAGAIN until epoll says "ready", each co_*() here submits the whole
 * operation to io_uring (recv into this buffer, sendmsg these bytes, splice
 * this file range) and parks until its completion says "done", with the
 * result. The loop waits in io_uring_enter(2) for completions, as uring.c's
 * does, and resumes whichever coroutine a completion belongs to: user_data is
 * the coroutine's task, and a task has at most one operation in flight.
 * Beside it runs the connection's one multishot receive (common/ring.c), whose
 * user_data is (RX_TAG, generation, fd), as uring.c tags its operations: its
 * completions are kept until the coroutine reads, and wake it only while it
 * waits for input. A closing connection cancels it and does not wait: a late
 * completion carries an older generation than the slot's next connection.
 *
 * The two axes are independent: readiness or completion is where the loop
 * waits (epoll.c, coro.c | uring.c, this file); callbacks or coroutines is how
 * a connection keeps its place (epoll.c, uring.c: a state machine in struct
 * conn | coro.c, this file: the coroutine's stack). The ring is uring.c's, from
 * common/ring.c: the same set-up flags, and the same receive, multishot into
 * provided buffers the kernel picks when data comes (an idle connection holds
 * none), the request parsed where it lies. A
 * file body goes file -> pipe -> socket by SPLICE through common/pipepool.c,
 * since io_uring has no sendfile. The acceptor is a coroutine too, resumed by
 * each completion of one multishot accept, as uring.c arms it.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "coro.h"
#include "pipepool.h"
#include "ring.h"
#include "server.h"

#define CQE_BATCH 256
#define STACKS_KEPT 1024

struct corouring;

/* What a suspended coroutine waits for: one operation's completion, or a pipe. */
struct task {
    struct corouring *rs;
    struct coro *co;
    struct task *next_ready; /* on the ready list, to be resumed by the loop */
    int res;                 /* the completion's result (or -errno), for the coroutine */
    bool in_flight;          /* an operation is submitted, its (last) completion not back yet */
    bool wants_pipe;         /* on the pipe pool's waiting list */
    bool cancelled;          /* timed out or stopping: its waits fail from now on */
};

/* A connection: the protocol's state, its coroutine, its turn at a pipe, and its
 * receive. */
struct corouring_conn {
    struct conn conn;
    struct task task;
    struct pipe_user pipe;
    struct ring_rx rx;
    bool rx_waiting; /* the coroutine is parked until the receive brings something */
    uint32_t gen;    /* bumped on every reuse of the slot: tells late completions apart */
};

/* The top bit of a completion's user_data: the connection's receive, not a task (no
 * user-space pointer has it); then bits 32-62 hold the generation, 0-31 the fd. */
#define RX_TAG (1ull << 63)

struct corouring {
    struct server *s;
    struct ring ring; /* common/ring.c, shared with uring.c */
    struct coro_pool pool;
    struct pipepool pipes;
    struct task acceptor;
    struct task *ready, **ready_tail;
    int coroutines; /* alive: the acceptor and one per connection */
};

static struct corouring_conn *corouring_conn(struct conn *c)
{
    return container_of(c, struct corouring_conn, conn);
}

/* ---- tasks: who runs when ------------------------------------------------------- */

static void make_ready(struct corouring *rs, struct task *t)
{
    t->next_ready = NULL;
    *rs->ready_tail = t;
    rs->ready_tail = &t->next_ready;
}

/* Runs t's coroutine until it parks again; frees it once it has finished. */
static void run(struct task *t)
{
    struct corouring *rs = t->rs;
    if (coro_resume(t->co))
        return;
    if (coro_destroy(t->co) < 0)
        server_warn(rs->s, "munmap: %s", strerror(errno));
    t->co = NULL;
    rs->coroutines--;
}

/* Resumes the ready tasks, in order, from the loop (never from a coroutine). */
static void run_ready(struct corouring *rs)
{
    struct task *t;
    while ((t = rs->ready)) {
        rs->ready = t->next_ready;
        if (!rs->ready)
            rs->ready_tail = &rs->ready;
        run(t);
    }
}

/* ---- the blocking-looking calls, run inside a coroutine ------------------------- */

/* A submission entry for the running task, or NULL once it is cancelled. */
static struct io_uring_sqe *co_sqe(struct task *t)
{
    return t->cancelled ? NULL : ring_sqe(&t->rs->ring);
}

/* Parks the running task until the next completion of its multishot operation,
 * still in flight; returns its result. */
static int co_next(struct task *t)
{
    coro_yield();
    return t->res;
}

/* Parks the running task until sqe's completion; returns its result. */
static int co_submit(struct task *t, struct io_uring_sqe *sqe)
{
    if (!sqe)
        return t->cancelled ? -ECANCELED : -EBUSY;
    io_uring_sqe_set_data(sqe, t);
    t->in_flight = true;
    coro_yield(); /* the loop resumes us with the completion's result in t->res */
    return t->res;
}

/* socket: fd is a connection's (a direct descriptor, if the ring's are), not the listener. */
static int co_poll(struct task *t, int fd, unsigned mask, bool socket)
{
    struct io_uring_sqe *sqe = co_sqe(t);
    if (sqe) {
        io_uring_prep_poll_add(sqe, fd, mask);
        if (socket)
            ring_on_socket(&t->rs->ring, sqe);
    }
    return co_submit(t, sqe);
}

static uint64_t rx_data(const struct corouring_conn *rc)
{
    return RX_TAG | (uint64_t)(rc->gen & 0x7fffffff) << 32 | (uint32_t)rc->conn.fd;
}

/* Parks the running connection until its receive's next completion. */
static void co_wait_rx(struct corouring_conn *rc)
{
    rc->rx_waiting = true;
    coro_yield(); /* on_rx() resumes us */
}

/* Hands the connection its input: what came while it was sending first, then what
 * its multishot receive brings, armed here when it is not (the first read, or
 * after it ended). Returns what the connection wants next. */
static enum conn_want co_read(struct corouring_conn *rc)
{
    struct ring *r = &rc->task.rs->ring;
    enum conn_want want;
    while ((want = ring_rx_feed(r, &rc->rx, &rc->conn)) == CONN_READ) {
        if (!rc->rx.armed) {
            struct io_uring_sqe *sqe = co_sqe(&rc->task);
            if (!sqe)
                return CONN_CLOSE;
            ring_prep_recv(r, sqe, rc->conn.fd, &rc->rx);
            io_uring_sqe_set_data64(sqe, rx_data(rc));
        }
        co_wait_rx(rc);
    }
    return want;
}

/* Ends the receive, not waiting for its last completion: it writes only into the
 * ring's buffers, and on_cqe() knows it by its generation. The bytes it held go
 * back to the ring. */
static void co_end_rx(struct corouring_conn *rc)
{
    struct ring *r = &rc->task.rs->ring;
    ring_rx_end(r, &rc->rx, rx_data(rc), rc->conn.fd);
}

/* Sends tx's bytes in memory, the head and a cached body together, in one
 * operation (ring_prep_send) that the kernel finishes itself. */
static int co_write(struct corouring_conn *rc, const struct conn_tx *tx)
{
    /* On this stack: they stay put while the coroutine waits for the completion. */
    struct iovec iov[2];
    struct msghdr msg;
    struct io_uring_sqe *sqe = co_sqe(&rc->task);
    if (sqe)
        ring_prep_send(&rc->task.rs->ring, sqe, rc->conn.fd, tx, &msg, iov);
    return co_submit(&rc->task, sqe);
}

/* Borrows a pipe from the pool, waiting for a turn if none is free. */
static int co_get_pipe(struct corouring_conn *rc)
{
    struct corouring *rs = rc->task.rs;
    for (;;) {
        if (rc->task.cancelled)
            return -ECANCELED;
        int r = pipepool_get(&rs->pipes, &rc->pipe);
        if (r <= 0)
            return r == 0 ? 0 : -errno;
        rc->task.wants_pipe = true;
        coro_yield(); /* pipe_ready() or a cancel makes us ready again */
    }
}

/* Gives the pipe back: dirty if bytes are left in it (they are dropped with it). */
static void put_pipe(struct corouring_conn *rc)
{
    struct pipe_user *pu = &rc->pipe;
    pipepool_leave(&rc->task.rs->pipes, pu);
    if (pu->pipe)
        pipepool_put(&rc->task.rs->pipes, pu, pu->in_pipe > 0);
}

/* Moves part of a file range to the socket: SPLICE file -> pipe, then SPLICE
 * pipe -> socket. Returns the bytes that reached the socket (0: the file shrank),
 * or -errno. The pipe is kept while bytes are in it; while the socket is full it
 * is parked, and the pool may take it back for a waiter, dropping its bytes: they
 * are spliced again from the file, whose offset counts only what reached the socket. */
static ssize_t co_sendfile(struct corouring_conn *rc, int file_fd, off_t off, size_t len)
{
    struct task *t = &rc->task;
    struct pipe_user *pu = &rc->pipe;
    struct io_uring_sqe *sqe;
    int r;
    for (;;) {
        if (!pu->pipe && (r = co_get_pipe(rc)) < 0)
            return r;
        if (pu->in_pipe == 0) {
            size_t n = len < pu->pipe->cap ? len : pu->pipe->cap;
            if ((sqe = co_sqe(t)))
                io_uring_prep_splice(sqe, file_fd, off, pu->pipe->wr, -1, (unsigned)n, 0);
            if ((r = co_submit(t, sqe)) <= 0)
                goto out;
            pu->in_pipe = (uint32_t)r;
        }
        if ((sqe = co_sqe(t))) {
            io_uring_prep_splice(sqe, pu->pipe->rd, -1, rc->conn.fd, -1, pu->in_pipe, 0);
            ring_on_socket(&t->rs->ring, sqe); /* the output: the socket */
        }
        r = co_submit(t, sqe);
        if (r > 0) {
            pu->in_pipe -= (uint32_t)r;
            if (pu->in_pipe == 0) /* given back between chunks, so that waiters get turns */
                pipepool_put(&t->rs->pipes, pu, false);
            return r;
        }
        if (r != -EAGAIN)
            goto out;
        /* The socket is full, and a splice cannot wait for room: wait for it here. */
        pipepool_park(&t->rs->pipes, pu);
        if ((r = co_poll(t, rc->conn.fd, POLLOUT, true)) < 0)
            goto out;
        pipepool_leave(&t->rs->pipes, pu); /* if it was taken, start over from the file */
    }
out:
    put_pipe(rc);
    return r == 0 ? 0 : (r < 0 ? r : -EIO);
}

/* ---- one connection: coro.c's serve_connection(), over completions --------------- */

static void serve_connection(void *arg)
{
    struct corouring_conn *rc = arg;
    struct conn *c = &rc->conn;
    enum conn_want want = CONN_READ;

    while (want != CONN_CLOSE) {
        if (want == CONN_READ) {
            want = co_read(rc); /* parks until bytes are in a provided buffer */
        } else {
            struct conn_tx tx;
            ssize_t sent;
            if (c->res.close) /* the last response: nothing more is read (uring_after) */
                co_end_rx(rc);
            conn_tx(c, &tx, true);
            if (tx.len > 0) /* the head (and a small body from the file cache) */
                sent = co_write(rc, &tx);
            else /* the file, through a pipe */
                sent = co_sendfile(rc, tx.file_fd, tx.file_off, tx.file_len);
            if (sent < 0)
                break;
            want = conn_on_output(c, (size_t)sent);
        }
    }
    co_end_rx(rc);
    ring_close_conn(&rc->task.rs->ring, c); /* no operation of ours is in flight: the fd may go */
}

/* ---- the acceptor: a coroutine as well ------------------------------------------ */

static void spawn(void *arg, int fd)
{
    struct corouring *rs = arg;
    struct conn *c = server_open_conn(rs->s, fd);
    struct corouring_conn *rc = corouring_conn(c);
    rc->task = (struct task){.rs = rs};
    rc->pipe = (struct pipe_user){0};
    ring_rx_init(&rc->rx);
    rc->rx_waiting = false;
    rc->gen++;
    if (!(rc->task.co = coro_create(&rs->pool, serve_connection, rc))) {
        server_warn(rs->s, "cannot serve a connection: %s", strerror(errno));
        ring_close_conn(&rs->ring, c);
        return;
    }
    rs->coroutines++;
    make_ready(rs, &rc->task); /* started by the loop, not from inside this coroutine */
}

static void accept_main(void *arg)
{
    struct corouring *rs = arg;
    struct server *s = rs->s;
    struct task *t = &rs->acceptor;
    for (;;) {
        int fd;
        if (t->in_flight) { /* the multishot accept goes on: its next connection */
            fd = co_next(t);
        } else { /* one accept, as uring.c's, that completes once per connection */
            struct io_uring_sqe *sqe = co_sqe(t);
            if (sqe)
                ring_prep_accept(&rs->ring, sqe, s->listen_fd);
            fd = co_submit(t, sqe);
        }
        if (fd >= 0) {
            if (t->cancelled) /* stopping: accepted before the cancel took */
                ring_close_socket(&rs->ring, fd);
            else if (ring_admit(&rs->ring,
                                fd)) /* server_accept()'s limits, for a kernel-accepted fd */
                spawn(rs, fd);
        } else if (!t->in_flight && accept_error_kind(-fd) == ACCEPT_NO_FDS) {
            /* Out of fds: the accept ended. Take what waits by hand, then wait for the
             * next client. */
            ring_accept_backlog(&rs->ring, spawn, rs);
            if (co_poll(t, s->listen_fd, POLLIN, false) < 0)
                break;
        } else if (!t->in_flight && (fd == -ECANCELED || t->cancelled)) {
            break;
        } else {
            server_accept_failed(s, -fd);
        }
    }
}

/* ---- the loop: io_uring underneath, resuming whoever a completion is for --------- */

/* Makes t's waits fail: an operation in flight is cancelled (its completion then
 * resumes it), a wait for a pipe ends at once. */
static void cancel(struct corouring *rs, struct task *t, struct pipe_user *pu)
{
    if (t->cancelled || !t->co)
        return;
    t->cancelled = true;
    if (t->in_flight) {
        struct io_uring_sqe *sqe = ring_sqe(&rs->ring);
        if (sqe) {
            io_uring_prep_cancel(sqe, t, 0);
            io_uring_sqe_set_data(sqe, NULL); /* its own completion is not a task's */
        }
    } else if (t->wants_pipe) {
        pipepool_leave(&rs->pipes, pu);
        t->wants_pipe = false;
        make_ready(rs, t);
    }
}

static void cancel_conn(struct corouring *rs, struct conn *c)
{
    struct corouring_conn *rc = corouring_conn(c);
    conn_forget_deadline(c); /* it closes itself once its coroutine unwinds */
    if (rc->task.co && ring_rx_cancel(&rs->ring, &rc->rx, rx_data(rc)) < 0)
        ring_shutdown(&rs->ring, c->fd); /* a coroutine waiting for input wakes to EOF */
    cancel(rs, &rc->task, &rc->pipe);
}

static void pipe_ready(struct pipe_user *pu, void *arg)
{
    struct corouring_conn *rc = container_of(pu, struct corouring_conn, pipe);
    rc->task.wants_pipe = false;
    make_ready(arg, &rc->task);
}

/* A completion of rc's receive: kept for it, and it runs if it waits for input. */
static void on_rx(struct corouring *rs, struct corouring_conn *rc, const struct io_uring_cqe *cqe)
{
    ring_rx_on_cqe(&rs->ring, &rc->rx, cqe);
    if (rc->rx_waiting) {
        rc->rx_waiting = false;
        run(&rc->task);
    }
}

/* Resumes whoever a completion is for. */
static void on_cqe(struct corouring *rs, const struct io_uring_cqe *cqe)
{
    if (cqe->user_data == RING_UNTRACKED) /* a cancel's own completion */
        return;
    if (cqe->user_data & RX_TAG) {
        struct corouring_conn *rc =
            corouring_conn(server_conn(rs->s, (int)(uint32_t)cqe->user_data));
        if (rc->task.co && (rc->gen & 0x7fffffff) == ((cqe->user_data >> 32) & 0x7fffffff))
            on_rx(rs, rc, cqe);
        else /* a closed connection's last completion */
            ring_recycle(&rs->ring, cqe->flags);
        return;
    }
    struct task *t = io_uring_cqe_get_data(cqe);
    t->in_flight = cqe->flags & IORING_CQE_F_MORE; /* else its last */
    t->res = cqe->res;
    run(t);
}

static void reap_completions(struct corouring *rs)
{
    struct io_uring_cqe *cqes[CQE_BATCH];
    unsigned n;
    while ((n = io_uring_peek_batch_cqe(&rs->ring.uring, cqes, CQE_BATCH)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            struct io_uring_cqe cqe = *cqes[i];
            io_uring_cq_advance(&rs->ring.uring, 1); /* copied out: the kernel may reuse it */
            on_cqe(rs, &cqe);
            run_ready(rs);
        }
    }
}

static int corouring_run(struct server *s)
{
    struct corouring *rs = calloc(1, sizeof *rs);
    uint64_t stop_by = 0;
    int rc = -1;

    if (!rs)
        return -1;
    *rs = (struct corouring){.s = s};
    rs->ready_tail = &rs->ready;
    if (ring_init(&rs->ring, s) < 0) {
        ring_exit(&rs->ring);
        free(rs);
        return -1;
    }
    coro_pool_init(&rs->pool, CORO_STACK_SIZE, STACKS_KEPT);
    pipepool_init(&rs->pipes, RING_PIPE_SIZE, pipe_ready, rs);
    rs->acceptor = (struct task){.rs = rs};
    if (!(rs->acceptor.co = coro_create(&rs->pool, accept_main, rs))) {
        server_warn(s, "cannot start the acceptor: %s", strerror(errno));
        goto out;
    }
    rs->coroutines = 1;
    server_warn(s,
                "io_uring: %s%s%s, multishot recv into %d provided buffers, file bodies by splice "
                "(%d pipes)",
                rs->ring.mode, rs->ring.fd_registered ? ", registered ring fd" : "",
                rs->ring.direct ? ", direct descriptors" : "", RING_BUFS, PIPEPOOL_PIPES);
    run(&rs->acceptor);

    while (rs->coroutines > 0) {
        uint64_t now = clock_now_ms();
        if (server_stopping() && !stop_by) { /* every wait fails; each coroutine unwinds */
            stop_by = now + RING_STOP_MS;
            cancel(rs, &rs->acceptor, NULL);
            for (int fd = 0; fd < s->max_fds; fd++)
                if (corouring_conn(server_conn(s, fd))->task.co)
                    cancel_conn(rs, server_conn(s, fd));
            run_ready(rs);
        }
        if (stop_by && now > stop_by) {
            server_warn(s, "%d coroutines still wait for cancelled operations", rs->coroutines);
            break;
        }
        int timeout = deadline_ms_to_next(&s->env.idle, now, stop_by ? 100 : 1000);
        if (ring_wait(&rs->ring, timeout) < 0)
            break;
        reap_completions(rs);
        struct conn *c;
        now = clock_now_ms();
        while ((c = conn_next_expired(&s->env, now))) /* idle too long: unwinds and closes */
            cancel_conn(rs, c);
        run_ready(rs);
    }
    rc = rs->coroutines == 0 ? 0 : -1;
out:
    ring_exit(&rs->ring);      /* the ring first: no operation touches a stack or buffer after */
    if (rs->coroutines == 0) { /* else parked stacks still hold what the kernel may touch */
        pipepool_destroy(&rs->pipes);
        if (coro_pool_drain(&rs->pool) < 0)
            server_warn(s, "munmap: %s", strerror(errno));
    }
    free(rs);
    return rc;
}

int main(int argc, char **argv)
{
    return server_main(argc, argv, "corouring", sizeof(struct corouring_conn), corouring_run);
}
