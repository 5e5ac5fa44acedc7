/*
 * loop.c - the one event loop of the readiness models. It asks the poller
 * what is ready, accepts on the listener, lets conn_drive() do the I/O, and
 * tells the poller when a connection's interest changes. Everything that
 * differs between select, poll, epoll, busypoll and sigio is behind poller.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "loop.h"
#include "poller.h"

/* A readiness model's connection: the protocol's state, and what the loop knows. */
struct loop_conn {
    struct conn conn;
    uint8_t interest; /* what the poller was last asked to watch for */
    uint8_t rx;       /* enum conn_rx: whether a read can find anything */
};

static struct loop_conn *loop_conn(struct conn *c)
{
    return container_of(c, struct loop_conn, conn);
}

/* ---- the loop -------------------------------------------------------------------- */

struct loop {
    struct server *s;
    struct poller *p;
    struct poller_event *fired; /* what the last poller_wait() reported */
    int next, n;                /* fired[next..n) is not dispatched yet; n is 0 between */
};

/*
 * Closes c, and drops its fd's reports still ahead in this batch. The one rule for
 * "closed earlier in this batch" of every readiness loop (bin/actor's and bin/coro's
 * keep it too), as libuv's uv__platform_invalidate_fd(): once closed, the fd number may
 * be accepted again before the batch ends (in bin/actor, by another loop's thread), and
 * the new connection must not be handed the old one's readiness.
 */
static void loop_close(struct loop *l, struct conn *c)
{
    int fd = c->fd;
    poller_del(l->p, fd);
    server_close_conn(l->s, c);
    for (int i = l->next; i < l->n; i++)
        if (l->fired[i].fd == fd)
            l->fired[i].fd = -1;
}

static void loop_accept(struct loop *l)
{
    struct server *s = l->s;
    /* Until EAGAIN: edge-triggered sources report a waiting backlog only once. */
    struct conn *c;
    while ((c = server_accept_next(s))) {
        struct loop_conn *lc = loop_conn(c);
        if (poller_add(l->p, c->fd, POLLER_READ) < 0) {
            /* The backend is full (select's FD_SETSIZE): serve what it holds before
             * refusing more, or a storm of reconnects starves them. The listener is
             * level-triggered there, so the backlog is seen again next pass. */
            server_close_conn(s, c);
            return;
        }
        lc->interest = CONN_READ;
        lc->rx = RX_READY;
    }
}

static void loop_serve(struct loop *l, struct loop_conn *lc)
{
    enum conn_want want = conn_drive(&lc->conn, &lc->rx);
    if (want == CONN_CLOSE) {
        loop_close(l, &lc->conn);
        return;
    }
    if (want != lc->interest) { /* skip the syscall when nothing changes */
        if (poller_mod(l->p, lc->conn.fd, want) < 0) {
            loop_close(l, &lc->conn);
            return;
        }
        lc->interest = (uint8_t)want;
    }
}

static int loop_run(struct server *s)
{
    int cap = s->max_fds;
    struct loop l = {.s = s, .fired = calloc((size_t)cap, sizeof *l.fired), .p = poller_create(s)};
    int rc = -1;

    if (!l.fired || !l.p) {
        server_warn(s, "cannot start the event loop: %s", strerror(errno));
        goto out;
    }
    if (poller_add(l.p, s->listen_fd, POLLER_READ) < 0) {
        server_warn(s, "cannot watch the listening socket: %s", strerror(errno));
        goto out;
    }

    while (!server_stopping()) {
        int timeout = deadline_ms_to_next(&s->env.idle, clock_now_ms(), 1000);
        int n = poller_wait(l.p, l.fired, cap, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            server_warn(s, "wait: %s", strerror(errno));
            goto out;
        }
        for (l.next = 0, l.n = n; l.next < l.n;) {
            struct poller_event ev = l.fired[l.next++];
            if (ev.fd < 0) /* closed earlier in this batch: loop_close() */
                continue;
            if (ev.fd == s->listen_fd) {
                loop_accept(&l);
                continue;
            }
            struct loop_conn *lc = loop_conn(server_conn(s, ev.fd));
            /* Remember input readiness even while writing: an edge comes only once. */
            conn_rx_event(&lc->rx, ev.mask & POLLER_READ, ev.mask & POLLER_ERROR);
            if (!(ev.mask & (lc->interest | POLLER_ERROR)))
                continue;
            loop_serve(&l, lc);
        }
        l.n = 0;
        uint64_t now = clock_now_ms();
        struct conn *c;
        while ((c = conn_next_expired(&s->env, now)))
            loop_close(&l, c);
    }
    rc = 0;
out:
    l.n = 0;
    for (int fd = 0; fd < s->max_fds; fd++)
        if (server_conn(s, fd)->open)
            loop_close(&l, server_conn(s, fd));
    if (l.p)
        poller_destroy(l.p);
    free(l.fired);
    return rc;
}

int loop_main(int argc, char **argv, const char *model)
{
    return server_main(argc, argv, model, sizeof(struct loop_conn), loop_run);
}
