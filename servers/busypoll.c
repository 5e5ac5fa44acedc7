/*
 * busypoll.c - model 2, nonblocking I/O.
 *
 * The process never waits in the kernel. Every socket is nonblocking, and each
 * pass simply tries them all: accept4 on the listener, recv or send/sendfile on
 * every connection. EAGAIN means "nothing yet, next one".
 *
 * What to look at: poller_wait() asks no one. It ignores the timeout and reports
 * every registered fd as ready for what it is registered for, so the shared
 * loop becomes the spin of Stevens' figure 6.2. The set is bin/poll's
 * (common/pollset.c): the two differ only in this one function.
 *
 * Its limit, and the lesson: it burns a whole core even with no client at all,
 * and each pass costs one failed syscall per idle connection, so at 10,000
 * connections most of the CPU goes to EAGAIN.
 */
#include "loop.h"
#include "pollset.h"

int poller_wait(struct poller *p, struct poller_event *fired, int max, int timeout_ms)
{
    /* No kernel wait, so no timeout to honour: "ready" just means "worth a try". */
    (void)timeout_ms;
    int n = p->set.n < max ? p->set.n : max;
    for (int i = 0; i < n; i++) {
        short ev = p->set.pfds[i].events;
        fired[i].fd = p->set.pfds[i].fd;
        fired[i].mask = (ev & POLLIN ? POLLER_READ : 0) | (ev & POLLOUT ? POLLER_WRITE : 0);
    }
    return n;
}

int main(int argc, char **argv)
{
    return loop_main(argc, argv, "busypoll");
}
