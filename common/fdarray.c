/* fdarray.c - the dense pollfd array behind poll, busypoll and sigio's rescan. */
#include "fdarray.h"

#include <errno.h>
#include <stdlib.h>

int fdarray_init(struct fdarray *a, int cap)
{
    a->n = 0;
    a->cap = cap;
    a->pfds = calloc((size_t)cap, sizeof *a->pfds);
    a->slot = malloc((size_t)cap * sizeof *a->slot);
    if (!a->pfds || !a->slot) {
        fdarray_free(a);
        errno = ENOMEM;
        return -1;
    }
    for (int fd = 0; fd < cap; fd++)
        a->slot[fd] = -1;
    return 0;
}

void fdarray_free(struct fdarray *a)
{
    free(a->pfds);
    free(a->slot);
    a->pfds = NULL;
    a->slot = NULL;
    a->n = 0;
}

int fdarray_add(struct fdarray *a, int fd, short events)
{
    if (fd < 0 || fd >= a->cap || a->slot[fd] >= 0) {
        errno = fd < 0 || fd >= a->cap ? EBADF : EEXIST;
        return -1;
    }
    a->slot[fd] = a->n;
    a->pfds[a->n++] = (struct pollfd){.fd = fd, .events = events};
    return 0;
}

int fdarray_set(struct fdarray *a, int fd, short events)
{
    if (!fdarray_has(a, fd)) {
        errno = EBADF;
        return -1;
    }
    a->pfds[a->slot[fd]].events = events;
    return 0;
}

void fdarray_del(struct fdarray *a, int fd)
{
    if (!fdarray_has(a, fd))
        return;
    int i = a->slot[fd];
    struct pollfd last = a->pfds[--a->n];
    a->pfds[i] = last; /* the last entry fills the hole; a no-op when fd was the last */
    a->slot[last.fd] = i;
    a->slot[fd] = -1;
}
