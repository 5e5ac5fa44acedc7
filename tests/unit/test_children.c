/*
 * test_children.c - common/children.c on real processes: children_reap() reports each
 * child of the list once with its status, and only those; children_stop() ends every
 * one, sending SIGTERM again to a child that ignored the first.
 *
 * SIGCHLD stays blocked and is waited for with sigwaitinfo(), as the servers do; an
 * alarm ends the test if children_stop() never returns.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "children.h"

#define KIDS 3

struct seen {
    int calls;
    pid_t pid[KIDS + 1];
    int status[KIDS + 1];
};

static void record(void *arg, pid_t pid, int status)
{
    struct seen *s = arg;
    if (s->calls <= KIDS) {
        s->pid[s->calls] = pid;
        s->status[s->calls] = status;
    }
    s->calls++;
}

static int status_of(const struct seen *s, pid_t pid)
{
    for (int i = 0; i < s->calls && i <= KIDS; i++)
        if (s->pid[i] == pid)
            return s->status[i];
    return -1;
}

static sigset_t chld_set(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    return set;
}

/* Children that exit at once with 0, 1 and 2, and, before them, one that is not on the
 * list: a zombie already when the first reap runs, which must take it but not report it. */
static void reap_reports_each_of_ours(void)
{
    check_case("reap reports each of ours");
    pid_t room[KIDS], ours[KIDS];
    struct children kids = {.pids = room};
    struct seen seen = {0};
    sigset_t chld = chld_set();

    pid_t stranger = fork();
    if (stranger == 0)
        _exit(9);
    if (!CHECK(stranger > 0) || !CHECK(sigwaitinfo(&chld, NULL) == SIGCHLD))
        return;
    for (int i = 0; i < KIDS; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(i);
        if (!CHECK(pid > 0))
            return;
        ours[i] = pid;
        children_add(&kids, pid);
    }
    CHECK_EQ_INT(kids.n, KIDS);
    while (kids.n > 0) {
        if (sigwaitinfo(&chld, NULL) == SIGCHLD)
            children_reap(&kids, record, &seen);
    }
    CHECK_EQ_INT(seen.calls, KIDS);
    for (int i = 0; i < KIDS; i++) {
        int st = status_of(&seen, ours[i]);
        CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == i);
    }
    CHECK(waitpid(-1, NULL, WNOHANG) < 0); /* no zombie left, the stranger neither */
}

/* Children asleep in pause(): one SIGTERM each ends them. */
static void stop_ends_sleepers(void)
{
    check_case("stop ends sleepers");
    pid_t room[KIDS];
    struct children kids = {.pids = room};
    struct seen seen = {0};
    sigset_t chld = chld_set();

    for (int i = 0; i < KIDS; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            for (;;)
                pause();
        }
        if (!CHECK(pid > 0))
            return;
        children_add(&kids, pid);
    }
    children_stop(&kids, &chld, record, &seen);
    CHECK_EQ_INT(kids.n, 0);
    CHECK_EQ_INT(seen.calls, KIDS);
    for (int i = 0; i < seen.calls && i < KIDS; i++)
        CHECK(WIFSIGNALED(seen.status[i]) && WTERMSIG(seen.status[i]) == SIGTERM);
}

static volatile sig_atomic_t terms;

static void count_term(int sig)
{
    (void)sig;
    terms++;
}

/* A child that shrugs off the first SIGTERM (as one whose signal came just before it
 * went to sleep in a blocking call) ends only if the stop sends it again. */
static void stop_sends_again(void)
{
    check_case("stop sends again");
    pid_t room[1];
    struct children kids = {.pids = room};
    struct seen seen = {0};
    sigset_t chld = chld_set();
    int ready[2];

    if (!CHECK(pipe(ready) == 0))
        return;
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction sa = {.sa_handler = count_term};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (write(ready[1], "r", 1) != 1)
            _exit(3);
        while (terms < 2)
            pause();
        _exit(7);
    }
    close(ready[1]);
    char byte;
    bool started = read(ready[0], &byte, 1) == 1; /* its handler is in place */
    close(ready[0]);
    if (!CHECK(pid > 0 && started))
        return;
    children_add(&kids, pid);
    children_stop(&kids, &chld, record, &seen);
    CHECK_EQ_INT(kids.n, 0);
    CHECK_EQ_INT(seen.calls, 1);
    CHECK(WIFEXITED(seen.status[0]) && WEXITSTATUS(seen.status[0]) == 7);
}

int main(void)
{
    sigset_t chld = chld_set();
    sigprocmask(SIG_BLOCK, &chld, NULL);
    alarm(30); /* a children_stop() that never returns ends the test, as a failure */
    reap_reports_each_of_ours();
    stop_ends_sleepers();
    stop_sends_again();
    return check_report();
}
