/*
 * epoll.c - model 3, I/O multiplexing with epoll(7).
 *
 * The process waits in epoll_wait(2) for any of its sockets to become ready,
 * then copies the data with recv/send/sendfile, which no longer block.
 * Unlike select and poll, the interest set lives in the kernel, so a wait
 * costs O(ready), not O(watched): idle connections are free.
 *
 * What to look at: each connection is registered once, edge-triggered, for
 * both directions (EPOLLIN | EPOLLOUT | EPOLLET). conn_drive() always reads
 * or writes until the kernel says EAGAIN (or a short read shows the socket
 * is empty, unless EPOLLRDHUP said a FIN may wait behind the data), so no
 * edge is lost and no epoll_ctl is needed per request: poller_mod() has
 * nothing to do.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "loop.h"
#include "poller.h"
#include "server.h"

/* --busy-poll: the epoll set's own busy-poll parameters (Linux 6.9, linux/eventpoll.h;
 * older headers lack them, the kernel's ABI is this). */
#ifndef EPIOCSPARAMS
struct epoll_params {
    uint32_t busy_poll_usecs;
    uint16_t busy_poll_budget;
    uint8_t prefer_busy_poll;
    uint8_t pad; /* must be 0 */
};
#define EPOLL_IOC_TYPE 0x8A
#define EPIOCSPARAMS _IOW(EPOLL_IOC_TYPE, 0x01, struct epoll_params)
#endif

#define EPOLL_BATCH 1024

struct poller {
    int epfd;
    int listen_fd;
    struct epoll_event events[EPOLL_BATCH];
};

struct poller *poller_create(struct server *s)
{
    struct poller *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    p->listen_fd = s->listen_fd;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        free(p);
        return NULL;
    }
    /* --busy-poll: epoll_wait, finding nothing ready, polls the device queue of the
     * sockets' NAPI instance for up to busy_poll_usecs before it sleeps (budget 0: the
     * kernel's 8 packets a round). Loopback traffic has no NAPI instance, so there it
     * never spins: docs/lecture.md measures what that leaves. */
    struct epoll_params bp = {.busy_poll_usecs = (uint32_t)s->cfg.busy_poll_us};
    if (s->cfg.busy_poll_us > 0 && ioctl(p->epfd, EPIOCSPARAMS, &bp) < 0) {
        int e = errno;
        server_warn(s, "--busy-poll: EPIOCSPARAMS: %s (Linux 6.9+, CONFIG_NET_RX_BUSY_POLL)",
                    strerror(e));
        poller_destroy(p);
        errno = e;
        return NULL;
    }
    return p;
}

void poller_destroy(struct poller *p)
{
    close(p->epfd);
    free(p);
}

int poller_add(struct poller *p, int fd, int mask)
{
    struct epoll_event ev = {.data.fd = fd};
    if (fd == p->listen_fd) /* level-triggered: the backlog is drained in one go anyway */
        ev.events = (mask & POLLER_READ) ? EPOLLIN : 0;
    else
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int poller_mod(struct poller *p, int fd, int mask)
{
    /* Edge-triggered on both directions from the start: nothing to change. */
    (void)p, (void)fd, (void)mask;
    return 0;
}

void poller_del(struct poller *p, int fd)
{
    /* close() removes the fd from the epoll set (no dup'd fds here): saves a syscall. */
    (void)p, (void)fd;
}

int poller_wait(struct poller *p, struct poller_event *fired, int max, int timeout_ms)
{
    if (max > EPOLL_BATCH)
        max = EPOLL_BATCH;
    int n = epoll_wait(p->epfd, p->events, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint32_t e = p->events[i].events;
        fired[i].fd = p->events[i].data.fd;
        /* EPOLLRDHUP counts as a hang-up: after it a short read no longer
         * proves the socket empty (the FIN may wait behind the data). */
        fired[i].mask = (e & (EPOLLIN | EPOLLRDHUP) ? POLLER_READ : 0) |
                        (e & EPOLLOUT ? POLLER_WRITE : 0) |
                        (e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP) ? POLLER_ERROR : 0);
    }
    return n;
}

int main(int argc, char **argv)
{
    return loop_main(argc, argv, "epoll");
}
