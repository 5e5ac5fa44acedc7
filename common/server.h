/*
 * server.h - what every model shares outside the connection: start-up, the
 * listening socket, accepting within the limits, the connection table, and
 * the SIGINT/SIGTERM shutdown of SPEC section 2. server_main.c starts and stops
 * the process (server_main(), server_main_workers(), server_stopping()) and calls
 * workers.c for --workers; server.c holds the rest, which workers.c calls: no two
 * of the three call each other.
 */
#ifndef C10K_SERVER_H
#define C10K_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>

#include "cli.h"
#include "conn.h"

struct server {
    struct config cfg;
    const char *model;
    int listen_fd;        /* nonblocking, unless listen_blocking */
    bool listen_blocking; /* the model sleeps in accept(): server_listen_blocking() */
    int reserve_fd;       /* spare fd, given up to refuse a connection on EMFILE */
    int max_fds;          /* RLIMIT_NOFILE, the number of slots in the table */
    int max_conns;        /* --max-conns, clipped to what max_fds allows */
    char *conns;          /* the table: slot fd at conns + fd * conn_size; see server_conn() */
    size_t conn_size;     /* the model's per-connection struct, which begins with a struct conn */
    struct conn_env env;  /* root, idle timeout and deadlines, the answered-request count */
    atomic_int nconns;
    atomic_int *all_nconns;   /* one listener, several processes (bin/prefork): the open
                                 connections of them all, in shared memory; else NULL */
    int worker;               /* this process's index under --workers N; -1 if alone */
    atomic_ulong connections; /* for the "served" line */
};

/* One model's event loop: runs until server_stopping(); returns 0 or -1. */
typedef int (*server_run_fn)(struct server *s);

/* The whole main() of a server binary: parse, start, listen, run, report.
 * conn_size is the model's per-connection struct, the stride of the table. With
 * --workers N, N processes each run() on a SO_REUSEPORT listener of their own. */
int server_main(int argc, char **argv, const char *model, size_t conn_size, server_run_fn run);

/* The table's slot for fd (0 <= fd < max_fds), open or not. */
static inline struct conn *server_conn(const struct server *s, int fd)
{
    return (struct conn *)(s->conns + (size_t)fd * s->conn_size);
}

/* Takes the slot for fd and starts its idle deadline; NULL if fd is out of range. */
struct conn *server_open_conn(struct server *s, int fd);

/* server_open_conn() with the deadlines and request count of env, not the server's (one
 * of bin/actor's loops). */
struct conn *server_open_conn_in(struct server *s, struct conn_env *env, int fd);

/* What --workers N means to a model. */
enum server_workers {
    SERVER_WORKERS_REUSEPORT, /* N processes, each its own SO_REUSEPORT listener: the
                                 kernel spreads connections by hash (the default) */
    SERVER_WORKERS_SHARED,    /* N processes in accept() on one listener (bin/prefork) */
    SERVER_WORKERS_THREADS,   /* one process; the model runs N loops of its own and
                                 reads the count from s->cfg.workers (bin/actor) */
};

/* server_main() with the model's meaning of --workers and its default count.
 * --max-conns is per process with SERVER_WORKERS_REUSEPORT (as nginx's
 * worker_connections), for all of them together otherwise. */
int server_main_workers(int argc, char **argv, const char *model, size_t conn_size,
                        server_run_fn run, enum server_workers how, int default_workers);

/* True once SIGINT or SIGTERM arrived. */
bool server_stopping(void);

/*
 * Accepts one connection to serve, with SOCK_NONBLOCK if nonblock. Connections
 * over --max-conns, or refused for lack of fds, are closed here at once.
 * Returns the fd, or -1 with errno EAGAIN when the backlog is empty (or
 * another errno on a lasting error, EINTR on a signal).
 */
int server_accept(struct server *s, bool nonblock);

/* For a model that sleeps in accept() (bin/blocking, fork, prefork, actor): makes the
 * listener blocking, with a 1 s SO_RCVTIMEO so that accept() returns EAGAIN at least once
 * a second, and lets server_accept() know; -1 if fcntl or setsockopt fails. */
int server_listen_blocking(struct server *s);

/* What an accept error tells the server to do. Every errno's reason is given once, in
 * server.c's accept_error_kind(): server_accept() acts on it, server_accept_failed() keeps
 * quiet about all but the last, and a model that accepts some other way (io_uring) asks it. */
enum accept_error {
    ACCEPT_LATER,   /* nothing to take now: back to the model's wait */
    ACCEPT_NO_FDS,  /* out of fds: refuse the waiting client with the spare fd */
    ACCEPT_NEXT,    /* that one connection failed, not the listener: accept the next */
    ACCEPT_LASTING, /* the listener itself is in trouble: worth a warning */
};

/* The kind of err, an accept's errno (or an io_uring accept's -res). */
enum accept_error accept_error_kind(int err);

/* After an accept failed with err (server_accept()'s errno, or an io_uring accept's
 * -res): warns, unless err only means "nothing to accept now" or belongs to the one
 * connection that failed. server.c says why each errno is which. */
void server_accept_failed(const struct server *s, int err);

/* For the loops that accept until EAGAIN: the next queued connection, accepted
 * nonblocking and opened, or NULL once the backlog is empty (a lasting error is
 * reported here). */
struct conn *server_accept_next(struct server *s);

/* The limits of server_accept() for an fd accepted some other way (io_uring):
 * counts it in and returns true, or closes it and returns false. */
bool server_admit(struct server *s, int fd);

/* Closes a connection's socket and frees its slot (counts it out of nconns). */
void server_close_conn(struct server *s, struct conn *c);

/* Counts out a connection admitted by server_accept()/server_admit() whose socket
 * the model closed itself. */
void server_conn_gone(struct server *s);

/* Reads and drops whatever input is pending, so close() sends FIN rather than RST. */
void server_drain_input(int fd);

/* Prints a warning unless --quiet. */
void server_warn(const struct server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
