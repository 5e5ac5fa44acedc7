/*
 * blocking.h - the blocking I/O of model 1 (servers/blocking.c), shared by the
 * binaries that give each connection a thread (bin/blocking, bin/prefork's
 * processes) or a process (bin/fork's children).
 */
#ifndef C10K_BLOCKING_H
#define C10K_BLOCKING_H

#include <stdatomic.h>

#include "conn.h"

struct server;

/* A connection of serve_threads(), in the table slot of its fd; its thread owns
 * the struct conn. */
struct blocking_conn {
    struct conn conn;
    atomic_bool serving; /* a thread serves this fd: shut it down to stop */
};

/* Serves c (conn_init'ed, off the deadline list) with blocking recv, send and
 * sendfile until it is done, idle too long, or the server stops; conn_close()s it
 * but leaves its socket open. */
void serve_blocking(struct server *s, struct conn *c);

/* The run() of bin/blocking (table stride: struct blocking_conn): accepts in this
 * thread, a detached thread per connection; on stop, wakes every one out of its
 * recv/send and waits for them. */
int serve_threads(struct server *s);

#endif
