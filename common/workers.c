/*
 * workers.c - forks the --workers N processes, waits for them, and adds up what
 * they served. The parent holds no listener and serves nothing: like nginx's
 * master it only forwards the stop signal and reaps.
 */
#include "workers.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One per worker, in a shared anonymous mapping: the worker writes its counts as it
 * returns, the parent reads them after waitpid() (which orders the two). */
struct worker_tally {
    unsigned long requests, connections;
};

struct worker_proc {
    pid_t pid; /* 0 once reaped */
    int status;
};

static void signal_workers(struct worker_proc *w, int n)
{
    for (int i = 0; i < n; i++)
        if (w[i].pid > 0)
            kill(w[i].pid, SIGTERM);
}

static void describe_status(int status, char *out, size_t size)
{
    if (WIFSIGNALED(status))
        snprintf(out, size, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, size, "exit status %d", WEXITSTATUS(status));
}

/* Reaps the workers that exited; returns how many of them failed. */
static int reap(struct server *s, struct worker_proc *w, int n, int *live)
{
    int failed = 0, status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < n; i++) {
            if (w[i].pid != pid)
                continue;
            w[i] = (struct worker_proc){.pid = 0, .status = status};
            (*live)--;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                char why[48];
                describe_status(status, why, sizeof why);
                server_warn(s, "worker %d (pid %d): %s", i, (int)pid, why);
                failed++;
            }
        }
    }
    return failed;
}

void workers_report(int worker, unsigned long requests, unsigned long connections)
{
    fprintf(stderr, "worker %d: served %lu requests on %lu connections\n", worker, requests,
            connections);
}

int workers_run(struct server *s, server_run_fn run, const int *listeners, int n, bool *in_worker)
{
    struct worker_proc w[WORKERS_MAX] = {{0}};
    struct worker_tally *tally;
    sigset_t waited, old;
    int live = 0, failed = 0;
    bool stopping = false;

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
     * SIGHUP stops like SIGTERM: see install_signals() in server.c. */
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
            failed++;
            break;
        }
        w[i].pid = pid;
        live++;
    }
    /* The parent serves nothing. Were it to keep a listener, a worker that died would
     * leave its share of the connections queued on a socket nobody accepts from. */
    for (int i = 0; i < n; i++)
        if (i == 0 || listeners[i] != listeners[0])
            close(listeners[i]);
    if (failed)
        signal_workers(w, n);
    stopping = failed > 0;

    while (live > 0) {
        /* Once stopping, the signal is sent again every second: one that came just
         * before a worker's blocking call would otherwise wait for its timeout. */
        struct timespec second = {.tv_sec = 1};
        int sig = stopping ? sigtimedwait(&waited, NULL, &second) : sigwaitinfo(&waited, NULL);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || (sig < 0 && errno == EAGAIN)) {
            stopping = true;
            signal_workers(w, n);
        } else if (sig == SIGCHLD) {
            int died = reap(s, w, n, &live);
            failed += died;
            if (died && !stopping) { /* one worker gone: the port is half served; stop */
                stopping = true;
                signal_workers(w, n);
            }
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);

    for (int i = 0; i < n; i++) {
        workers_report(i, tally[i].requests, tally[i].connections);
        atomic_fetch_add(&s->env.requests, tally[i].requests);
        atomic_fetch_add(&s->connections, tally[i].connections);
    }
    munmap(tally, (size_t)n * sizeof *tally);
    return failed ? -1 : 0;
}
