/*
 * conn.h - the I/O-free connection state machine that every model drives.
 *
 * A model does its I/O its own way and reports what happened:
 *
 *     conn_rx_buf(c, &p, &n)      where the next bytes from the socket go
 *     conn_on_input(s, c, n)      n bytes arrived there (0: the peer closed)
 *     conn_tx(c, &tx)             what to send next: header bytes or a file range
 *     conn_on_output(s, c, n)     n bytes of that went out (0 from a file: it shrank)
 *
 * Each returns what the connection wants next: CONN_READ, CONN_WRITE or
 * CONN_CLOSE. A request buffer is taken from a pool only while a request is in
 * flight, so an idle connection costs just its struct conn.
 */
#ifndef C10K_CONN_H
#define C10K_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "handler.h"

#define CONN_BUF_SIZE 16384                        /* one pooled buffer per busy connection */
#define CONN_OUT_CAP 2048                          /* response head at the buffer's end */
#define CONN_IN_CAP (CONN_BUF_SIZE - CONN_OUT_CAP) /* requests, pipelined ones included */
_Static_assert(HANDLER_HEAD_MAX <= CONN_OUT_CAP, "a response head must fit its buffer");

enum conn_want { CONN_CLOSE = 0, CONN_READ = 1, CONN_WRITE = 2 };

struct server;

struct conn {
    int fd;
    uint32_t gen;     /* bumped on every reuse of this slot: tells stale events apart */
    uint8_t want;     /* enum conn_want */
    uint8_t interest; /* what the model last asked its event source for */
    bool rx_drained;  /* the last read came up short and no input event came since */
    bool linger;      /* closing after an error: drain input first so the answer is not reset */
    bool open;
    char *buf;                          /* NULL while idle */
    uint32_t in_off, in_len;            /* unparsed input is buf[in_off, in_off + in_len) */
    uint32_t in_scan;                   /* how far the current request's header end was searched */
    uint32_t out_off;                   /* head bytes already sent */
    struct response res;                /* the response in flight */
    uint64_t deadline_ms;               /* when an idle or stalled connection is closed */
    struct conn *idle_prev, *idle_next; /* deadline order; see conn_next_expired() */
    uint32_t model_flags;               /* free for the model (e.g. operations in flight) */
};

/*
 * What to send next: buf/len if len > 0 (the rest of the head, or of an
 * in-memory body), else file_len bytes of file_fd from file_off. While the
 * head is unsent, buf2/len2 is the in-memory body that follows it, for a
 * model that can send both in one call (writev/sendmsg); others send buf,
 * then ask again.
 */
struct conn_tx {
    const char *buf;
    size_t len;
    const char *buf2;
    size_t len2;
    int file_fd;
    off_t file_off;
    size_t file_len;
    bool more; /* more bytes follow buf at once (MSG_MORE) */
};

/* Resets c for a new connection on fd, outside any deadline list (bin/blocking). */
void conn_init(struct conn *c, int fd);
/* Takes the slot for fd in the server's table and starts its idle deadline;
 * NULL if fd is out of range. */
struct conn *conn_open(struct server *s, int fd);
/* Frees buffers and the file; does not close the socket (models close it their way). */
void conn_close(struct server *s, struct conn *c);

int conn_rx_buf(struct conn *c, char **p, size_t *n);
enum conn_want conn_on_input(struct server *s, struct conn *c, size_t n);
void conn_tx(const struct conn *c, struct conn_tx *tx);
enum conn_want conn_on_output(struct server *s, struct conn *c, size_t n);

/* The connection whose deadline passed first, or NULL; closing it unlinks it. */
struct conn *conn_next_expired(struct server *s, uint64_t now_ms);
/* Takes c off the deadline list without closing it (a model that must wait for
 * operations in flight before conn_close() frees their buffers). */
void conn_forget_deadline(struct conn *c);
/* (Re)starts c's idle deadline at now_ms, putting it on the list if it was off. */
void conn_start_deadline(struct server *s, struct conn *c, uint64_t now_ms);
/* Milliseconds until the next deadline (at most max_ms). */
int conn_ms_to_next_deadline(struct server *s, uint64_t now_ms, int max_ms);

/*
 * For the readiness models (select, poll, epoll, busypoll, sigio): performs
 * nonblocking recv/send/sendfile until the socket would block, and returns
 * what the connection waits for. Shared because these five differ only in
 * how they learn that a socket is ready, not in what they do then.
 */
enum conn_want conn_drive(struct server *s, struct conn *c);

/* Reads and drops whatever input is pending, so close() sends FIN rather than RST. */
void conn_drain_input(int fd);

/* Returns the calling thread's pooled buffers to the allocator. */
void conn_pool_drain(void);

#endif
