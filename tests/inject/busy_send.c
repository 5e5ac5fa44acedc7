/*
 * busy_send.c - LD_PRELOAD: C10K_INJECT_BUSY_NS nanoseconds (default 8,000) of busy work in
 * user space before every call that sends a response (sends.c). bin/epoll sends a cached
 * 4 KiB keep-alive answer, head and body, with one sendmsg, so that is 8 us per request
 * (measured: 0.98 ms per request with 1 ms per call). Its net cost is less, since a server
 * slowed this way answers more requests per wake-up: at 15,000 req/s over 100 connections
 * (2026-12-06, machine busy) bin/epoll spent ~21 us per request, +4 with 6 us, +8 with 12,
 * +22 with 24; 8 us makes it about 30% dearer. tests/test_bench_inject.py checks that the
 * bench's efficiency curves see that. Measured against the clock, not counted in
 * instructions, so the amount of CPU is the same on a faster or slower core.
 */
#include <stdlib.h>
#include <time.h>

#include "inject.h"

static long busy_ns = 8000;

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
