/*
 * busy_send.c - LD_PRELOAD: C10K_INJECT_BUSY_NS nanoseconds (default 3,000) of busy work in
 * user space before every call that sends a response (sends.c). bin/epoll sends a keep-alive
 * answer with two such calls (sendmsg for the head, sendfile for the body), so the default
 * adds about 6 us of CPU per request: about 30% of what it spends per request under open
 * load at 100 connections here. tests/test_bench_inject.py checks that the bench's
 * efficiency curves see it, intervals apart. Measured against the clock, not counted in
 * instructions, so the amount of CPU is the same on a faster or slower core.
 */
#include <stdlib.h>
#include <time.h>

#include "inject.h"

static long busy_ns = 3000;

__attribute__((constructor)) static void read_amount(void)
{
    const char *n = getenv("C10K_INJECT_BUSY_NS");
    if (n)
        busy_ns = strtol(n, NULL, 10);
}

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the vDSO: no system call */
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

void inject_before_send(void)
{
    long until = now_ns() + busy_ns;
    while (now_ns() < until)
        ;
}
