/*
 * ring.h - the io_uring that both completion servers share (servers/uring.c with
 * callbacks, servers/corouring.c with coroutines), set up and read the same way so
 * that the two differ only in how a connection keeps its place.
 *
 *     ring_init(r, s)            the ring (SINGLE_ISSUER + DEFER_TASKRUN where the
 *                                kernel has them, its fd registered), the opcode probe,
 *                                the receive buffers, the table of direct descriptors
 *     ring_sqe(r)                a submission entry, submitting first if the queue is full
 *     ring_prep_accept(r, ...)   the multishot accept, into the table where there is one
 *     ring_admit(r, fd)          server_admit() for a socket the ring accepted
 *     ring_on_socket(r, sqe)     marks an operation on a connection's socket (direct)
 *     ring_close_conn(r, c)      server_close_conn(), for a socket the ring accepted
 *     ring_prep_recv(r, sqe, fd, rx) a connection's one multishot receive into provided buffers
 *     ring_rx_on_cqe(r, rx, cqe) keeps what a completion of it brought, in arrival order
 *     ring_rx_feed(r, rx, c)     hands the kept bytes to the connection, buffers back
 *     ring_rx_cancel(r, rx, ud)  ends the receive early (to pause it, or to close)
 *     ring_prep_send(sqe, ...)   a response's head and cached body, in one operation
 *     ring_wait(r, ms)           the one system call of a loop turn: submit and wait
 *     ring_accept_backlog(...)   out of fds: take what waits in the backlog by hand
 *     ring_exit(r)               the ring and its buffers go
 *
 * Linked only into bin/uring and bin/corouring, so that no other binary needs liburing.
 * Functions that fail warn through server_warn() and return -1.
 */
#ifndef C10K_RING_H
#define C10K_RING_H

#include <liburing.h>
#include <stdbool.h>

#include "server.h"

/* The rings' memory counts against the locked-memory limit of the user the server runs as
 * (RLIMIT_MEMLOCK, 8 MiB here), shared by every process of that user: started as root, all
 * our servers are nobody. 1,024 SQEs and 8,192 CQEs take about 0.25 MiB, so about 30 rings
 * fit (65,536 CQEs let 6 fit). A turn that completes more than 8,192 operations is rare,
 * and then the rest wait in the kernel (FEAT_NODROP) until the next turn reaps them. */
#define RING_SQ_ENTRIES 1024
#define RING_CQ_ENTRIES 8192
#define RING_BUFS 4096 /* provided receive buffers, a power of two */
#define RING_BUF_SIZE 2048
#define RING_BGID 1
#define RING_RX_HOLD 8   /* buffers a busy connection may hold before its receive is paused */
#define RING_UNTRACKED 0 /* the user_data of operations whose completions nobody awaits */
#define RING_PIPE_SIZE (256 * 1024) /* PIPEPOOL_PIPES x 64 pages: half of pipe-user-pages-soft */
#define RING_STOP_MS 3000           /* how long a stop waits for cancelled operations */
#define RING_SQPOLL_IDLE_MS 1000    /* --sqpoll: how long its kernel thread spins idle */

struct ring {
    struct server *s;
    /* Buffers a connection holds (struct ring_rx): how many bytes each holds, and the
     * next one the same connection received. */
    uint16_t held_len[RING_BUFS];
    int16_t held_next[RING_BUFS];
    struct io_uring uring;
    struct io_uring_buf_ring *br; /* the provided-buffer ring, RING_BUFS entries */
    char *bufs;                   /* RING_BUFS buffers of RING_BUF_SIZE bytes */
    const char *mode;             /* the setup flags the kernel took, for the start-up line */
    char *sink;                   /* where a lingering close's last input goes (direct only) */
    bool has_ring;
    bool fd_registered; /* io_uring_enter finds the ring by its index, not by fd */
    /* Connections' sockets are direct descriptors: accepted into the ring's table of
     * files (as many as the server's connection table has slots), never in the
     * process's fd table, so a connection's "fd" (c->fd, its slot, the user_data's
     * fd) is its index in that table, and every operation on it carries
     * IOSQE_FIXED_FILE. False where the kernel or the server cannot (ring_init()). */
    bool direct;
};

/* A connection's multishot receive, and the bytes it brought that the connection has
 * not taken yet: those that came while it was sending (a pipelined request, the peer's
 * FIN). They stay in their provided buffers, in arrival order, until ring_rx_feed(). */
struct ring_rx {
    int32_t first, last; /* the held buffers' ids, linked through held_next; -1: none */
    uint16_t held;       /* how many */
    bool armed;          /* the receive is in flight: its last completion is not back */
    bool cancelling;     /* a cancel of it is on its way */
    bool ended;          /* the peer closed or the socket failed, after the held bytes */
};

/* Sets up r for s; on failure, ring_exit() still has to be called. */
int ring_init(struct ring *r, struct server *s);
/* Closes the ring (which drops the buffers' registration), then frees the buffers.
 * Safe to call twice; after ring_close(), no operation can touch a buffer. */
void ring_exit(struct ring *r);
/* Closes the ring only: a failed stop's connections may then be freed. */
void ring_close(struct ring *r);

/* A submission entry; if the queue is full it is submitted first. NULL (warned)
 * if there is still no room. */
struct io_uring_sqe *ring_sqe(struct ring *r);

/* The multishot accept on the listener, of nonblocking sockets (a splice into a full
 * one must fail, not hold a kernel worker): direct ones into the table if r->direct.
 * Each completion's res is the new socket (an fd, or an index in the table). */
void ring_prep_accept(const struct ring *r, struct io_uring_sqe *sqe, int listen_fd);

/* server_admit() for a socket the ring accepted: counts it in, or closes it (in the
 * table, if direct) and returns false. */
bool ring_admit(struct ring *r, int fd);

/* Closes a socket the ring accepted that serves no connection. */
void ring_close_socket(struct ring *r, int fd);

/* server_close_conn() for a connection whose socket the ring accepted (after
 * ring_close(), a direct one is gone already: only the slot is freed). */
void ring_close_conn(struct ring *r, struct conn *c);

/* shutdown(fd, SHUT_RDWR) of a connection's socket, which ends its operations in
 * flight: the last resort when no submission entry is free to cancel them. A direct
 * descriptor can be shut down only by the ring; with no entry free it is left. */
void ring_shutdown(struct ring *r, int fd);

/* sqe's fd is a connection's socket: an index in the table if r->direct. For a
 * splice, the socket must be its output (IOSQE_FIXED_FILE names fd_out). */
static inline void ring_on_socket(const struct ring *r, struct io_uring_sqe *sqe)
{
    if (r->direct)
        sqe->flags |= IOSQE_FIXED_FILE;
}

/* Cancels every operation on a connection's socket (their completions follow). */
void ring_prep_cancel_socket(const struct ring *r, struct io_uring_sqe *sqe, int fd);

/* A connection's receive state, before its first receive. */
void ring_rx_init(struct ring_rx *rx);

/* Prepares one multishot receive on fd, for as long as the connection lives: each
 * time data comes, the kernel takes a provided buffer, fills it and posts a completion
 * (with IORING_CQE_F_MORE while the receive stays armed). Marks rx armed. */
void ring_prep_recv(const struct ring *r, struct io_uring_sqe *sqe, int fd, struct ring_rx *rx);

/* A completion of rx's receive: its buffer is held until ring_rx_feed(), the end of
 * the stream is noted. A connection that holds more than RING_RX_HOLD buffers has
 * its receive cancelled: the socket's window then stops the peer, as it would stop a
 * readiness server's peer that is not read from. */
void ring_rx_on_cqe(struct ring *r, struct ring_rx *rx, const struct io_uring_cqe *cqe);

/* Hands rx's held bytes to c, which wants to read, oldest first; each buffer goes
 * back to the ring once c has parsed it in place or copied it. Returns what c wants
 * next: CONN_READ only if nothing is held and the stream has not ended. */
enum conn_want ring_rx_feed(struct ring *r, struct ring_rx *rx, struct conn *c);

/* Cancels rx's receive (user_data is the one it was submitted with), unless it is not
 * armed or a cancel is already on its way. Its last completion follows. Returns -1
 * if no submission entry was free. */
int ring_rx_cancel(struct ring *r, struct ring_rx *rx, uint64_t user_data);

/* Gives every held buffer back to the ring (a closing connection). */
void ring_rx_drop(struct ring *r, struct ring_rx *rx);

/* A closing connection's receive, ended without waiting for it: cancelled, or with no
 * submission entry free the socket fd shut down, which ends it too; its held buffers go
 * back. Its last completion still comes, known by its user_data's generation. */
void ring_rx_end(struct ring *r, struct ring_rx *rx, uint64_t user_data, int fd);

/* A response tx's bytes in memory (tx->len > 0) are sent with one operation
 * that the kernel finishes itself if the socket takes only part (MSG_WAITALL):
 * a SEND, or a SENDMSG of the head and a cached body, whose msg and iov must stay
 * put until the completion. */
void ring_prep_send(const struct ring *r, struct io_uring_sqe *sqe, int fd,
                    const struct conn_tx *tx, struct msghdr *msg, struct iovec iov[2]);

/* Gives back the provided buffer a completion carries, if it carries one. */
void ring_recycle(struct ring *r, unsigned cqe_flags);

/* Submits what is queued and waits up to timeout_ms for one completion. Returns
 * 0 (completions may be there), or -1 (warned) on an error that ends the loop. */
int ring_wait(struct ring *r, int timeout_ms);

/* An accept completed with -EMFILE or -ENFILE: one armed now would fail at once,
 * over and over. Takes what waits (server_accept() refuses it with the spare fd,
 * or serves it if fds came back) and calls open_fn for each connection served.
 * Direct, the table is full (more connections than --max-conns are open, or still
 * closing): what waits is refused. The caller then waits for the listener to be
 * readable before accepting again. */
void ring_accept_backlog(struct ring *r, void (*open_fn)(void *arg, int fd), void *arg);

#endif
