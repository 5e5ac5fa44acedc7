/*
 * conn_leak.c - LD_PRELOAD: 4 KiB allocated, written and never freed at every accepted
 * connection, as a per-connection structure that is never released would leak. The
 * deterministic gate's memory layer must name it: "epoll, memory: Pss +4.0
 * KiB/connection".
 */
#include <stdlib.h>
#include <string.h>

#include "inject.h"

#define LEAK_SIZE 4096

/* Every block, chained: reachable, so the compiler cannot drop the allocation. */
static void *volatile leaked;

void inject_after_accept(int fd)
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
