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

static void loop_close(struct server *s, struct poller *p, struct conn *c)
{
    poller_del(p, c->fd);
    server_close_conn(s, c);
}

static void loop_accept(struct server *s, struct poller *p)
{
    /* Until EAGAIN: edge-triggered sources report a waiting backlog only once. */
    struct conn *c;
    while ((c = server_accept_next(s))) {
        struct loop_conn *lc = loop_conn(c);
        if (poller_add(p, c->fd, POLLER_READ) < 0) {
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

static void loop_serve(struct server *s, struct poller *p, struct loop_conn *lc)
{
    enum conn_want want = conn_drive(&lc->conn, &lc->rx);
    if (want == CONN_CLOSE) {
        loop_close(s, p, &lc->conn);
        return;
    }
    if (want != lc->interest) { /* skip the syscall when nothing changes */
        if (poller_mod(p, lc->conn.fd, want) < 0) {
            loop_close(s, p, &lc->conn);
            return;
        }
        lc->interest = (uint8_t)want;
    }
}

static int loop_run(struct server *s)
{
    int cap = s->max_fds;
    struct poller_event *fired = calloc((size_t)cap, sizeof *fired);
    struct poller *p = poller_create(s);
    int rc = -1;

    if (!fired || !p) {
        server_warn(s, "cannot start the event loop: %s", strerror(errno));
        goto out;
    }
    if (poller_add(p, s->listen_fd, POLLER_READ) < 0) {
        server_warn(s, "cannot watch the listening socket: %s", strerror(errno));
        goto out;
    }

    while (!server_stopping()) {
        int timeout = deadline_ms_to_next(&s->env.idle, clock_now_ms(), 1000);
        int n = poller_wait(p, fired, cap, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            server_warn(s, "wait: %s", strerror(errno));
            goto out;
        }
        for (int i = 0; i < n; i++) {
            int fd = fired[i].fd;
            if (fd == s->listen_fd) {
                loop_accept(s, p);
                continue;
            }
            struct loop_conn *lc = loop_conn(server_conn(s, fd));
            if (!lc->conn.open) /* closed earlier in this batch */
                continue;
            /* Remember input readiness even while writing: an edge comes only once. */
            conn_rx_event(&lc->rx, fired[i].mask & POLLER_READ, fired[i].mask & POLLER_ERROR);
            if (!(fired[i].mask & (lc->interest | POLLER_ERROR)))
                continue;
            loop_serve(s, p, lc);
        }
        uint64_t now = clock_now_ms();
        struct conn *c;
        while ((c = conn_next_expired(&s->env, now)))
            loop_close(s, p, c);
    }
    rc = 0;
out:
    for (int fd = 0; fd < s->max_fds; fd++)
        if (server_conn(s, fd)->open)
            loop_close(s, p, server_conn(s, fd));
    if (p)
        poller_destroy(p);
    free(fired);
    return rc;
}

int loop_main(int argc, char **argv, const char *model)
{
    return server_main(argc, argv, model, sizeof(struct loop_conn), loop_run);
}
