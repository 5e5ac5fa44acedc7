/*
 * workers.h - --workers N: the same server in N processes, started by a parent
 * that only waits. Either each process has its own SO_REUSEPORT listener on
 * the same port and the kernel spreads new connections over them (the
 * event-driven models: shared-nothing, one loop per core, as nginx runs with
 * reuseport), or all of them block in accept() on one listener (bin/prefork).
 */
#ifndef C10K_WORKERS_H
#define C10K_WORKERS_H

#include <stdbool.h>

struct server;

/*
 * Forks n processes; process i runs run(s) with s->listen_fd = listeners[i]
 * and s->worker = i. In a worker it returns run()'s result with *in_worker
 * set: the caller returns from main() (no "served" line of its own). In the
 * parent it waits for SIGINT/SIGTERM, stops the workers, prints one line per
 * worker, adds their counts into s, and returns 0, or -1 if a worker failed
 * or died early (then the others are stopped at once).
 */
int workers_run(struct server *s, int (*run)(struct server *s), const int *listeners, int n,
                bool *in_worker);

/* The line of one worker's counts that precedes the "served" total. */
void workers_report(int worker, unsigned long requests, unsigned long connections);

#endif
