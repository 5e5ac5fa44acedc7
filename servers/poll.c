/*
 * poll.c - model 3, I/O multiplexing with poll(2).
 *
 * The process waits in poll() for any of its sockets to become ready, then
 * copies the data with recv/send/sendfile, which no longer block.
 *
 * What to look at: unlike select, poll takes an array of (fd, events) and
 * answers in a separate revents field, so nothing is rebuilt between passes
 * and there is no FD_SETSIZE wall. The array is kept compact: a removed entry
 * is replaced by the last one, and an fd -> index map finds an entry in O(1)
 * (common/fdarray.c, common/pollset.c), so poller_mod() is one store into events.
 *
 * Its limit: the whole array goes into the kernel and is scanned on every
 * call, so a wait costs O(watched), not O(ready): 10,000 idle connections are
 * paid for on every pass. epoll keeps the set in the kernel instead.
 */
#include <poll.h>
#include <stdlib.h>

#include "loop.h"
#include "pollset.h"

int poller_wait(struct poller *p, struct poller_event *fired, int max, int timeout_ms)
{
    int ready = poll(p->set.pfds, (nfds_t)p->set.n, timeout_ms);
    if (ready <= 0)
        return ready;

    int n = 0;
    for (int i = 0; i < p->set.n && n < ready && n < max; i++) {
        short re = p->set.pfds[i].revents;
        if (!re)
            continue;
        fired[n].fd = p->set.pfds[i].fd;
        fired[n].mask = (re & POLLIN ? POLLER_READ : 0) | (re & POLLOUT ? POLLER_WRITE : 0) |
                        (re & (POLLERR | POLLHUP | POLLNVAL) ? POLLER_ERROR : 0);
        n++;
    }
    return n;
}

int main(int argc, char **argv)
{
    return loop_main(argc, argv, "poll");
}
