/* children.c - reaping and stopping the child processes of bin/fork and of --workers. */
#include "children.h"

#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>

void children_add(struct children *c, pid_t pid)
{
    c->pids[c->n++] = pid;
}

void children_reap(struct children *c, children_gone_fn *gone, void *arg)
{
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < c->n; i++) {
            if (c->pids[i] == pid) {
                c->pids[i] = c->pids[--c->n];
                gone(arg, pid, status);
                break;
            }
        }
    }
}

static void signal_all(const struct children *c)
{
    for (int i = 0; i < c->n; i++)
        kill(c->pids[i], SIGTERM);
}

void children_stop(struct children *c, const sigset_t *wake, children_gone_fn *gone, void *arg)
{
    bool resend = true;
    while (c->n > 0) {
        if (resend)
            signal_all(c);
        struct timespec second = {.tv_sec = 1};
        int sig = sigtimedwait(wake, NULL, &second);
        if (sig == SIGCHLD)
            children_reap(c, gone, arg);
        resend = sig != SIGCHLD; /* a second gone by, or another stop signal */
    }
}
