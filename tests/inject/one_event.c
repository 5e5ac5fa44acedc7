/*
 * one_event.c - LD_PRELOAD: epoll_wait returns at most one event per call
 * (maxevents = 1), as a loop that handles the first ready connection and waits
 * again would. With a serial client nothing changes; in the batch workload, where
 * BATCH_CONNS connections are ready at each wake-up, the server then waits once per
 * connection instead of once per batch, and the deterministic gate must name it:
 * "epoll, batch: epoll_wait +0.95/request, I/O wait".
 */
#include <sys/epoll.h>

#include "inject.h"

int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
{
    static int (*real_epoll_wait)(int, struct epoll_event *, int, int);
    if (!real_epoll_wait)
        real_epoll_wait = inject_next("epoll_wait");
    return real_epoll_wait(epfd, events, max < 1 ? max : 1, timeout);
}
