/*
 * select.c - model 3, I/O multiplexing with select(2).
 *
 * The process waits in select() for any of its sockets to become ready,
 * then copies the data with recv/send/sendfile, which no longer block.
 *
 * What to look at: select() overwrites the fd_sets it is given, so each pass
 * rebuilds them from the backend's interest array and then scans every fd up
 * to the highest for results: O(maxfd) per wait, however few are ready.
 *
 * Its limit, the 1024 wall: an fd_set is a bitmap of FD_SETSIZE (1024) bits,
 * and FD_SET() on a larger fd aborts under _FORTIFY_SOURCE or corrupts memory
 * without it. So poller_add() refuses any fd >= FD_SETSIZE: that connection is
 * closed at once, the server says so once on stderr, and serves the rest.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/select.h>

#include "loop.h"
#include "poller.h"

struct poller {
    const struct server *s;             /* for the one warning */
    int maxfd;                          /* highest fd watched, -1 if none */
    bool warned;                        /* the select limit was reported */
    unsigned char interest[FD_SETSIZE]; /* POLLER_READ | POLLER_WRITE per fd; 0: not watched */
};

struct poller *poller_create(struct server *s)
{
    struct poller *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->s = s;
    p->maxfd = -1;
    return p;
}

void poller_destroy(struct poller *p)
{
    free(p);
}

int poller_mod(struct poller *p, int fd, int mask)
{
    if (fd < 0 || fd >= FD_SETSIZE) {
        errno = EBADF;
        return -1;
    }
    p->interest[fd] = (unsigned char)(mask & (POLLER_READ | POLLER_WRITE));
    if (p->interest[fd] && fd > p->maxfd)
        p->maxfd = fd;
    return 0;
}

int poller_add(struct poller *p, int fd, int mask)
{
    if (fd >= FD_SETSIZE) {
        if (!p->warned) {
            server_warn(p->s,
                        "fd %d is past FD_SETSIZE (%d): connections over the "
                        "select limit are closed at once",
                        fd, FD_SETSIZE);
            p->warned = true;
        }
        errno = EMFILE;
        return -1;
    }
    return poller_mod(p, fd, mask);
}

void poller_del(struct poller *p, int fd)
{
    if (fd < 0 || fd >= FD_SETSIZE)
        return;
    p->interest[fd] = 0;
    while (p->maxfd >= 0 && !p->interest[p->maxfd])
        p->maxfd--;
}

int poller_wait(struct poller *p, struct poller_event *fired, int max, int timeout_ms)
{
    fd_set rfds, wfds;
    struct timeval tv, *tvp = NULL;

    FD_ZERO(&rfds);
    FD_ZERO(&wfds);
    for (int fd = 0; fd <= p->maxfd; fd++) {
        if (p->interest[fd] & POLLER_READ)
            FD_SET(fd, &rfds);
        if (p->interest[fd] & POLLER_WRITE)
            FD_SET(fd, &wfds);
    }
    if (timeout_ms >= 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
        tvp = &tv;
    }
    int ready = select(p->maxfd + 1, &rfds, &wfds, NULL, tvp);
    if (ready <= 0)
        return ready;

    /* An error or hang-up shows as readable or writable: the next I/O call says which. */
    int n = 0;
    for (int fd = 0; fd <= p->maxfd && n < max && ready > 0; fd++) {
        int mask =
            (FD_ISSET(fd, &rfds) ? POLLER_READ : 0) | (FD_ISSET(fd, &wfds) ? POLLER_WRITE : 0);
        if (mask) {
            fired[n++] = (struct poller_event){.fd = fd, .mask = mask};
            ready -= (mask & POLLER_READ ? 1 : 0) + (mask & POLLER_WRITE ? 1 : 0);
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    return loop_main(argc, argv, "select");
}
