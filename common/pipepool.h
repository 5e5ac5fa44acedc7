/*
 * pipepool.h - a few pipes lent to file bodies in flight, for a model that
 * sends a file by splice (file -> pipe -> socket), as bin/uring does.
 *
 * Pipes are scarce: each holds kernel pages, and a user's pages are capped
 * (pipe-user-pages-soft), so there cannot be one per connection. A transfer
 * borrows a pipe while bytes are in it and gives it back between chunks. One
 * that finds none free waits its turn (FIFO); one whose socket is full is
 * "parked", and its pipe may be taken back for a waiter, its bytes dropped
 * (they are spliced again from the file, whose offset counts only what
 * reached the socket).
 *
 * A pipe_user is embedded in the model's per-connection struct. When a pipe
 * comes free and someone waits, the pool calls the model's retry function for
 * the first waiter, which asks again with pipepool_get().
 */
#ifndef C10K_PIPEPOOL_H
#define C10K_PIPEPOOL_H

#include <stdbool.h>
#include <stdint.h>

#define PIPEPOOL_PIPES 128

struct pipepool_pipe {
    int rd, wr; /* -1 until first lent */
    uint32_t cap;
};

enum pipe_list_id { PIPE_NO_LIST, PIPE_WAITING, PIPE_PARKED };

struct pipe_user {
    struct pipepool_pipe *pipe;    /* NULL without one */
    uint32_t in_pipe;              /* body bytes in the pipe, not yet in the socket */
    uint8_t on;                    /* enum pipe_list_id: which list it is on */
    struct pipe_user *prev, *next; /* on the waiting or the parked list */
};

struct pipe_list {
    struct pipe_user *head, *tail;
};

typedef void pipepool_retry_fn(struct pipe_user *waiter, void *arg);

struct pipepool {
    struct pipepool_pipe pipes[PIPEPOOL_PIPES];
    struct pipepool_pipe *free[PIPEPOOL_PIPES];
    int nfree;
    uint32_t pipe_size; /* asked of F_SETPIPE_SZ; the kernel may give less */
    struct pipe_list waiting, parked;
    pipepool_retry_fn *retry; /* a waiter's turn: called with it and retry_arg */
    void *retry_arg;
};

void pipepool_init(struct pipepool *pp, uint32_t pipe_size, pipepool_retry_fn *retry, void *arg);
/* Closes every pipe; none may be lent. */
void pipepool_destroy(struct pipepool *pp);

/* Lends u a pipe (u->pipe). Returns 0 if u has one; 1 if none is free, and u
 * waits for its turn; -1 if none can be made and none is lent, so none will
 * come back (errno from pipe2). */
int pipepool_get(struct pipepool *pp, struct pipe_user *u);
/* Gives u's pipe back (dirty: bytes are left in it, so it is closed), then
 * gives the first waiter its turn. */
void pipepool_put(struct pipepool *pp, struct pipe_user *u, bool dirty);
/* u's socket is full: its pipe may be taken back for a waiter until unparked. */
void pipepool_park(struct pipepool *pp, struct pipe_user *u);
/* Takes u off the waiting or the parked list, wherever it is. */
void pipepool_leave(struct pipepool *pp, struct pipe_user *u);

#endif
