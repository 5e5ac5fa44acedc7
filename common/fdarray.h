/*
 * fdarray.h - a compact array of pollfds with an fd -> slot index: add,
 * change and remove in O(1), the array always dense (poll's, busypoll's and
 * sigio's interest sets). Removal moves the last entry into the hole.
 */
#ifndef C10K_FDARRAY_H
#define C10K_FDARRAY_H

#include <poll.h>

struct fdarray {
    struct pollfd *pfds; /* pfds[0..n) in use */
    int n;
    int cap;   /* one slot per possible fd */
    int *slot; /* fd -> index in pfds, -1 if absent */
};

/* Returns 0, or -1 with errno ENOMEM. */
int fdarray_init(struct fdarray *a, int cap);
void fdarray_free(struct fdarray *a);
/* Returns -1 with EBADF (out of range) or EEXIST. */
int fdarray_add(struct fdarray *a, int fd, short events);
/* Returns -1 with EBADF if fd is absent. */
int fdarray_set(struct fdarray *a, int fd, short events);
void fdarray_del(struct fdarray *a, int fd);

static inline int fdarray_has(const struct fdarray *a, int fd)
{
    return fd >= 0 && fd < a->cap && a->slot[fd] >= 0;
}

#endif
