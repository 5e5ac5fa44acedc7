/*
 * busypoll.c - model 2, nonblocking I/O.
 *
 * The process never waits in the kernel. Every socket is nonblocking, and each
 * pass simply tries them all: accept4 on the listener, recv or send/sendfile on
 * every connection. EAGAIN means "nothing yet, next one".
 *
 * What to look at: poller_wait() asks no one. It ignores the timeout and reports
 * every registered fd as ready for what it is registered for, so the shared
 * loop becomes the spin of Stevens' figure 6.2. The set is kept compact.
 *
 * Its limit, and the lesson: it burns a whole core even with no client at all,
 * and each pass costs one failed syscall per idle connection, so at 10,000
 * connections most of the CPU goes to EAGAIN.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "poller.h"

struct poller {
    int n;                   /* registered fds: set[0..n) */
    int cap;                 /* the size of set[] and index[]: one per possible fd */
    struct poller_event *set; /* fd and interest, already in the shape poller_wait returns */
    int *index;              /* fd -> its entry in set[], -1 if not registered */
};

struct poller *poller_create(struct server *s)
{
    struct poller *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cap = s->max_fds;
    p->set = calloc((size_t)p->cap, sizeof *p->set);
    p->index = malloc((size_t)p->cap * sizeof *p->index);
    if (!p->set || !p->index)
        goto fail;
    for (int fd = 0; fd < p->cap; fd++)
        p->index[fd] = -1;
    return p;
fail:
    free(p->set);
    free(p->index);
    free(p);
    errno = ENOMEM;
    return NULL;
}

void poller_destroy(struct poller *p)
{
    free(p->set);
    free(p->index);
    free(p);
}

int poller_add(struct poller *p, int fd, int mask)
{
    if (fd < 0 || fd >= p->cap || p->index[fd] >= 0) {
        errno = fd < 0 || fd >= p->cap ? EBADF : EEXIST;
        return -1;
    }
    p->index[fd] = p->n;
    p->set[p->n++] = (struct poller_event){.fd = fd, .mask = mask};
    return 0;
}

int poller_mod(struct poller *p, int fd, int mask)
{
    if (fd < 0 || fd >= p->cap || p->index[fd] < 0) {
        errno = EBADF;
        return -1;
    }
    p->set[p->index[fd]].mask = mask;
    return 0;
}

void poller_del(struct poller *p, int fd)
{
    if (fd < 0 || fd >= p->cap || p->index[fd] < 0)
        return;
    int i = p->index[fd];
    struct poller_event last = p->set[--p->n];
    p->set[i] = last; /* the last entry fills the hole; a no-op when fd was the last */
    p->index[last.fd] = i;
    p->index[fd] = -1;
}

int poller_wait(struct poller *p, struct poller_event *fired, int max, int timeout_ms)
{
    /* No kernel wait, so no timeout to honour: "ready" just means "worth a try". */
    (void)timeout_ms;
    int n = p->n < max ? p->n : max;
    memcpy(fired, p->set, (size_t)n * sizeof *fired);
    return n;
}

int main(int argc, char **argv)
{
    return server_main(argc, argv, "busypoll", loop_run);
}
