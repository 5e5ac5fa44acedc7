/*
 * conn.h - the I/O-free connection state machine that every model drives.
 *
 * A model does its I/O its own way and reports what happened:
 *
 *     conn_rx_buf(c, &p, &n)      where the next bytes from the socket go
 *     conn_on_input(c, n)         n bytes arrived there (0: the peer closed)
 *     conn_tx(c, &tx, gather)     what to send next: header bytes or a file range
 *     conn_on_output(c, n)        n bytes of that went out (0 from a file: it shrank)
 *
 * Each returns what the connection wants next: CONN_READ, CONN_WRITE or
 * CONN_CLOSE. Nothing here makes a system call. A request buffer is taken from
 * a pool only while a request is in flight, so an idle connection costs just
 * its struct conn.
 *
 * struct conn holds the protocol's state only. Each model defines its own
 * per-connection struct with struct conn as its first member, and its own
 * state as named fields after it; given a struct conn, it finds its own with
 * container_of. The server's table, indexed by fd, has the model's stride.
 */
#ifndef C10K_CONN_H
#define C10K_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "deadline.h"
#include "handler.h"

#define CONN_BUF_SIZE 16384                        /* one pooled buffer per busy connection */
#define CONN_OUT_CAP 2048                          /* response head at the buffer's end */
#define CONN_IN_CAP (CONN_BUF_SIZE - CONN_OUT_CAP) /* requests, pipelined ones included */
_Static_assert(HANDLER_HEAD_MAX <= CONN_OUT_CAP, "a response head must fit its buffer");

/* The struct of the given type whose member is at ptr (as in the Linux kernel). */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

enum conn_want { CONN_CLOSE = 0, CONN_READ = 1, CONN_WRITE = 2 };

/* What all connections of a server share (part of struct server). */
struct conn_env {
    int root_fd; /* O_PATH directory handle that every file is opened beneath */
    uint32_t idle_timeout_ms;
    struct deadline_list idle; /* open connections by deadline (not bin/blocking's) */
    atomic_ulong requests;     /* answered, for the "served" line */
};

struct conn {
    int fd;
    uint8_t want;         /* enum conn_want */
    bool linger;          /* closing after an error: drain input first so the answer is not reset */
    bool open;            /* the slot serves a connection */
    struct conn_env *env; /* the server's, shared by all its connections */
    char *buf;            /* NULL while idle */
    uint32_t in_off, in_len;  /* unparsed input is buf[in_off, in_off + in_len) */
    uint32_t in_scan;         /* how far the current request's header end was searched */
    uint32_t out_off;         /* head bytes already sent */
    struct response res;      /* the response in flight */
    struct deadline deadline; /* when an idle or stalled connection is closed */
};

/*
 * What to send next: buf/len if len > 0 (the rest of the head, or of an
 * in-memory body), else file_len bytes of file_fd from file_off. A model that
 * can send two buffers in one call (writev/sendmsg) asks with gather: while the
 * head is unsent, buf2/len2 is then the in-memory body that follows it; others
 * send buf, then ask again. more says whether bytes follow what is offered
 * (MSG_MORE), so that the last segment of a response goes out at once.
 */
struct conn_tx {
    const char *buf;
    size_t len;
    const char *buf2;
    size_t len2;
    int file_fd;
    off_t file_off;
    size_t file_len;
    bool more;
};

/* Resets c for a new connection on fd, off the deadline list. */
void conn_init(struct conn *c, struct conn_env *env, int fd);
/* Frees the buffer and the file, takes c off the deadline list; the socket is
 * the model's to close. */
void conn_close(struct conn *c);

int conn_rx_buf(struct conn *c, char **p, size_t *n);
/* Nothing more can be read for now: an idle connection gives its buffer back. */
void conn_rx_idle(struct conn *c);
enum conn_want conn_on_input(struct conn *c, size_t n);
/* n bytes arrived in the model's own buffer, at most what conn_rx_buf() offers
 * (io_uring's provided buffers): a request that lies there whole, with nothing
 * buffered before it, is parsed where it lies; other bytes (a request split
 * across receives, or the pipelined ones after a whole request) are copied into
 * the connection's buffer. data may be reused once this returns. */
enum conn_want conn_on_input_from(struct conn *c, const char *data, size_t n);
void conn_tx(const struct conn *c, struct conn_tx *tx, bool gather);
enum conn_want conn_on_output(struct conn *c, size_t n);

/* (Re)starts c's idle deadline at now_ms, putting it on the list if it was off;
 * answered requests and sending progress restart it only while it is on. */
void conn_start_deadline(struct conn *c, uint64_t now_ms);
/* Takes c off the deadline list without closing it (a model that must wait for
 * operations in flight before conn_close() frees their buffers). */
void conn_forget_deadline(struct conn *c);
/* The connection whose deadline passed first, or NULL; closing it unlinks it. */
struct conn *conn_next_expired(struct conn_env *env, uint64_t now_ms);

/* Returns the calling thread's pooled buffers to the allocator. */
void conn_pool_drain(void);

#endif
