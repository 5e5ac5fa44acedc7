/*
 * workers.c - forks the --workers N processes, waits for them, and adds up what
 * they served. The parent holds no listener and serves nothing: like nginx's
 * master it only forwards the stop signal and reaps.
 */
#include "workers.h"

#include "children.h"
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* One per worker, in a shared anonymous mapping: the worker writes its counts as it
 * returns, the parent reads them after waitpid() (which orders the two). */
struct worker_tally {
    unsigned long requests, connections;
};

/* The parent's view of its workers. */
struct worker_procs {
    struct server *s;
    pid_t pid_of[WORKERS_MAX];    /* worker i's pid, for the messages */
    pid_t kids_room[WORKERS_MAX]; /* kids.pids */
    struct children kids;         /* the workers not yet reaped */
    int failed;                   /* workers that exited with an error or a signal */
};

static void describe_status(int status, char *out, size_t size)
{
    if (WIFSIGNALED(status))
        snprintf(out, size, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, size, "exit status %d", WEXITSTATUS(status));
}

static void worker_gone(void *arg, pid_t pid, int status)
{
    struct worker_procs *w = arg;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return;
    int i = 0;
    while (i < WORKERS_MAX - 1 && w->pid_of[i] != pid)
        i++;
    char why[48];
    describe_status(status, why, sizeof why);
    server_warn(w->s, "worker %d (pid %d): %s", i, (int)pid, why);
    w->failed++;
}

void workers_report(int worker, unsigned long requests, unsigned long connections)
{
    fprintf(stderr, "worker %d: served %lu requests on %lu connections\n", worker, requests,
            connections);
}

int workers_run(struct server *s, int (*run)(struct server *s), const int *listeners, int n,
                bool *in_worker)
{
    struct worker_procs w = {.s = s};
    struct worker_tally *tally;
    sigset_t waited, old;

    w.kids.pids = w.kids_room;
    *in_worker = false;
    tally = mmap(NULL, (size_t)n * sizeof *tally, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (tally == MAP_FAILED) {
        server_warn(s, "cannot share the workers' counters: %s", strerror(errno));
        return -1;
    }
    /* Blocked before the first fork, so no stop or exit can slip between a check and
     * the wait: the parent takes these four with sigwaitinfo(), never in a handler.
     * (A blocked SIGCHLD stays pending even though its default action is to ignore.)
     * SIGHUP stops like SIGTERM: see install_signals() in server_main.c. */
    sigemptyset(&waited);
    sigaddset(&waited, SIGINT);
    sigaddset(&waited, SIGTERM);
    sigaddset(&waited, SIGHUP);
    sigaddset(&waited, SIGCHLD);
    sigprocmask(SIG_BLOCK, &waited, &old);

    pid_t parent = getpid();
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* A parent that dies without stopping us (SIGKILL, a crash) must not leave
             * us serving the port with nobody to stop or reap us: its death stops us as
             * SIGTERM would. It may have died before the prctl: then getppid() tells. */
            if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                _exit(1);
            sigprocmask(SIG_SETMASK, &old, NULL);
            for (int j = 0; j < n; j++)
                if (listeners[j] != listeners[i]) /* the others' (none when shared) */
                    close(listeners[j]);
            s->listen_fd = listeners[i];
            s->worker = i;
            int rc = run(s);
            tally[i] =
                (struct worker_tally){atomic_load(&s->env.requests), atomic_load(&s->connections)};
            munmap(tally, (size_t)n * sizeof *tally);
            *in_worker = true;
            return rc;
        }
        if (pid < 0) {
            server_warn(s, "cannot start worker %d: %s", i, strerror(errno));
            w.failed++;
            break;
        }
        w.pid_of[i] = pid;
        children_add(&w.kids, pid);
    }
    /* The parent serves nothing. Were it to keep a listener, a worker that died would
     * leave its share of the connections queued on a socket nobody accepts from. */
    for (int i = 0; i < n; i++)
        if (i == 0 || listeners[i] != listeners[0])
            close(listeners[i]);

    /* Serving until a stop signal, or until a worker fails: the port is then half
     * served, so the others are stopped too. */
    while (!w.failed && w.kids.n > 0) {
        int sig = sigwaitinfo(&waited, NULL);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
            break;
        if (sig == SIGCHLD)
            children_reap(&w.kids, worker_gone, &w);
    }
    children_stop(&w.kids, &waited, worker_gone, &w);
    sigprocmask(SIG_SETMASK, &old, NULL);

    for (int i = 0; i < n; i++) {
        workers_report(i, tally[i].requests, tally[i].connections);
        atomic_fetch_add(&s->env.requests, tally[i].requests);
        atomic_fetch_add(&s->connections, tally[i].connections);
    }
    munmap(tally, (size_t)n * sizeof *tally);
    return w.failed ? -1 : 0;
}
