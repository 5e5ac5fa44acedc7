/*
 * tests/lab/poller.c - the reference solution of the lab (labs/poller/poller.c):
 * level-triggered epoll. Kept out of the students' directory; tests/test_lab.py
 * grades it (it must pass) and the bare skeleton (it must fail).
 *
 * Level-triggered, the kernel reports a condition for as long as it holds. A
 * socket is writable whenever its send buffer has room, which is almost always,
 * so EPOLLOUT is asked for only while the loop wants to write (a response that
 * did not fit in the send buffer); otherwise every epoll_wait would return at
 * once with EPOLLOUT and the loop would spin (exercise 1 of docs/exercises.md).
 * The loop calls poller_mod() only when its interest changes, so a response
 * that fits costs no epoll_ctl at all.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"
#include "poller.h"

#define EPOLL_BATCH 1024

struct poller {
    int epfd;
    struct epoll_event events[EPOLL_BATCH];
};

static uint32_t epoll_bits(int mask)
{
    /* EPOLLRDHUP: a FIN after the data, so a short read no longer proves the
     * socket empty; conn_drive must read on to see the end. */
    return (mask & POLLER_READ ? EPOLLIN | EPOLLRDHUP : 0) | (mask & POLLER_WRITE ? EPOLLOUT : 0);
}

struct poller *poller_create(struct server *s)
{
    (void)s; /* the listener is level-triggered like every other fd here */
    struct poller *p = malloc(sizeof *p);
    int epfd = p ? epoll_create1(EPOLL_CLOEXEC) : -1;
    if (epfd < 0) {
        int saved = errno;
        free(p);
        errno = saved;
        return NULL;
    }
    p->epfd = epfd;
    return p;
}

void poller_destroy(struct poller *p)
{
    close(p->epfd);
    free(p);
}

int poller_add(struct poller *p, int fd, int mask)
{
    struct epoll_event ev = {.events = epoll_bits(mask), .data.fd = fd};
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int poller_mod(struct poller *p, int fd, int mask)
{
    struct epoll_event ev = {.events = epoll_bits(mask), .data.fd = fd};
    return epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void poller_del(struct poller *p, int fd)
{
    /* close() removes fd from the interest list (it is never dup'd): no call. */
    (void)p, (void)fd;
}

/* What the loop is told: readable (EPOLLRDHUP too: read on to see the end),
 * writable, and error or hang-up, which the next I/O call will name. */
static int poller_mask(uint32_t e)
{
    int mask = 0;
    if (e & (EPOLLIN | EPOLLRDHUP))
        mask |= POLLER_READ;
    if (e & EPOLLOUT)
        mask |= POLLER_WRITE;
    if (e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
        mask |= POLLER_ERROR;
    return mask;
}

int poller_wait(struct poller *p, struct poller_event *fired, int max, int timeout_ms)
{
    int n = epoll_wait(p->epfd, p->events, max < EPOLL_BATCH ? max : EPOLL_BATCH, timeout_ms);
    for (int i = 0; i < n; i++)
        fired[i] = (struct poller_event){.fd = p->events[i].data.fd,
                                         .mask = poller_mask(p->events[i].events)};
    return n;
}

int main(int argc, char **argv)
{
    return loop_main(argc, argv, "ltepoll");
}
