/*
 * fork.c - a process per connection: the parent accepts, a child serves.
 *
 * The parent sleeps in accept(); for each connection it fork()s, and the child
 * serves it with bin/blocking's code (serve_blocking(): blocking recv, send,
 * sendfile, each sleeping until done) and exits. This is inetd's and early
 * Apache's design (UNP section 30.5): the strongest isolation there is, since a
 * child that crashes costs one client, paid for with a fork per connection
 * (make costs) and a whole process, page tables and all, per open connection.
 *
 * What to look at: the parent's work besides accept. It reaps children
 * (SIGCHLD interrupts accept, then waitpid(WNOHANG) takes every child that
 * exited), so no zombie is left and --max-conns counts live children; on a stop
 * it sends SIGTERM to every child and waits for them; and it adds up what they
 * served: each child adds its count to a shared anonymous mapping as it exits.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "children.h"
#include "blocking.h"
#include "server.h"

struct forker {
    struct server *s;
    struct children kids;     /* at most s->max_conns */
    atomic_ulong *served_sum; /* shared with every child: requests they served */
};

static void on_child_exit(int sig)
{
    (void)sig; /* nothing to do here: the signal is there to interrupt accept() */
}

/* A child exited: its place under --max-conns is free. */
static void child_gone(void *arg, pid_t pid, int status)
{
    struct forker *f = arg;
    server_conn_gone(f->s);
    if (WIFSIGNALED(status))
        server_warn(f->s, "child %d killed by signal %d", (int)pid, WTERMSIG(status));
}

/* The child's whole life: one connection, then _exit(), not a return through
 * main(), which would print the parent's "served" line and flush its stdio. */
static void serve_child(struct forker *f, int fd)
{
    struct server *s = f->s;
    struct conn c;
    close(s->listen_fd);
    conn_init(&c, &s->env, fd); /* off the deadline list: SO_RCVTIMEO instead */
    serve_blocking(s, &c);
    close(fd);
    atomic_fetch_add(f->served_sum, atomic_load(&s->env.requests));
    _exit(0);
}

/* On a stop: SIGTERM to every child, again each second, until all are reaped. */
static void stop_children(struct forker *f)
{
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    children_reap(&f->kids, child_gone, f);
    children_stop(&f->kids, &chld, child_gone, f);
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
}

static int fork_run(struct server *s)
{
    struct forker f = {.s = s};
    struct sigaction sa = {.sa_handler = on_child_exit}; /* no SA_RESTART: accept fails EINTR */
    int rc = -1;

    f.kids.pids = calloc((size_t)s->max_conns, sizeof *f.kids.pids);
    f.served_sum =
        mmap(NULL, sizeof *f.served_sum, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sigemptyset(&sa.sa_mask);
    if (!f.kids.pids || f.served_sum == MAP_FAILED || sigaction(SIGCHLD, &sa, NULL) < 0) {
        server_warn(s, "cannot start: %s", strerror(errno));
        goto out;
    }
    if (server_listen_blocking(s) < 0) /* as bin/blocking: asleep in accept() */
        goto out;

    while (!server_stopping()) {
        children_reap(&f.kids, child_gone, &f);
        int fd = server_accept(s, false); /* counts live children against --max-conns */
        if (fd < 0) {
            server_accept_failed(s, errno);
            continue;
        }
        pid_t pid = fork();
        if (pid == 0)
            serve_child(&f, fd); /* does not return */
        close(fd);               /* the child has its own copy */
        if (pid < 0) {
            server_warn(s, "fork: %s", strerror(errno));
            server_conn_gone(s);
            continue;
        }
        children_add(&f.kids, pid);
    }
    rc = 0;
    stop_children(&f);
    atomic_fetch_add(&s->env.requests, atomic_load(f.served_sum));
out:
    if (f.served_sum != MAP_FAILED && f.served_sum)
        munmap(f.served_sum, sizeof *f.served_sum);
    free(f.kids.pids);
    return rc;
}

int main(int argc, char **argv)
{
    /* The parent's table is never used: a child's connection lives on its stack. */
    return server_main(argc, argv, "fork", sizeof(struct conn), fork_run);
}
