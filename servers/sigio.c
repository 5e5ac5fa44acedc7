/*
 * sigio.c - model 4, signal-driven I/O: O_ASYNC sockets that raise real-time signals.
 *
 * Each socket names this thread (F_SETOWN_EX) and a real-time signal (F_SETSIG), kept
 * blocked: waiting for data is the kernel queueing a signal per event, while the process
 * sleeps in sigtimedwait(2); it then takes the rest of the queue in one signalfd read.
 * si_fd names the socket, si_band the event. Copying the data is recv/send/sendfile until
 * EAGAIN, as under edge-triggered epoll. When the queue (RLIMIT_SIGPENDING) is full the
 * kernel sends a plain SIGIO that names no fd: we flush the queue and poll(2) every socket
 * once. No signal tells of bytes that came before O_ASYNC, so a new socket is reported
 * once unasked. A signal still queued for a closed fd is dropped; one for a reused fd costs
 * one EAGAIN, since every socket is nonblocking and readiness is only ever acted on through
 * the I/O call that confirms it, so no generation guard is needed. Rare in practice:
 * F_SETSIG is Linux-only, the queue is small and shared by all of a user's processes, and
 * a signal per packet is more kernel work than epoll's one ready-list entry per socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "fdarray.h"
#include "poller.h"

#define SIG_BATCH 256 /* signals taken per signalfd read */

struct poller {
    const struct server *s;
    int listen_fd;
    int max_fds;
    int sig;                     /* the real-time signal our sockets raise */
    pid_t tid;                   /* the thread that takes the signals */
    sigset_t set;                /* sig and SIGIO, blocked while the poller lives */
    sigset_t old_mask;           /* the mask to restore */
    struct sigaction old_act[2]; /* of sig and SIGIO, restored to flush their queues */
    int sfd;                     /* signalfd over set, nonblocking: the batch after the wait */
    struct fdarray watched;      /* every watched fd, kept compact: the overflow rescan */
    int *slot;                   /* fd -> 1 + index in fired[] during one batch, else 0 */
    int *fresh;                  /* fds added since the last wait: no signal covers their state */
    int nfresh;                  /* how many fresh are in use */
    unsigned char *is_fresh;     /* fd -> 1 while it is in fresh */
    bool rescan;                 /* an overflow rescan did not fit in fired[]: do it again */
    unsigned long overflows;     /* rescans caused by a plain SIGIO */
    struct signalfd_siginfo info[SIG_BATCH];
};

struct poller *poller_create(struct server *s)
{
    struct poller *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->s = s;
    p->listen_fd = s->listen_fd;
    p->max_fds = s->max_fds;
    p->sig = SIGRTMIN + 1; /* any real-time signal: they queue, one per event */
    p->tid = gettid();
    p->sfd = -1;
    p->slot = calloc((size_t)p->max_fds, sizeof *p->slot);
    p->fresh = calloc((size_t)p->max_fds, sizeof *p->fresh);
    p->is_fresh = calloc((size_t)p->max_fds, 1);
    if (!p->slot || !p->fresh || !p->is_fresh || fdarray_init(&p->watched, p->max_fds) < 0)
        goto fail;

    /* Blocked, the signals queue up until we take them; nothing runs asynchronously.
     * The process has one thread, so the process mask is that thread's. */
    sigemptyset(&p->set);
    sigaddset(&p->set, p->sig);
    sigaddset(&p->set, SIGIO);
    if (sigaction(p->sig, NULL, &p->old_act[0]) < 0 || sigaction(SIGIO, NULL, &p->old_act[1]) < 0 ||
        sigprocmask(SIG_BLOCK, &p->set, &p->old_mask) < 0)
        goto fail;
    p->sfd = signalfd(-1, &p->set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (p->sfd < 0) {
        int err = errno;
        sigprocmask(SIG_SETMASK, &p->old_mask, NULL);
        errno = err;
        goto fail;
    }
    return p;
fail:;
    int err = errno;
    fdarray_free(&p->watched);
    free(p->slot);
    free(p->fresh);
    free(p->is_fresh);
    free(p);
    errno = err;
    return NULL;
}

/* Setting a signal to SIG_IGN discards its pending instances, even blocked ones. */
static int flush_queues(struct poller *p)
{
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    if (sigaction(p->sig, &ign, NULL) < 0 || sigaction(p->sig, &p->old_act[0], NULL) < 0 ||
        sigaction(SIGIO, &ign, NULL) < 0 || sigaction(SIGIO, &p->old_act[1], NULL) < 0)
        return -1;
    return 0;
}

void poller_destroy(struct poller *p)
{
    /* Silence what is still watched (the listener), or the next connection would raise a
     * signal whose default action kills the process once it is unblocked. */
    for (int i = 0; i < p->watched.n; i++)
        if (fcntl(p->watched.pfds[i].fd, F_SETFL, O_NONBLOCK) < 0)
            server_warn(p->s, "fcntl(F_SETFL): %s", strerror(errno));
    if (flush_queues(p) < 0 || sigprocmask(SIG_SETMASK, &p->old_mask, NULL) < 0)
        server_warn(p->s, "cannot restore the signal state: %s", strerror(errno));
    if (p->overflows > 0)
        server_warn(p->s, "signal queue overflowed %lu times", p->overflows);
    close(p->sfd);
    fdarray_free(&p->watched);
    free(p->slot);
    free(p->fresh);
    free(p->is_fresh);
    free(p);
}

int poller_add(struct poller *p, int fd, int mask)
{
    (void)mask; /* signals come for both directions; conn_drive() and loop.c sort them out */
    if (fd < 0 || fd >= p->max_fds || fdarray_has(&p->watched, fd)) {
        errno = fd < 0 || fd >= p->max_fds ? EBADF : EEXIST;
        return -1;
    }
    /* Owner and signal first: O_ASYNC without them would raise nothing, or SIGIO. Our
     * sockets carry no other flag F_SETFL could change, so F_GETFL is not needed. */
    struct f_owner_ex owner = {.type = F_OWNER_TID, .pid = p->tid};
    if (fcntl(fd, F_SETOWN_EX, &owner) < 0 || fcntl(fd, F_SETSIG, p->sig) < 0 ||
        fcntl(fd, F_SETFL, O_NONBLOCK | O_ASYNC) < 0 || fdarray_add(&p->watched, fd, POLLIN) < 0)
        return -1;

    /* Bytes or connections that arrived before O_ASYNC raised no signal and never will:
     * report the fd once unasked, and the first recv or accept tells. */
    if (!p->is_fresh[fd]) {
        p->is_fresh[fd] = 1;
        p->fresh[p->nfresh++] = fd;
    }
    return 0;
}

int poller_mod(struct poller *p, int fd, int mask)
{
    /* Signals come for both directions from the start; only the rescan asks poll(2),
     * and it need not wake every idle connection for POLLOUT. Input is always asked
     * for: the loop remembers it even while writing. */
    if (fdarray_has(&p->watched, fd))
        fdarray_set(&p->watched, fd, (short)(POLLIN | (mask & POLLER_WRITE ? POLLOUT : 0)));
    return 0;
}

void poller_del(struct poller *p, int fd)
{
    /* close() takes the fd off the socket's fasync list; only the rescan set needs care. */
    fdarray_del(&p->watched, fd);
}

/* Adds mask for fd to the batch, once per fd; false if fired[] is full. */
static bool report(struct poller *p, struct poller_event *fired, int max, int *n, int fd, int mask)
{
    if (p->slot[fd] > 0) {
        /* A second input signal in one batch may be the peer's FIN (its band is a
         * plain POLL_IN): report it as a possible hang-up, so that a short read
         * is not taken for an empty socket. */
        int *seen = &fired[p->slot[fd] - 1].mask;
        *seen |= mask | (*seen & mask & POLLER_READ ? POLLER_ERROR : 0);
        return true;
    }
    if (*n == max)
        return false;
    fired[*n] = (struct poller_event){.fd = fd, .mask = mask};
    p->slot[fd] = ++*n;
    return true;
}

static int band_to_mask(long band)
{
    return (band & (POLLIN | POLLRDNORM | POLLRDBAND | POLLPRI) ? POLLER_READ : 0) |
           (band & (POLLOUT | POLLWRNORM | POLLWRBAND) ? POLLER_WRITE : 0) |
           (band & (POLLERR | POLLHUP | POLLNVAL) ? POLLER_ERROR : 0);
}

/* One dequeued signal: a readiness report, an overflow, or noise from kill(2). */
static void take(struct poller *p, struct poller_event *fired, int max, int *n, int signo, int code,
                 int fd, long band, bool *overflow)
{
    if (signo == SIGIO) {
        *overflow = true;
        return;
    }
    /* The kernel's reports carry a POLL_* code; kill or sigqueue carry another. */
    if (code < POLL_IN || code > POLL_HUP || fd < 0 || !fdarray_has(&p->watched, fd))
        return; /* queued before its fd was closed */
    /* It may also be older than the fd's current connection: nginx told those apart by
     * alternating two signal numbers, as si_fd has no room for a generation. Here a stale
     * report is a spurious one, and conn_drive() answers it with a single EAGAIN. */
    report(p, fired, max, n, fd, band_to_mask(band));
}

/* The queue overflowed, so some reports are lost: ask poll(2) about every watched fd. */
static int rescan(struct poller *p, struct poller_event *fired, int max, int *n)
{
    /* Flush first: whatever the flush drops is still visible to the poll that follows. */
    int ready = -1;
    if (flush_queues(p) == 0) {
        do
            ready = poll(p->watched.pfds, (nfds_t)p->watched.n, 0);
        while (ready < 0 && errno == EINTR);
    }
    if (ready < 0) {
        p->rescan = true; /* lost reports stay lost until a rescan succeeds */
        return -1;
    }
    for (int i = 0; i < p->watched.n && ready > 0; i++) {
        short re = p->watched.pfds[i].revents;
        if (!re)
            continue;
        ready--;
        if (!report(p, fired, max, n, p->watched.pfds[i].fd, band_to_mask(re))) {
            p->rescan = true;
            break;
        }
    }
    return 0;
}

int poller_wait(struct poller *p, struct poller_event *fired, int max, int timeout_ms)
{
    int n = 0, rc = 0;
    bool retry = p->rescan, overflow = false;

    p->rescan = false;
    while (p->nfresh > 0 && n < max) {
        int fd = p->fresh[--p->nfresh];
        p->is_fresh[fd] = 0;
        /* It stands for all that came before O_ASYNC, a FIN perhaps too: a possible
         * hang-up, so that its first short read is not taken for an empty socket. */
        if (fdarray_has(&p->watched, fd))
            report(p, fired, max, &n, fd, POLLER_READ | POLLER_WRITE | POLLER_ERROR);
    }

    /* The wait: sleep only when there is nothing to report already. */
    if (n == 0 && !retry) {
        siginfo_t si;
        struct timespec ts = {.tv_sec = timeout_ms / 1000,
                              .tv_nsec = (long)(timeout_ms % 1000) * 1000000};
        int signo = sigtimedwait(&p->set, &si, timeout_ms < 0 ? NULL : &ts);
        if (signo < 0)
            return errno == EAGAIN ? 0 : -1; /* EAGAIN: timed out; EINTR: SIGINT/SIGTERM */
        take(p, fired, max, &n, signo, si.si_code, si.si_fd, si.si_band, &overflow);
    }

    /* The batch: whatever else is queued, many signals per read. Never take more than
     * fired[] can hold, since a dequeued signal cannot be put back. */
    while (n < max) {
        int want = max - n < SIG_BATCH ? max - n : SIG_BATCH;
        ssize_t r = read(p->sfd, p->info, (size_t)want * sizeof p->info[0]);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                rc = -1; /* still rescan below if a SIGIO was taken */
            break;
        }
        int got = (int)(r / (ssize_t)sizeof p->info[0]);
        for (int i = 0; i < got; i++) {
            const struct signalfd_siginfo *in = &p->info[i];
            take(p, fired, max, &n, (int)in->ssi_signo, in->ssi_code, (int)in->ssi_fd,
                 (long)in->ssi_band, &overflow);
        }
        if (got < want) /* the queue is empty for now */
            break;
    }

    if (overflow || retry) {
        if (overflow && p->overflows++ == 0)
            server_warn(p->s, "signal queue overflowed: rescanning with poll");
        if (rescan(p, fired, max, &n) < 0)
            rc = -1;
    }
    for (int i = 0; i < n; i++)
        p->slot[fired[i].fd] = 0;
    if (rc < 0) {
        /* Hand out what was dequeued anyway: those signals will not come again. */
        return n > 0 ? n : -1;
    }
    return n;
}

int main(int argc, char **argv)
{
    return loop_main(argc, argv, "sigio");
}
