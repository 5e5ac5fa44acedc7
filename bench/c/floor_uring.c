/* floor_uring.c - the null server's completion loop (`floor --uring`): the least a server
 * can do with io_uring on this kernel, as floor.c's epoll loop is the least a readiness
 * server can do. The two are the floors that bin/uring and bin/epoll are read against.
 *
 * Per worker: one ring (SINGLE_ISSUER + DEFER_TASKRUN, its fd registered), a multishot
 * accept into a table of direct descriptors, one multishot receive per connection into a
 * ring of provided buffers, and per request one SEND of the answer built at start-up. The
 * worker waits in io_uring_enter, once per turn: that call submits every send the last
 * turn's receives asked for and collects every completion since. No parsing, no file, no
 * timer; what is left is the kernel's share of a request when it is asked for by io_uring.
 *
 * A send completes only if it fails (IOSQE_CQE_SKIP_SUCCESS): a send the socket takes at
 * once, as it takes a 4 KiB answer, would otherwise post a completion during the enter that
 * submits it, end that enter's wait at once, and cost a second enter per request. The
 * answer never changes, so nothing waits for a send to finish (bin/uring cannot do this:
 * a connection's next head is written where the last one was sent from). The one send that
 * is waited for is the answer to "Connection: close", before the shutdown.
 *
 * A connection's table entry is closed once its receive has ended (the peer closed, or we
 * shut it down) and no waited-for send is in flight. A failed send of an earlier
 * connection in the same slot is known by its generation and ignored.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "floor.h"

#define FU_SQ_ENTRIES 1024
#define FU_CQ_ENTRIES 8192
#define FU_BUFS 4096 /* provided receive buffers, a power of two */
#define FU_BUF_SIZE 2048
#define FU_BGID 0

enum fu_op { FU_ACCEPT = 1, FU_RECV, FU_SEND, FU_SEND_LAST, FU_STOP, FU_UNTRACKED };

struct fu_conn {
    bool receiving; /* its multishot receive is armed */
    bool closing;   /* its end is decided: once nothing is in flight, its entry goes */
    bool sending;   /* the answer to "Connection: close" is on its way */
    uint16_t gen;   /* bumped for each connection the slot serves */
};

struct fu {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    char *bufs;
    struct fu_conn *conns; /* one per entry of the table of direct descriptors */
    unsigned nslots;
    struct worker *w;
    bool has_ring;
};

/* user_data: (op, the slot's generation, slot). */
static uint64_t fu_tag(enum fu_op op, const struct fu_conn *c, unsigned slot)
{
    return (uint64_t)op << 48 | (uint64_t)(c ? c->gen : 0) << 32 | slot;
}

/* A submission entry; the queue is handed to the kernel first if it is full. */
static struct io_uring_sqe *fu_sqe(struct fu *f)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
    if (!sqe) {
        io_uring_submit(&f->ring);
        sqe = io_uring_get_sqe(&f->ring);
    }
    return sqe;
}

static void fu_arm_accept(struct fu *f)
{
    struct io_uring_sqe *sqe = fu_sqe(f);
    if (!sqe)
        return;
    io_uring_prep_multishot_accept_direct(sqe, f->w->lfd, NULL, NULL, SOCK_NONBLOCK);
    io_uring_sqe_set_data64(sqe, fu_tag(FU_ACCEPT, NULL, 0));
}

static void fu_arm_recv(struct fu *f, unsigned slot)
{
    struct io_uring_sqe *sqe = fu_sqe(f);
    if (!sqe) {
        f->conns[slot].closing = true;
        return;
    }
    io_uring_prep_recv_multishot(sqe, (int)slot, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = FU_BGID;
    io_uring_sqe_set_data64(sqe, fu_tag(FU_RECV, &f->conns[slot], slot));
    f->conns[slot].receiving = true;
}

/* An operation whose completion nobody waits for: none comes unless it fails. */
static void fu_untracked(struct io_uring_sqe *sqe)
{
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, fu_tag(FU_UNTRACKED, NULL, 0));
}

/* The connection ends: its receive is ended by a shutdown, and its entry closed once
 * nothing is in flight. */
static void fu_end(struct fu *f, unsigned slot)
{
    struct fu_conn *c = &f->conns[slot];
    struct io_uring_sqe *sqe;
    if (!c->closing && c->receiving && (sqe = fu_sqe(f))) {
        io_uring_prep_shutdown(sqe, (int)slot, SHUT_RDWR);
        sqe->flags |= IOSQE_FIXED_FILE;
        fu_untracked(sqe);
    }
    c->closing = true;
    if (c->receiving || c->sending || !(sqe = fu_sqe(f)))
        return;
    io_uring_prep_close_direct(sqe, slot);
    fu_untracked(sqe);
    *c = (struct fu_conn){.gen = c->gen};
}

static void fu_on_accept(struct fu *f, const struct io_uring_cqe *cqe)
{
    if (cqe->res >= 0) {
        unsigned slot = (unsigned)cqe->res; /* an index in the table, which has nslots */
        f->w->conns++;
        f->conns[slot] = (struct fu_conn){.gen = (uint16_t)(f->conns[slot].gen + 1)};
        fu_arm_recv(f, slot);
        if (f->conns[slot].closing)
            fu_end(f, slot);
    }
    if (!(cqe->flags & IORING_CQE_F_MORE)) /* ended (an error, or a full table): again */
        fu_arm_accept(f);
}

/* A receive's completion: one request in one buffer, answered at once. */
static void fu_on_recv(struct fu *f, unsigned slot, const struct io_uring_cqe *cqe)
{
    struct fu_conn *c = &f->conns[slot];
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more)
        c->receiving = false;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        char *buf = f->bufs + (size_t)bid * FU_BUF_SIZE;
        bool last = cqe->res > 0 && memmem(buf, (size_t)cqe->res, "Connection: close", 17);
        struct io_uring_sqe *sqe;
        if (cqe->res > 0 && !c->closing && (sqe = fu_sqe(f))) {
            io_uring_prep_send(sqe, (int)slot, f->w->a->bytes, f->w->a->len,
                               MSG_NOSIGNAL | MSG_WAITALL);
            sqe->flags |= IOSQE_FIXED_FILE;
            if (last)
                c->sending = true;
            else
                sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            io_uring_sqe_set_data64(sqe, fu_tag(last ? FU_SEND_LAST : FU_SEND, c, slot));
            f->w->requests++; /* taken back if it fails */
        }
        io_uring_buf_ring_add(f->br, buf, FU_BUF_SIZE, bid, io_uring_buf_ring_mask(FU_BUFS), 0);
        io_uring_buf_ring_advance(f->br, 1);
    }
    if (!more && cqe->res == -ENOBUFS && !c->closing) /* every buffer was taken: again */
        fu_arm_recv(f, slot);
    else if (!more)
        fu_end(f, slot);
}

/* A send that failed, or the last one. */
static void fu_on_send(struct fu *f, unsigned slot, const struct io_uring_cqe *cqe, bool last)
{
    struct fu_conn *c = &f->conns[slot];
    if (cqe->res != (int)f->w->a->len)
        f->w->requests--;
    if (c->gen != (uint16_t)(cqe->user_data >> 32)) /* a connection that has gone */
        return;
    if (last)
        c->sending = false;
    fu_end(f, slot);
}

static void fu_on_cqe(struct fu *f, const struct io_uring_cqe *cqe, bool *running)
{
    unsigned slot = (unsigned)(cqe->user_data & UINT32_MAX);
    switch ((enum fu_op)(cqe->user_data >> 48)) {
    case FU_ACCEPT: fu_on_accept(f, cqe); break;
    case FU_RECV: fu_on_recv(f, slot, cqe); break;
    case FU_SEND: fu_on_send(f, slot, cqe, false); break;
    case FU_SEND_LAST: fu_on_send(f, slot, cqe, true); break;
    case FU_STOP: *running = false; break;
    default: break;
    }
}

static int fu_setup(struct fu *f)
{
    struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP |
                                         IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                                .cq_entries = FU_CQ_ENTRIES};
    int e = io_uring_queue_init_params(FU_SQ_ENTRIES, &f->ring, &p);
    if (e < 0) {
        fprintf(stderr, "floor: io_uring_queue_init: %s\n", strerror(-e));
        return -1;
    }
    f->has_ring = true;
    (void)io_uring_register_ring_fd(&f->ring); /* optional: spares each enter a lookup */
    void *br = mmap(NULL, FU_BUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    f->br = br == MAP_FAILED ? NULL : br;
    f->bufs = malloc((size_t)FU_BUFS * FU_BUF_SIZE);
    f->conns = calloc(f->nslots, sizeof *f->conns);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uintptr_t)f->br, .ring_entries = FU_BUFS, .bgid = FU_BGID};
    e = f->br && f->bufs && f->conns ? io_uring_register_buf_ring(&f->ring, &reg, 0) : -ENOMEM;
    if (e == 0)
        e = io_uring_register_files_sparse(&f->ring, f->nslots);
    if (e < 0) {
        fprintf(stderr, "floor: io_uring set-up: %s\n", strerror(-e));
        return -1;
    }
    io_uring_buf_ring_init(f->br);
    for (uint16_t bid = 0; bid < FU_BUFS; bid++)
        io_uring_buf_ring_add(f->br, f->bufs + (size_t)bid * FU_BUF_SIZE, FU_BUF_SIZE, bid,
                              io_uring_buf_ring_mask(FU_BUFS), bid);
    io_uring_buf_ring_advance(f->br, FU_BUFS);
    return 0;
}

int floor_uring_loop(struct worker *w, volatile sig_atomic_t *signalled)
{
    struct fu f = {.w = w, .nslots = (unsigned)w->max_conns};
    struct rlimit rl; /* the table may not have more entries than the process may have fds */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < f.nslots)
        f.nslots = (unsigned)rl.rlim_cur;
    int rc = fu_setup(&f);
    struct io_uring_sqe *sqe = rc == 0 ? fu_sqe(&f) : NULL;
    if (sqe) {
        io_uring_prep_poll_add(sqe, w->stop_fd, POLLIN);
        io_uring_sqe_set_data64(sqe, fu_tag(FU_STOP, NULL, 0));
        fu_arm_accept(&f);
    }
    bool running = sqe != NULL;
    while (running && !(signalled && *signalled)) {
        int e = io_uring_submit_and_wait(&f.ring, 1);
        if (e < 0 && e != -EINTR) {
            fprintf(stderr, "floor: io_uring_enter: %s\n", strerror(-e));
            rc = -1;
            break;
        }
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&f.ring, head, cqe)
        {
            fu_on_cqe(&f, cqe, &running);
            n++;
        }
        io_uring_cq_advance(&f.ring, n);
    }
    if (f.has_ring)
        io_uring_queue_exit(&f.ring); /* closes the table's sockets too */
    if (f.br)
        munmap(f.br, FU_BUFS * sizeof(struct io_uring_buf));
    free(f.bufs);
    free(f.conns);
    return rc;
}
