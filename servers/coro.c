/*
 * coro.c - blocking-style code on an event loop: a coroutine per connection.
 *
 * serve_connection() is bin/blocking's loop (serve_blocking() in
 * servers/blocking.c) almost line for line (recv, conn_on_input, send the
 * head, sendfile the body, conn_on_output), but it runs on a 64 KiB coroutine
 * stack (common/coro.c), not a thread. co_read(),
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
#include "drive.h"
#include "server.h"

#define EPOLL_BATCH 1024
#define STACKS_KEPT 1024 /* finished coroutines' stacks kept for the next connections */

struct coro_server {
    struct server *s;
    int epfd;
    struct coro_pool pool;
    struct epoll_event events[EPOLL_BATCH];
    int next, n; /* events[next..n) is not dispatched yet; n is 0 between batches */
};

/* A connection: the protocol's state, the coroutine serving it, and what it waits for. */
struct coro_conn {
    struct conn conn;
    struct coro_server *cs;
    struct coro *co; /* NULL while the fd serves no connection */
    bool wait_read;  /* parked in a read until input comes */
    bool wait_write; /* parked in a write until there is room */
    bool cancelled;  /* timed out or shutting down: the parked call fails */
    uint8_t rx;      /* enum conn_rx: whether a read can find anything */
};

static struct coro_conn *coro_conn(struct conn *c)
{
    return container_of(c, struct coro_conn, conn);
}

/* ---- the blocking-looking calls, run inside a connection's coroutine ------------ */

/* Parks the running coroutine until the loop sees what it waits for (*wait). */
static int co_park(struct coro_conn *cc, bool *wait)
{
    if (!cc->cancelled) {
        *wait = true;
        coro_yield(); /* back in the loop; it clears the wait flags before resuming us */
    }
    if (cc->cancelled) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}

/* After a failed call: 0 to try it again (once the socket is ready), -1 to give up. */
static int co_retry(struct coro_conn *cc, bool *wait)
{
    if (errno == EINTR)
        return 0;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        return -1;
    return co_park(cc, wait);
}

/* Waits until the socket may have input, before a read buffer is taken for it:
 * a connection idle between requests then holds no buffer, only its stack. */
static int co_wait_input(struct coro_conn *cc)
{
    while (cc->rx == RX_DRAINED)
        if (co_park(cc, &cc->wait_read) < 0) /* until an input event says otherwise */
            return -1;
    return 0;
}

static ssize_t co_read(struct coro_conn *cc, void *buf, size_t n)
{
    for (;;) {
        ssize_t r = recv(cc->conn.fd, buf, n, 0);
        if (r >= 0) {
            conn_rx_read(&cc->rx, (size_t)r, n);
            return r;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            cc->rx = RX_DRAINED;
        if (co_retry(cc, &cc->wait_read) < 0)
            return -1;
    }
}

/* Sends buf, then buf2 (either may be empty), in one call; flags as for send(2). */
static ssize_t co_write(struct coro_conn *cc, const char *buf, size_t n, const char *buf2,
                        size_t n2, int flags)
{
    struct iovec iov[2] = {{(void *)buf, n}, {(void *)buf2, n2}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n2 > 0 ? 2 : 1};
    for (;;) {
        ssize_t r = sendmsg(cc->conn.fd, &msg, flags);
        if (r >= 0 || co_retry(cc, &cc->wait_write) < 0)
            return r;
    }
}

static ssize_t co_sendfile(struct coro_conn *cc, int fd, off_t *off, size_t n)
{
    for (;;) {
        ssize_t r = sendfile(cc->conn.fd, fd, off, n);
        if (r >= 0 || co_retry(cc, &cc->wait_write) < 0)
            return r;
    }
}

/* Closes cc's connection (the fd may be reused only after its coroutine is gone: this
 * is its last act), and drops its fd's events still ahead in this batch: the rule of
 * loop_close() in common/loop.c (libuv's uv__platform_invalidate_fd), so a connection
 * accepted later in the batch on the same fd is not woken by the old one's events. */
static void close_conn(struct coro_conn *cc)
{
    struct coro_server *cs = cc->cs;
    int fd = cc->conn.fd;
    server_close_conn(cs->s, &cc->conn);
    for (int i = cs->next; i < cs->n; i++)
        if (cs->events[i].data.fd == fd)
            cs->events[i].data.fd = -1;
}

/* ---- one connection: serve_blocking()'s loop, on a coroutine --------------- */

static void serve_connection(void *arg)
{
    struct coro_conn *cc = arg;
    struct conn *c = &cc->conn;
    enum conn_want want = CONN_READ;

    while (want != CONN_CLOSE) {
        ssize_t r;
        if (want == CONN_READ) {
            char *p;
            size_t n;
            if (co_wait_input(cc) < 0 || conn_rx_buf(c, &p, &n) < 0)
                break;
            r = co_read(cc, p, n); /* parks until a request arrives */
            if (r < 0)
                break;
            want = conn_on_input(c, (size_t)r);
        } else {
            struct conn_tx tx;
            conn_tx(c, &tx, true);
            if (tx.len > 0) { /* the head (and a small body from the file cache) */
                r = co_write(cc, tx.buf, tx.len, tx.buf2, tx.len2, tx.more ? MSG_MORE : 0);
            } else { /* the file: parks while the socket buffer is full */
                off_t off = tx.file_off;
                r = co_sendfile(cc, tx.file_fd, &off, tx.file_len);
            }
            if (r < 0)
                break;
            want = conn_on_output(c, (size_t)r);
        }
    }
    close_conn(cc);
}

/* ---- the loop: epoll underneath, resuming whoever waits ------------------------ */

/* Runs cc's coroutine until it parks again, or frees it once it has finished. */
static void wake(struct coro_conn *cc)
{
    cc->wait_read = cc->wait_write = false;
    if (coro_resume(cc->co))
        return;
    if (coro_destroy(cc->co) < 0)
        server_warn(cc->cs->s, "munmap: %s", strerror(errno));
    cc->co = NULL;
}

/* Cancels a parked coroutine: its co_* call fails, and it unwinds and closes. */
static void cancel(struct coro_conn *cc)
{
    cc->cancelled = true;
    wake(cc);
}

static void accept_all(struct coro_server *cs)
{
    struct server *s = cs->s;
    struct conn *c;
    while ((c = server_accept_next(s))) { /* until EAGAIN, as in loop.c */
        int fd = c->fd;
        struct coro_conn *cc = coro_conn(c);
        cc->cs = cs;
        cc->wait_read = cc->wait_write = cc->cancelled = false;
        /* Both directions, edge-triggered, once: no epoll_ctl per request. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.fd = fd};
        if (epoll_ctl(cs->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ||
            !(cc->co = coro_create(&cs->pool, serve_connection, cc))) {
            server_warn(s, "cannot serve a connection: %s", strerror(errno));
            server_close_conn(s, c);
            continue;
        }
        /* Like epoll.c, wait for the first event rather than try a read that would
         * say EAGAIN: EPOLL_CTL_ADD reports input that is already there. */
        cc->rx = RX_DRAINED;
        wake(cc); /* runs until co_wait_input() parks it */
    }
}

static void dispatch(struct coro_server *cs, const struct epoll_event *ev)
{
    struct coro_conn *cc = coro_conn(server_conn(cs->s, ev->data.fd));
    uint32_t e = ev->events;
    /* Remember input readiness even while writing: an edge comes only once. */
    conn_rx_event(&cc->rx, e & EPOLLIN, e & (EPOLLRDHUP | EPOLLERR | EPOLLHUP));
    if ((cc->wait_read && (e & (EPOLLIN | EPOLLRDHUP))) || (cc->wait_write && (e & EPOLLOUT)) ||
        ((cc->wait_read || cc->wait_write) && (e & (EPOLLERR | EPOLLHUP))))
        wake(cc);
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
    cs->epfd = epoll_create1(EPOLL_CLOEXEC);
    coro_pool_init(&cs->pool, CORO_STACK_SIZE, STACKS_KEPT);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = s->listen_fd};
    if (cs->epfd < 0 || epoll_ctl(cs->epfd, EPOLL_CTL_ADD, s->listen_fd, &lev) < 0) {
        server_warn(s, "cannot start the event loop: %s", strerror(errno));
        goto out;
    }

    while (!server_stopping()) {
        int timeout = deadline_ms_to_next(&s->env.idle, clock_now_ms(), 1000);
        int n = epoll_wait(cs->epfd, cs->events, EPOLL_BATCH, timeout);
        if (n < 0 && errno != EINTR) { /* EINTR: a stop signal, seen at the top */
            server_warn(s, "epoll_wait: %s", strerror(errno));
            goto out;
        }
        for (cs->next = 0, cs->n = n; cs->next < cs->n;) {
            const struct epoll_event *ev = &cs->events[cs->next++];
            if (ev->data.fd < 0) /* closed earlier in this batch: close_conn() */
                continue;
            if (ev->data.fd == s->listen_fd)
                accept_all(cs);
            else
                dispatch(cs, ev);
        }
        cs->n = 0;
        struct conn *c;
        uint64_t now = clock_now_ms();
        while ((c = conn_next_expired(&s->env, now))) /* idle too long: unwinds and closes */
            cancel(coro_conn(c));
    }
    rc = 0;
out:
    /* Every connection's coroutine is parked in a co_* call: cancel each and let it
     * unwind, so its buffer, file and socket are freed by its own code. */
    for (int fd = 0; fd < s->max_fds; fd++)
        if (coro_conn(server_conn(s, fd))->co)
            cancel(coro_conn(server_conn(s, fd)));
    if (coro_pool_drain(&cs->pool) < 0)
        server_warn(s, "munmap: %s", strerror(errno));
    if (cs->epfd >= 0)
        close(cs->epfd);
    free(cs);
    return rc;
}

int main(int argc, char **argv)
{
    return server_main(argc, argv, "coro", sizeof(struct coro_conn), coro_run);
}
