/*
 * prefork.c - N processes forked at start, all asleep in accept() on one
 * listening socket (UNP section 30.6; Apache's prefork and worker MPMs).
 *
 * --workers N (default 4) processes inherit the one listener and each calls
 * accept() on it; whichever the kernel wakes takes the connection and serves it
 * with bin/blocking's code, on a thread of its own (serve_threads()), so that N
 * processes do not cap the open connections at N: a process here is a unit of
 * isolation and of cores, not of connections. --max-conns counts all of them
 * together, in shared memory. The forking and waiting is common/workers.c's.
 *
 * The thundering herd: when N processes sleep in accept() on one socket and a
 * connection arrives, old kernels woke all N, and N-1 found nothing (UNP shows
 * the cost). Linux has put accept() sleepers on the listener's wait queue as
 * exclusive waiters since 2.3/2.4 (prepare_to_wait_exclusive in
 * inet_csk_wait_for_connect), so a connection wakes one process, and the
 * others sleep on. epoll does not inherit this: every epoll instance watching
 * the listener is woken unless it registered with EPOLLEXCLUSIVE (Linux 4.5),
 * which is one reason the event-driven models use SO_REUSEPORT listeners
 * (--workers) instead. scripts/herd.py counts the wakeups: 1.00 per connection
 * here with 4 processes in accept(), 3.96 with 4 in a plain epoll_wait().
 */
#include "blocking.h"
#include "server.h"

#define PREFORK_WORKERS 4

int main(int argc, char **argv)
{
    return server_main_workers(argc, argv, "prefork", sizeof(struct blocking_conn), serve_threads,
                               SERVER_WORKERS_SHARED, PREFORK_WORKERS);
}
