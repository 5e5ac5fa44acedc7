/*
 * idle_scan.c - LD_PRELOAD: an O(idle) regression for the models that wait in
 * epoll_wait (bin/epoll, bin/coro). Before every epoll_wait it asks the kernel about
 * every fd up to the highest one accept has returned (fcntl F_GETFD), as a loop that
 * sweeps all connections for timeouts would: a request then costs one call more per
 * open connection, idle or not.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/epoll.h>

#include "inject.h"

static atomic_int highest_fd;

/* The highest fd accepted so far. */
void inject_after_accept(int fd)
{
    int seen = atomic_load(&highest_fd);
    while (fd > seen && !atomic_compare_exchange_weak(&highest_fd, &seen, fd))
        ;
}

int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
{
    static int (*real_epoll_wait)(int, struct epoll_event *, int, int);
    if (!real_epoll_wait)
        real_epoll_wait = inject_next("epoll_wait");
    int top = atomic_load(&highest_fd);
    for (int fd = 0; fd <= top; fd++)
        (void)fcntl(fd, F_GETFD);
    return real_epoll_wait(epfd, events, max, timeout);
}
