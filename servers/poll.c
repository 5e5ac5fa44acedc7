/*
 * poll.c - model 3, I/O multiplexing with poll(2).
 *
 * The process waits in poll() for any of its sockets to become ready, then
 * copies the data with recv/send/sendfile, which no longer block.
 *
 * What to look at: unlike select, poll takes an array of (fd, events) and
 * answers in a separate revents field, so nothing is rebuilt between passes
 * and there is no FD_SETSIZE wall. The array is kept compact: a removed entry
 * is replaced by the last one, and an fd -> index map finds an entry in O(1),
 * so poller_mod() is one store into events.
 *
 * Its limit: the whole array goes into the kernel and is scanned on every
 * call, so a wait costs O(watched), not O(ready): 10,000 idle connections are
 * paid for on every pass. epoll keeps the set in the kernel instead.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "poller.h"

struct poller {
    int n;              /* entries in use: pfds[0..n) */
    int cap;            /* the size of pfds[] and index[]: one per possible fd */
    struct pollfd *pfds;
    int *index;         /* fd -> its entry in pfds[], -1 if not watched */
};

static short poll_events(int mask)
{
    return (short)((mask & POLLER_READ ? POLLIN : 0) | (mask & POLLER_WRITE ? POLLOUT : 0));
}

struct poller *poller_create(struct server *s)
{
    struct poller *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cap = s->max_fds;
    p->pfds = calloc((size_t)p->cap, sizeof *p->pfds);
    p->index = malloc((size_t)p->cap * sizeof *p->index);
    if (!p->pfds || !p->index)
        goto fail;
    for (int fd = 0; fd < p->cap; fd++)
        p->index[fd] = -1;
    return p;
fail:
    free(p->pfds);
    free(p->index);
    free(p);
    errno = ENOMEM;
    return NULL;
}

void poller_destroy(struct poller *p)
{
    free(p->pfds);
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
    p->pfds[p->n++] = (struct pollfd){.fd = fd, .events = poll_events(mask)};
    return 0;
}

int poller_mod(struct poller *p, int fd, int mask)
{
    if (fd < 0 || fd >= p->cap || p->index[fd] < 0) {
        errno = EBADF;
        return -1;
    }
    p->pfds[p->index[fd]].events = poll_events(mask);
    return 0;
}

void poller_del(struct poller *p, int fd)
{
    if (fd < 0 || fd >= p->cap || p->index[fd] < 0)
        return;
    int i = p->index[fd];
    struct pollfd last = p->pfds[--p->n];
    p->pfds[i] = last; /* the last entry fills the hole; a no-op when fd was the last */
    p->index[last.fd] = i;
    p->index[fd] = -1;
}

int poller_wait(struct poller *p, struct poller_event *fired, int max, int timeout_ms)
{
    int ready = poll(p->pfds, (nfds_t)p->n, timeout_ms);
    if (ready <= 0)
        return ready;

    int n = 0;
    for (int i = 0; i < p->n && n < ready && n < max; i++) {
        short re = p->pfds[i].revents;
        if (!re)
            continue;
        fired[n].fd = p->pfds[i].fd;
        fired[n].mask = (re & POLLIN ? POLLER_READ : 0) | (re & POLLOUT ? POLLER_WRITE : 0) |
                        (re & (POLLERR | POLLHUP | POLLNVAL) ? POLLER_ERROR : 0);
        n++;
    }
    return n;
}

int main(int argc, char **argv)
{
    return server_main(argc, argv, "poll", loop_run);
}
