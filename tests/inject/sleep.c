/*
 * sleep.c - LD_PRELOAD: a 1 ms sleep before every second call that sends a response
 * (sends.c), as a throttle or a retry loop with a back-off would add. bin/epoll sends
 * each response with one call, so half its requests sleep; the deterministic gate must
 * name it in every workload, churn included: "epoll, keep-alive: clock_nanosleep
 * +0.50/request (new), sleep" (glibc's nanosleep is clock_nanosleep underneath).
 */
#include <stdatomic.h>
#include <time.h>

#include "inject.h"

static atomic_uint sends;

void inject_before_send(void)
{
    if (atomic_fetch_add(&sends, 1) % 2 == 1) {
        const struct timespec one_ms = {.tv_sec = 0, .tv_nsec = 1000 * 1000};
        (void)nanosleep(&one_ms, NULL);
    }
}
