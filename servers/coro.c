/*
 * coro.c - blocking-style code on an event loop: a coroutine per connection.
 *
 * serve_connection() is servers/blocking.c's loop almost line for line (recv,
 * conn_on_input, send the head, sendfile the body, conn_on_output), but it runs
 * on a 64 KiB coroutine stack (common/coro.c), not a thread. co_read(),
 * co_write() and co_sendfile() try the nonblocking call; on EAGAIN they note
 * what they wait for and yield to the loop, which waits in epoll_wait(2) as
 * servers/epoll.c does (edge-triggered, one epoll_ctl per connection) and
 * resumes the coroutine when its socket is ready. A timeout or shutdown makes
 * the parked call fail, and the handler unwinds as it would after a reset.
 *
 * The lesson: blocking.c has this code shape, but each waiting connection is a
 * sleeping thread; epoll.c has this event source, but each connection is a state
 * machine that keeps its place in struct conn. Here the place is on the stack.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "coro.h"
#include "server.h"

#define EPOLL_BATCH 1024
#define STACKS_KEPT 1024 /* finished coroutines' stacks kept for the next connections */

/* Bits of conn->model_flags: what a parked coroutine waits for. */
#define CO_WAIT_READ 1u
#define CO_WAIT_WRITE 2u
#define CO_CANCELLED 4u /* timed out or shutting down: the parked call fails */

struct coro_server;

/* One per fd: the coroutine serving it, and how it finds its way back. */
struct task {
    struct coro_server *cs;
    struct coro *co; /* NULL while the fd serves no connection */
};

struct coro_server {
    struct server *s;
    int epfd;
    struct task *tasks; /* indexed by fd, like s->conns */
    struct coro_pool pool;
    struct epoll_event events[EPOLL_BATCH];
};

/* ---- the blocking-looking calls, run inside a connection's coroutine ------------ */

/* Parks the running coroutine until the loop sees what it waits for. */
static int co_park(struct conn *c, uint32_t wait)
{
    if (!(c->model_flags & CO_CANCELLED)) {
        c->model_flags |= wait;
        coro_yield(); /* back in the loop; it clears the wait bits before resuming us */
    }
    if (c->model_flags & CO_CANCELLED) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}

/* After a failed call: 0 to try it again (once the socket is ready), -1 to give up. */
static int co_retry(struct conn *c, uint32_t wait)
{
    if (errno == EINTR)
        return 0;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        return -1;
    return co_park(c, wait);
}

/* Waits until the socket may have input, before a read buffer is taken for it:
 * a connection idle between requests then holds no buffer, only its stack. */
static int co_wait_input(struct conn *c)
{
    for (;;) {
        if (!c->rx_drained) {
            /* A one-byte peek, not a short read's hint: a FIN that came with the last
             * request in one edge must be seen now, as no later event will report it. */
            char probe;
            if (recv(c->fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) >= 0)
                return 0; /* input, or end of stream: the read will say which */
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return 0; /* the read reports the error */
            c->rx_drained = true;
        }
        if (co_park(c, CO_WAIT_READ) < 0) /* until an input event clears rx_drained */
            return -1;
    }
}

static ssize_t co_read(struct conn *c, void *buf, size_t n)
{
    for (;;) {
        ssize_t r = recv(c->fd, buf, n, 0);
        /* A short read does not mark the socket drained: a FIN that came with the
         * data in one edge shows only to the next read, and no event would wake us. */
        if (r >= 0)
            return r;
        if (co_retry(c, CO_WAIT_READ) < 0)
            return -1;
    }
}

/* Sends buf, then buf2 (either may be empty), in one call; flags as for send(2). */
static ssize_t co_write(struct conn *c, const char *buf, size_t n, const char *buf2, size_t n2,
                        int flags)
{
    struct iovec iov[2] = {{(void *)buf, n}, {(void *)buf2, n2}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n2 > 0 ? 2 : 1};
    for (;;) {
        ssize_t r = sendmsg(c->fd, &msg, flags);
        if (r >= 0 || co_retry(c, CO_WAIT_WRITE) < 0)
            return r;
    }
}

static ssize_t co_sendfile(struct conn *c, int fd, off_t *off, size_t n)
{
    for (;;) {
        ssize_t r = sendfile(c->fd, fd, off, n);
        if (r >= 0 || co_retry(c, CO_WAIT_WRITE) < 0)
            return r;
    }
}

/* ---- one connection: blocking.c's serve_connection(), on a coroutine ----------- */

static void serve_connection(void *arg)
{
    struct task *t = arg;
    struct server *s = t->cs->s;
    struct conn *c = &s->conns[t - t->cs->tasks]; /* the task's index is the fd */
    enum conn_want want = CONN_READ;

    while (want != CONN_CLOSE) {
        ssize_t r;
        if (want == CONN_READ) {
            char *p;
            size_t n;
            if (co_wait_input(c) < 0 || conn_rx_buf(c, &p, &n) < 0)
                break;
            r = co_read(c, p, n); /* parks until a request arrives */
            if (r < 0)
                break;
            want = conn_on_input(s, c, (size_t)r);
        } else {
            struct conn_tx tx;
            conn_tx(c, &tx);
            if (tx.len > 0) { /* the head (and a small body from the file cache) */
                bool more = tx.len2 > 0 ? tx.file_fd >= 0 : tx.more;
                r = co_write(c, tx.buf, tx.len, tx.buf2, tx.len2, more ? MSG_MORE : 0);
            } else { /* the file: parks while the socket buffer is full */
                off_t off = tx.file_off;
                r = co_sendfile(c, tx.file_fd, &off, tx.file_len);
            }
            if (r < 0)
                break;
            want = conn_on_output(s, c, (size_t)r);
        }
    }
    server_close_conn(s, c); /* the fd may be reused only after this coroutine is gone */
}

/* ---- the loop: epoll underneath, resuming whoever waits ------------------------ */

/* Runs t's coroutine until it parks again, or frees it once it has finished. */
static void wake(struct coro_server *cs, struct task *t, struct conn *c)
{
    c->model_flags &= ~(CO_WAIT_READ | CO_WAIT_WRITE);
    if (coro_resume(t->co))
        return;
    if (coro_destroy(t->co) < 0)
        server_warn(cs->s, "munmap: %s", strerror(errno));
    t->co = NULL;
}

/* Cancels a parked coroutine: its co_* call fails, and it unwinds and closes. */
static void cancel(struct coro_server *cs, struct conn *c)
{
    c->model_flags |= CO_CANCELLED;
    wake(cs, &cs->tasks[c->fd], c);
}

static void accept_all(struct coro_server *cs)
{
    struct server *s = cs->s;
    struct conn *c;
    while ((c = server_accept_next(s))) { /* until EAGAIN, as in loop.c */
        int fd = c->fd;
        struct task *t = &cs->tasks[fd];
        /* Both directions, edge-triggered, once: no epoll_ctl per request. The
         * generation in the upper half tells a stale event for a reused fd apart. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.u64 = (uint64_t)c->gen << 32 | (uint32_t)fd};
        if (epoll_ctl(cs->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ||
            !(t->co = coro_create(&cs->pool, serve_connection, t))) {
            server_warn(s, "cannot serve a connection: %s", strerror(errno));
            server_close_conn(s, c);
            continue;
        }
        /* Like epoll.c, wait for the first event rather than try a read that would
         * say EAGAIN: EPOLL_CTL_ADD reports input that is already there. */
        c->rx_drained = true;
        wake(cs, t, c); /* runs until co_wait_input() parks it */
    }
}

static void dispatch(struct coro_server *cs, const struct epoll_event *ev)
{
    int fd = (int)(uint32_t)ev->data.u64;
    struct conn *c = &cs->s->conns[fd];
    uint32_t e = ev->events;
    if (!c->open || c->gen != (uint32_t)(ev->data.u64 >> 32)) /* closed earlier in this batch */
        return;
    /* Remember input readiness even while writing: an edge comes only once. */
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        c->rx_drained = false;
    if (((c->model_flags & CO_WAIT_READ) && (e & (EPOLLIN | EPOLLRDHUP))) ||
        ((c->model_flags & CO_WAIT_WRITE) && (e & EPOLLOUT)) ||
        ((c->model_flags & (CO_WAIT_READ | CO_WAIT_WRITE)) && (e & (EPOLLERR | EPOLLHUP))))
        wake(cs, &cs->tasks[fd], c);
}

static int coro_run(struct server *s)
{
    struct coro_server *cs = calloc(1, sizeof *cs);
    int rc = -1;

    if (!cs) {
        server_warn(s, "cannot start the event loop: %s", strerror(errno));
        return -1;
    }
    cs->s = s;
    cs->tasks = calloc((size_t)s->max_fds, sizeof *cs->tasks);
    cs->epfd = epoll_create1(EPOLL_CLOEXEC);
    coro_pool_init(&cs->pool, CORO_STACK_SIZE, STACKS_KEPT);
    struct epoll_event lev = {.events = EPOLLIN, .data.u64 = (uint32_t)s->listen_fd};
    if (!cs->tasks || cs->epfd < 0 || epoll_ctl(cs->epfd, EPOLL_CTL_ADD, s->listen_fd, &lev) < 0) {
        server_warn(s, "cannot start the event loop: %s", strerror(errno));
        goto out;
    }
    for (int fd = 0; fd < s->max_fds; fd++)
        cs->tasks[fd].cs = cs;

    while (!server_stopping()) {
        int timeout = conn_ms_to_next_deadline(s, clock_now_ms(), 1000);
        int n = epoll_wait(cs->epfd, cs->events, EPOLL_BATCH, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            server_warn(s, "epoll_wait: %s", strerror(errno));
            goto out;
        }
        for (int i = 0; i < n; i++) {
            if ((int)(uint32_t)cs->events[i].data.u64 == s->listen_fd)
                accept_all(cs);
            else
                dispatch(cs, &cs->events[i]);
        }
        struct conn *c;
        uint64_t now = clock_now_ms();
        while ((c = conn_next_expired(s, now))) /* idle too long: unwinds and closes */
            cancel(cs, c);
    }
    rc = 0;
out:
    /* Every connection's coroutine is parked in a co_* call: cancel each and let it
     * unwind, so its buffer, file and socket are freed by its own code. */
    for (int fd = 0; cs->tasks && fd < s->max_fds; fd++)
        if (cs->tasks[fd].co)
            cancel(cs, &s->conns[fd]);
    if (coro_pool_drain(&cs->pool) < 0)
        server_warn(s, "munmap: %s", strerror(errno));
    if (cs->epfd >= 0)
        close(cs->epfd);
    free(cs->tasks);
    free(cs);
    return rc;
}

int main(int argc, char **argv)
{
    return server_main(argc, argv, "coro", coro_run);
}
