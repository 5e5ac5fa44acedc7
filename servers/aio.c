/*
 * aio.c - model 5, asynchronous I/O with POSIX aio (the glibc flavour).
 *
 * Every socket read and write is an aio_read()/aio_write(); each finished
 * request queues a real-time signal (SIGEV_SIGNAL) carrying its connection, and
 * the listener signals new clients too. The process waits in sigtimedwait().
 * But Linux has no kernel async I/O behind this: glibc hands each request to
 * its own threads, which block in pread() (ESPIPE on a socket, then read()) or
 * write(). Both phases, waiting for data and copying it, happen in a glibc
 * thread; the main thread only hears that they are over. The price: a thread
 * and a 16 KiB buffer per waiting connection (a pending read holds both), so
 * aio_init() sizes the pool to --max-conns (glibc's default of 20 leaves the
 * 21st idle client unread); one glibc lock and list walks per request; some 11
 * syscalls and 2 thread switches per operation, 22 syscalls per small GET.
 * sendfile has no aio form: file bodies go through 64 KiB, aio_read then aio_write.
 */
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "files.h"
#include "server.h"

#define STAGE_SIZE (64 * 1024) /* a file body goes out in chunks of this size */
#define STAGE_KEEP 64          /* free staging buffers kept for reuse */
#define AIO_IDLE_S 3600        /* seconds an idle glibc thread lives: see aio_setup() */
#define TICK_MS 1000           /* the longest wait */

_Static_assert(CONN_OUT_CAP + FILES_SMALL_MAX <= STAGE_SIZE, "a head and a small body fit a stage");

enum aio_op { OP_NONE, OP_RECV, OP_SEND, OP_FILE };

/* A connection: the protocol's state, and the one aio request it may have in flight. */
struct aio_conn {
    struct conn conn;
    struct aiocb cb;    /* the one request in flight; glibc's until it completes */
    char *stage;        /* STAGE_SIZE bytes while a body is copied through, else NULL */
    uint32_t stage_off; /* staged bytes [stage_off, stage_len) are still to be written */
    uint32_t stage_len;
    uint8_t op;   /* enum aio_op in flight; OP_NONE when glibc holds nothing of ours */
    bool closing; /* expired or stopping: close as soon as cb completes */
};

struct stage_free {
    struct stage_free *next;
};

struct aio_loop {
    struct server *s;
    struct stage_free *stages; /* free staging buffers */
    int nstages;
    int in_flight;            /* requests glibc still owns */
    int sig_accept, sig_done; /* SIGRTMIN, SIGRTMIN + 1 */
    sigset_t waited;          /* what sigtimedwait() takes; blocked for good */
    bool stopping;
};

static struct aio_conn *aio_conn(struct conn *c)
{
    return container_of(c, struct aio_conn, conn);
}

/* ---- staging buffers: only while a response body is in flight ------------------ */

static int stage_take(struct aio_loop *a, struct aio_conn *x)
{
    if (x->stage)
        return 0;
    if (a->stages) {
        x->stage = (char *)a->stages;
        a->stages = a->stages->next;
        a->nstages--;
    } else if (!(x->stage = malloc(STAGE_SIZE))) {
        return -1;
    }
    x->stage_off = x->stage_len = 0;
    return 0;
}

static void stage_give(struct aio_loop *a, struct aio_conn *x)
{
    if (!x->stage)
        return;
    if (a->nstages < STAGE_KEEP) {
        struct stage_free *f = (struct stage_free *)x->stage;
        f->next = a->stages;
        a->stages = f;
        a->nstages++;
    } else {
        free(x->stage);
    }
    x->stage = NULL;
}

/* ---- one request at a time per connection -------------------------------------- */

/* Hands one read or write to glibc; its signal comes back with c in sival_ptr. */
static int submit(struct aio_loop *a, struct conn *c, enum aio_op op, int fd, const char *buf,
                  size_t n, off_t off)
{
    struct aio_conn *x = aio_conn(c);
    x->cb = (struct aiocb){
        .aio_fildes = fd,
        .aio_buf = (void *)buf,
        .aio_nbytes = n,
        .aio_offset = off, /* unused on a socket: glibc's pread fails with ESPIPE, then read */
        .aio_sigevent = {.sigev_notify = SIGEV_SIGNAL,
                         .sigev_signo = a->sig_done,
                         .sigev_value = {.sival_ptr = c}},
    };
    if ((op == OP_SEND ? aio_write(&x->cb) : aio_read(&x->cb)) < 0)
        return -1;
    x->op = (uint8_t)op;
    a->in_flight++;
    return 0;
}

static void close_conn(struct aio_loop *a, struct conn *c)
{
    struct aio_conn *x = aio_conn(c);
    stage_give(a, x);
    x->closing = false;
    server_close_conn(a->s, c);
}

/*
 * Starts what the connection wants next; nothing of it is in flight. A read and
 * a write are never both queued: glibc serialises requests on one fd, so a write
 * behind a pending read would wait for the client to speak.
 */
static void serve(struct aio_loop *a, struct conn *c, enum conn_want want)
{
    struct aio_conn *x = aio_conn(c);
    struct conn_tx tx;
    char *p;
    size_t n;
    int r = -1;

    if (want == CONN_CLOSE || x->closing) {
        close_conn(a, c);
        return;
    }
    if (want == CONN_READ) {
        stage_give(a, x);
        if (conn_rx_buf(c, &p, &n) == 0)
            r = submit(a, c, OP_RECV, c->fd, p, n, 0);
    } else if (x->stage && x->stage_off < x->stage_len) { /* a short write: the rest */
        r = submit(a, c, OP_SEND, c->fd, x->stage + x->stage_off, x->stage_len - x->stage_off, 0);
    } else {
        conn_tx(c, &tx, true);
        if (tx.len > 0 && tx.len2 == 0) { /* a head alone, or the rest of a body in memory */
            stage_give(a, x);
            r = submit(a, c, OP_SEND, c->fd, tx.buf, tx.len, 0);
        } else if (stage_take(a, x) < 0) {
            r = -1;
        } else if (tx.len > 0) { /* head and small body in one write, as sendmsg would do */
            memcpy(x->stage, tx.buf, tx.len);
            memcpy(x->stage + tx.len, tx.buf2, tx.len2);
            x->stage_off = 0;
            x->stage_len = (uint32_t)(tx.len + tx.len2);
            r = submit(a, c, OP_SEND, c->fd, x->stage, x->stage_len, 0);
        } else { /* the next chunk of a file body: read it in, then write it out */
            size_t len = tx.file_len < STAGE_SIZE ? tx.file_len : STAGE_SIZE;
            r = submit(a, c, OP_FILE, tx.file_fd, x->stage, len, tx.file_off);
        }
    }
    if (r < 0) {
        server_warn(a->s, "cannot start a request: %s", strerror(errno));
        close_conn(a, c);
    }
}

/*
 * A request may have finished. The signal is only a hint: the connection's own
 * state and aio_error() decide. So a late or repeated signal, even one for a fd
 * closed and reused since, finds no request in flight (or one in progress) and
 * does nothing, or finds a newer one done, which is then taken early and right:
 * no generation number is needed.
 */
static void complete(struct aio_loop *a, struct conn *c)
{
    struct aio_conn *x = aio_conn(c);
    if (x->op == OP_NONE || aio_error(&x->cb) == EINPROGRESS)
        return;
    ssize_t r = aio_return(&x->cb); /* -1 on an error, ECANCELED included */
    enum aio_op op = x->op;
    enum conn_want want = CONN_CLOSE;
    x->op = OP_NONE;
    a->in_flight--;

    if (x->closing || r < 0) {
        want = CONN_CLOSE;
    } else if (op == OP_RECV) {
        want = conn_on_input(c, (size_t)r); /* 0: the peer closed */
    } else if (op == OP_FILE) {
        if (r == 0) { /* the file shrank: the promised length cannot be kept */
            want = conn_on_output(c, 0);
        } else {
            x->stage_off = 0;
            x->stage_len = (uint32_t)r;
            want = CONN_WRITE;
        }
    } else if (r > 0) {
        want = conn_on_output(c, (size_t)r);
        if (x->stage)
            x->stage_off += (uint32_t)r;
    }
    serve(a, c, want);
}

/* Completes whatever is done without its signal having come (O(max fds)). */
static void sweep(struct aio_loop *a)
{
    for (int fd = 0; fd < a->s->max_fds && a->in_flight > 0; fd++)
        if (aio_conn(server_conn(a->s, fd))->op != OP_NONE)
            complete(a, server_conn(a->s, fd));
}

/* Ends a connection whose request may be inside a glibc thread right now. */
static void abort_conn(struct aio_loop *a, struct conn *c)
{
    struct aio_conn *x = aio_conn(c);
    x->closing = true;
    if (x->op == OP_NONE) {
        close_conn(a, c);
        return;
    }
    if (aio_error(&x->cb) != EINPROGRESS) { /* done, its signal still to come or lost */
        complete(a, c);
        return;
    }
    /* A request still queued is cancelled (and completes with ECANCELED). One that
     * a thread already runs cannot be (AIO_NOTCANCELED): shutdown() makes its
     * blocked read() or write() return. Either way the aiocb and the buffers stay
     * untouched until the completion, which closes the connection. */
    if (aio_cancel(x->cb.aio_fildes, &x->cb) != AIO_CANCELED)
        shutdown(c->fd, SHUT_RDWR);
}

/*
 * A deadline passed. Under load a request can wait in glibc's queue longer than
 * the timeout; then the client is not idle: it sent bytes our read has not taken
 * yet, or it took all we sent and our write has not run. Such a connection gets
 * another period; one that keeps silent, or stops reading, is closed.
 */
static void expire(struct aio_loop *a, struct conn *c, uint64_t now)
{
    struct aio_conn *x = aio_conn(c);
    int n = -1;

    conn_start_deadline(c, now);
    if (x->op != OP_NONE && aio_error(&x->cb) != EINPROGRESS) {
        complete(a, c); /* done, its signal not taken yet: the delay was ours */
        return;
    }
    bool ours = x->op == OP_RECV ? ioctl(c->fd, FIONREAD, &n) == 0 && n > 0
                                 : ioctl(c->fd, SIOCOUTQ, &n) == 0 && n == 0;
    if (ours)
        return;
    conn_forget_deadline(c);
    abort_conn(a, c);
}

/* Each socket is blocking: a glibc thread is meant to sleep in its read(). */
static void accept_all(struct aio_loop *a)
{
    while (!a->stopping) {
        int fd = server_accept(a->s, false);
        if (fd < 0) {
            /* EAGAIN: the backlog is empty, until the listener signals again. */
            server_accept_failed(a->s, errno);
            return;
        }
        serve(a, server_open_conn(a->s, fd), CONN_READ);
    }
}

/* Waits up to ms for one signal and acts on it. Returns it, 0 if none came, or -1. */
static int wait_one(struct aio_loop *a, int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    siginfo_t si;
    int sig = sigtimedwait(&a->waited, &si, &ts);

    if (sig < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (sig == a->sig_done) {
        if (si.si_code == SI_ASYNCIO)
            complete(a, si.si_value.sival_ptr);
    } else if (sig == a->sig_accept || sig == SIGIO) {
        accept_all(a);
        if (sig == SIGIO) /* the kernel's word that the queue overflowed: ours may be lost */
            sweep(a);
    } else { /* SIGINT or SIGTERM */
        a->stopping = true;
    }
    return sig;
}

static int aio_setup(struct aio_loop *a)
{
    struct server *s = a->s;

    /* glibc's pool defaults to 20 threads, and a pending read on an idle socket
     * holds one until the client speaks: allow one per connection. An idle
     * thread lives an hour, longer than any measured run: glibc starts a thread
     * only when none is idle, so the pool grows to the most operations ever in
     * flight at once and then stays, and a thread's start (clone3, and mmap and
     * mprotect for its stack) no longer follows timing. With one second, threads
     * left and came back within a run, so bench/detgate.py counted 0.00 to 0.04
     * mmap per request between identical runs (docs/bench.md). An earlier
     * measurement found a long idle time slower at -c10000: a burst that finds a
     * few idle threads wakes them and the pool then grows one thread at a time. */
    struct aioinit init = {
        .aio_threads = s->max_conns, .aio_num = s->max_conns, .aio_idle_time = AIO_IDLE_S};
    aio_init(&init);
    /* One malloc arena for every thread. glibc gives a thread that allocates an
     * arena of its own, up to 8 per core (an mmap, munmap and mprotect each), and
     * which of the pool's threads get one follows timing: 118 to 130 mmap and 5
     * to 14 munmap calls between identical runs of bench/detgate.py's idle
     * workload (100 threads), against 115 and 2 every time with one arena. A
     * malloc that is not glibc's (AddressSanitizer's) refuses the option: that
     * costs only the count's determinism, so it is not a reason to stop. */
    (void)mallopt(M_ARENA_MAX, 1);

    /* Blocked before glibc starts a thread (its threads block every signal), so
     * they stay queued for sigtimedwait(): no handler, no global. SIGINT and
     * SIGTERM are taken the same way, so a stop cannot slip in before the wait. */
    a->sig_accept = SIGRTMIN; /* the lower number is taken first: accept before more work */
    a->sig_done = SIGRTMIN + 1;
    sigemptyset(&a->waited);
    sigaddset(&a->waited, a->sig_accept);
    sigaddset(&a->waited, a->sig_done);
    sigaddset(&a->waited, SIGIO);
    sigaddset(&a->waited, SIGINT);
    sigaddset(&a->waited, SIGTERM);
    int err = pthread_sigmask(SIG_BLOCK, &a->waited, NULL);
    if (err != 0) {
        errno = err;
        return -1;
    }

    /* accept() has no aio form. Rather than a second place to wait, the listener
     * queues a signal per new client (model 4's F_SETSIG, used only here) and
     * accept_all() drains the backlog. To this thread (F_OWNER_TID), not the
     * process: a signal for the process that every thread blocks makes the kernel
     * search them all for a taker (complete_signal()), and with 10,000 glibc
     * threads that search, in each client's connect(), stalled the clients for
     * seconds. glibc's completion signals pay it too (it sends them to the
     * process) whenever this thread is busy rather than waiting. */
    struct f_owner_ex owner = {.type = F_OWNER_TID, .pid = gettid()};
    int fl = fcntl(s->listen_fd, F_GETFL);
    if (fl < 0 || fcntl(s->listen_fd, F_SETSIG, a->sig_accept) < 0 ||
        fcntl(s->listen_fd, F_SETOWN_EX, &owner) < 0 ||
        fcntl(s->listen_fd, F_SETFL, fl | O_ASYNC | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

/* Stops: wakes every request (cancel or shutdown) and waits until glibc gave each back. */
static void aio_drain(struct aio_loop *a)
{
    struct server *s = a->s;
    a->stopping = true;
    for (int fd = 0; fd < s->max_fds; fd++)
        if (server_conn(s, fd)->open)
            abort_conn(a, server_conn(s, fd));
    while (a->in_flight > 0)
        if (wait_one(a, TICK_MS) <= 0)
            sweep(a);
}

static int aio_run(struct server *s)
{
    struct aio_loop a = {.s = s};
    int rc = -1;

    if (aio_setup(&a) < 0) {
        server_warn(s, "cannot set up aio: %s", strerror(errno));
        goto out;
    }
    accept_all(&a); /* clients that came before the listener signalled */

    while (!a.stopping && !server_stopping()) {
        int sig = wait_one(&a, deadline_ms_to_next(&s->env.idle, clock_now_ms(), TICK_MS));
        if (sig < 0) {
            server_warn(s, "sigtimedwait: %s", strerror(errno));
            goto out;
        }
        /* A quiet moment, so anything done has lost its signal: glibc drops it when
         * the queue is full (RLIMIT_SIGPENDING, per user). Not swept under load, as
         * each request swept leaves its queued signal behind, stale. Clients left
         * in the backlog by EMFILE get another try too. */
        if (sig == 0) {
            sweep(&a);
            accept_all(&a);
        }
        uint64_t now = clock_now_ms();
        struct conn *c;
        while ((c = conn_next_expired(&s->env, now)))
            expire(&a, c, now);
    }
    rc = 0;
out:
    aio_drain(&a);
    while (a.stages) {
        struct stage_free *f = a.stages;
        a.stages = f->next;
        free(f);
    }
    /* The signals stay blocked: one that comes late waits, harmless, instead of
     * taking its default action, which for these is to end the process. */
    return rc;
}

int main(int argc, char **argv)
{
    return server_main(argc, argv, "aio", sizeof(struct aio_conn), aio_run);
}
