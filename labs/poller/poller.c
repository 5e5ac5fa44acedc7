/*
 * labs/poller/poller.c - the lab: write a poller. Level-triggered epoll, as a
 * seventh readiness server ("ltepoll") over the shared event loop.
 *
 * Fill in the six functions below; common/poller.h says what each must do, and
 * docs/lab.md walks through the task, the grading and the traps. Build and grade:
 *
 *     make grade LAB=labs/poller
 *
 * which links this file with common/loop.c and libc10k.a into build/grade/ltepoll,
 * runs the integration suite against it, counts its system calls per request,
 * and prints a score. As shipped, every function is a stub and the server cannot
 * start: the grader gives it 0.
 *
 * The rules of the game (what the grader checks besides correctness):
 *   - level-triggered: no EPOLLET anywhere;
 *   - one epoll_wait per request when a client sends requests back to back
 *     (think about EPOLLOUT: a socket is almost always writable);
 *   - no epoll_ctl per request (poller_mod is called only when the loop's
 *     interest in a connection really changes);
 *   - an idle connection costs nothing per request (O(ready), not O(watched)).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"
#include "poller.h"

struct poller {
    int epfd; /* TODO: what else does a wait need? (room for the kernel's events) */
};

struct poller *poller_create(struct server *s)
{
    /* TODO: allocate the poller and create the epoll instance (epoll_create1).
     * s->listen_fd is the listening socket, if you need to tell it apart. */
    (void)s;
    errno = ENOSYS;
    return NULL;
}

void poller_destroy(struct poller *p)
{
    /* TODO: close the epoll instance and free the poller. */
    (void)p;
}

int poller_add(struct poller *p, int fd, int mask)
{
    /* TODO: EPOLL_CTL_ADD fd for the events mask asks for (POLLER_READ, POLLER_WRITE).
     * Which epoll bits tell you that the peer hung up? */
    (void)p, (void)fd, (void)mask;
    errno = ENOSYS;
    return -1;
}

int poller_mod(struct poller *p, int fd, int mask)
{
    /* TODO: the loop's interest in fd changed: tell the kernel. */
    (void)p, (void)fd, (void)mask;
    errno = ENOSYS;
    return -1;
}

void poller_del(struct poller *p, int fd)
{
    /* TODO: stop watching fd; it is closed right after this. (Is a system call
     * needed at all? Read epoll(7), "Will closing a file descriptor cause it to be
     * removed from all epoll interest lists?") */
    (void)p, (void)fd;
}

int poller_wait(struct poller *p, struct poller_event *fired, int max, int timeout_ms)
{
    /* TODO: one epoll_wait, then translate each event into fired[i]: fd, and a mask
     * of POLLER_READ, POLLER_WRITE and POLLER_ERROR (error or hang-up). Return how
     * many, 0 on timeout, -1 on error (an EINTR is the loop's business). */
    (void)p, (void)fired, (void)max, (void)timeout_ms;
    errno = ENOSYS;
    return -1;
}

int main(int argc, char **argv)
{
    return loop_main(argc, argv, "ltepoll");
}
