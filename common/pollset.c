/* pollset.c - the interest set shared by bin/poll and bin/busypoll (see pollset.h). */
#include "pollset.h"

#include <stdlib.h>

static short poll_events(int mask)
{
    return (short)((mask & POLLER_READ ? POLLIN : 0) | (mask & POLLER_WRITE ? POLLOUT : 0));
}

struct poller *poller_create(struct server *s)
{
    struct poller *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    if (fdarray_init(&p->set, s->max_fds) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

void poller_destroy(struct poller *p)
{
    fdarray_free(&p->set);
    free(p);
}

int poller_add(struct poller *p, int fd, int mask)
{
    return fdarray_add(&p->set, fd, poll_events(mask));
}

int poller_mod(struct poller *p, int fd, int mask)
{
    return fdarray_set(&p->set, fd, poll_events(mask));
}

void poller_del(struct poller *p, int fd)
{
    fdarray_del(&p->set, fd);
}
