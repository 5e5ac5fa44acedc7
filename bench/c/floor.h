/* floor.h - what floor.c's two loops share: the answer built once, and one worker's
 * listener, counts and stop signal. floor.c has the readiness loop (epoll), floor_uring.c
 * the completion loop (io_uring, `floor --uring`). */
#ifndef C10K_FLOOR_H
#define C10K_FLOOR_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>

/* The whole answer, head and body, built once at start-up. */
struct answer {
    char *bytes;
    size_t len;
};

/* One worker: its listener, its epoll set (the readiness loop's), its counts. stop_fd is
 * shared: an eventfd that becomes readable when the process is told to stop, waking every
 * worker. */
struct worker {
    pthread_t thread;
    int lfd, epfd, stop_fd;
    int max_conns; /* the completion loop's table of direct descriptors */
    const struct answer *a;
    unsigned long requests, conns;
    int rc;
};

/* Serves until stop_fd is readable, or (the first worker, which gets the signals) until
 * *signalled. 0, or -1 on an error that ended it (printed). */
int floor_uring_loop(struct worker *w, volatile sig_atomic_t *signalled);

#endif
