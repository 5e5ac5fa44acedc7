/*
 * children.h - the processes a parent forked (bin/fork's one per connection,
 * --workers' N): reaping them as they exit, so none is left a zombie, and
 * stopping them all on a stop signal.
 */
#ifndef C10K_CHILDREN_H
#define C10K_CHILDREN_H

#include <signal.h>
#include <sys/types.h>

struct children {
    pid_t *pids; /* the live children, in no order; the caller provides room for all */
    int n;
};

/* Called for each child reaped: its pid and its waitpid() status. */
typedef void children_gone_fn(void *arg, pid_t pid, int status);

/* Counts in a child that fork() just returned. */
void children_add(struct children *c, pid_t pid);

/* Reaps every child that has exited, without waiting: one SIGCHLD may stand for several
 * exits. Calls gone() for each of ours and takes it off the list. */
void children_reap(struct children *c, children_gone_fn *gone, void *arg);

/*
 * Stops every live child: SIGTERM now, and again each second until all are reaped (a
 * signal that arrives just before a child's blocking call would otherwise wait for that
 * call's timeout). Sleeps in sigtimedwait() on wake, which the caller has blocked and
 * which holds SIGCHLD; any other signal of it (a second stop) sends SIGTERM again at once.
 */
void children_stop(struct children *c, const sigset_t *wake, children_gone_fn *gone, void *arg);

#endif
