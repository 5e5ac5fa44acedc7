/*
 * conn_leak.c - LD_PRELOAD: 4 KiB allocated, written and never freed at every accepted
 * connection, as a per-connection structure that is never released would leak. The
 * deterministic gate's memory layer must name it: "epoll, memory: Pss +4.0
 * KiB/connection".
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "inject.h"

#define LEAK_SIZE 4096

/* Every block, chained: reachable, so the compiler cannot drop the allocation. */
static void *volatile leaked;

static void leak(int fd)
{
    if (fd < 0)
        return;
    void **lost = malloc(LEAK_SIZE);
    if (lost) {
        memset(lost, 0xa5, LEAK_SIZE); /* touched: it is resident, and counted in Pss */
        *lost = leaked;
        leaked = lost;
    }
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
    if (!real_accept4)
        real_accept4 = inject_next("accept4");
    int r = real_accept4(fd, addr, len, flags);
    leak(r);
    return r;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    static int (*real_accept)(int, struct sockaddr *, socklen_t *);
    if (!real_accept)
        real_accept = inject_next("accept");
    int r = real_accept(fd, addr, len);
    leak(r);
    return r;
}
