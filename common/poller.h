/*
 * poller.h - the small readiness interface that select, poll, epoll, busypoll
 * and sigio each implement in their own servers/ file, and loop.c drives.
 *
 * Like redis's ae_*.c backends: every backend normalises what its kernel
 * interface reports into one fired[] array, so the dispatch is shared. Each
 * backend is a separate compilation unit linked into its own binary, so there
 * is no function-pointer indirection on the hot path.
 */
#ifndef C10K_POLLER_H
#define C10K_POLLER_H

#include <stdbool.h>

#include "conn.h"
#include "drive.h"
#include "server.h"

/* Interest and readiness bits; READ and WRITE equal CONN_READ and CONN_WRITE. */
#define POLLER_READ CONN_READ
#define POLLER_WRITE CONN_WRITE
#define POLLER_ERROR 4 /* error or hang-up: the next I/O call will say which */

struct poller_event {
    int fd;
    int mask;
};

struct poller;

/* Returns NULL (with errno) if the backend cannot start. */
struct poller *poller_create(struct server *s);
void poller_destroy(struct poller *p);
/* Starts watching fd; -1 means this backend cannot take it (the caller closes it). */
int poller_add(struct poller *p, int fd, int mask);
/* Changes what fd is watched for; called only when the mask really changes. */
int poller_mod(struct poller *p, int fd, int mask);
/* Stops watching fd; called before it is closed. */
void poller_del(struct poller *p, int fd);
/* Waits up to timeout_ms for readiness; fills fired[0..n) and returns n, or -1. */
int poller_wait(struct poller *p, struct poller_event *fired, int max, int timeout_ms);

#endif
