/*
 * server.c - what every model calls while it serves: accepting within the limits (and
 * what each accept error means), the connection table's slots, closing, warnings.
 * Starting the process and stopping it are server_main.c's.
 */
#include "server.h"

#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void server_warn(const struct server *s, const char *fmt, ...)
{
    if (s->cfg.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", s->model);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

enum accept_error accept_error_kind(int err)
{
    switch (err) {
    /* The backlog is empty (a nonblocking listener, or the 1 s SO_RCVTIMEO of a blocking
     * one), or a signal came: the stop, or bin/fork's SIGCHLD. */
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EINTR:
    /* io_uring's answer for an accept the server cancelled itself, which it does on a stop. */
    case ECANCELED: return ACCEPT_LATER;
    /* Linux says EMFILE before it checks the queue: it does not mean a client waits, so
     * server_accept() checks first, and stops at EAGAIN once nobody waits (libuv b3ab332),
     * or it would spend and reopen the spare fd forever. */
    case EMFILE:
    case ENFILE: return ACCEPT_NO_FDS;
    /* The client reset the connection while it sat in the backlog. */
    case ECONNABORTED:
    /* A protocol error on that one connection (accept(2): retry as for EAGAIN). */
    case EPROTO:
    /* Network errors already pending on the new socket, which Linux passes on from accept():
     * accept(2) lists these for TCP/IP and says to treat them as EAGAIN. */
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    /* A firewall rule refused that connection. */
    case EPERM: return ACCEPT_NEXT;
    default: return ACCEPT_LASTING;
    }
}

void server_accept_failed(const struct server *s, int err)
{
    if (accept_error_kind(err) == ACCEPT_LASTING)
        server_warn(s, "accept: %s", strerror(err));
}

int server_listen_blocking(struct server *s)
{
    /* The 1 s SO_RCVTIMEO (which Linux applies to accept) bounds how late a stop
     * signal that raced the call is noticed. */
    struct timeval second = {.tv_sec = 1};
    int flags = fcntl(s->listen_fd, F_GETFL);
    if (flags < 0 || fcntl(s->listen_fd, F_SETFL, flags & ~O_NONBLOCK) < 0 ||
        setsockopt(s->listen_fd, SOL_SOCKET, SO_RCVTIMEO, &second, sizeof second) < 0)
        return -1;
    s->listen_blocking = true; /* server_accept() then waits a while for a client to refuse */
    return 0;
}

bool server_admit(struct server *s, int fd)
{
    if (fd >= s->max_fds || atomic_load(&s->nconns) >= s->max_conns) {
        close(fd); /* over --max-conns: refused at once, the others carry on */
        return false;
    }
    if (s->all_nconns && atomic_fetch_add(s->all_nconns, 1) >= s->max_conns) {
        atomic_fetch_sub(s->all_nconns, 1); /* the other processes hold the rest */
        close(fd);
        return false;
    }
    atomic_fetch_add(&s->nconns, 1);
    atomic_fetch_add_explicit(&s->connections, 1, memory_order_relaxed);
    return true;
}

int server_accept(struct server *s, bool nonblock)
{
    int flags = SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);
    bool waited = false;
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, flags);
        if (fd >= 0) {
            if (server_admit(s, fd))
                return fd;
            continue;
        }
        enum accept_error kind = accept_error_kind(errno);
        if (kind == ACCEPT_NO_FDS) {
            /* Out of fds: spend the spare one to take the connection off the queue and
             * close it, so the client hears "no" instead of waiting. Linux says EMFILE
             * before it checks the queue, so first make sure a client is queued (a
             * blocking listener would otherwise wait for the next one, and refuse it
             * even if fds came back meanwhile), then try a real accept once more. */
            struct pollfd pfd = {.fd = s->listen_fd, .events = POLLIN};
            if (!waited) {
                waited = true;
                if (poll(&pfd, 1, s->listen_blocking ? 1000 : 0) <= 0) {
                    errno = EAGAIN;
                    return -1;
                }
                continue;
            }
            if (s->reserve_fd >= 0)
                close(s->reserve_fd);
            fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            int err = errno;
            if (fd >= 0)
                close(fd);
            s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                errno = err;
                if (accept_error_kind(err) == ACCEPT_NO_FDS)
                    errno = EAGAIN; /* the spare is gone for now: try on the next event */
                return -1;
            }
            waited = false; /* refused one; check the queue again before the next */
            continue;
        }
        if (kind != ACCEPT_NEXT)
            return -1;
    }
}

struct conn *server_accept_next(struct server *s)
{
    int fd = server_accept(s, true);
    if (fd < 0) {
        server_accept_failed(s, errno);
        return NULL;
    }
    return server_open_conn(s, fd);
}

struct conn *server_open_conn(struct server *s, int fd)
{
    return server_open_conn_in(s, &s->env, fd);
}

struct conn *server_open_conn_in(struct server *s, struct conn_env *env, int fd)
{
    if (fd < 0 || fd >= s->max_fds)
        return NULL;
    struct conn *c = server_conn(s, fd);
    conn_init(c, env, fd);
    conn_start_deadline(c, clock_now_ms());
    return c;
}

void server_drain_input(int fd)
{
    char sink[4096];
    for (int i = 0; i < 16; i++)
        if (recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0)
            break;
}

void server_close_conn(struct server *s, struct conn *c)
{
    int fd = c->fd;
    if (c->linger)
        server_drain_input(fd);
    conn_close(c);
    /* Counted out before the fd is closed, not after: the next accept() to get this
     * fd number passes server_admit(), whose atomic read of nconns then follows this
     * decrement, so every write to the slot above happens before its next owner's
     * first (in bin/actor that may be another loop thread; the kernel's reuse of the
     * number alone orders nothing in the C memory model). */
    server_conn_gone(s);
    close(fd);
}

void server_conn_gone(struct server *s)
{
    atomic_fetch_sub(&s->nconns, 1);
    if (s->all_nconns)
        atomic_fetch_sub(s->all_nconns, 1);
}
