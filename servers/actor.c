/*
 * actor.c - message passing: one acceptor, N event loops that share nothing.
 *
 * The main thread sleeps in accept(); each connection it takes is posted, as a
 * message holding its fd, to one of --workers N loops (default 2) in turn. Each
 * loop is a thread with a mailbox (a queue and an eventfd that wakes it, as
 * memcached's dispatcher hands connections to its worker threads) and its own
 * epoll, deadline list and request count; from then on the connection is that
 * loop's alone. Nothing a loop changes is seen by another: no lock is taken on
 * the way of a request (the open-file cache, shared by every thread as in
 * bin/blocking, is the exception). That is the Actor model: actors own their
 * state and talk only by messages.
 *
 * Where it waits: the acceptor in accept(2), each loop in epoll_wait(2) over its
 * connections and its eventfd (edge-triggered, once per connection, as
 * servers/epoll.c). Beside --workers N processes, this is the same spreading of
 * connections over cores done in user space: the acceptor picks the loop
 * (round robin), not the kernel's hash.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "drive.h"
#include "server.h"
#include "workers.h"

#define ACTOR_LOOPS 2 /* --workers default: one per core of the machine this was measured on */
#define EPOLL_BATCH 256
#define MSG_STOP (-1) /* the message that ends a loop */

/* A connection, in the table slot of its fd, owned by the loop it was posted to. */
struct actor_conn {
    struct conn conn;
    uint8_t rx; /* enum conn_rx: whether a read can find anything */
};

/* A loop's mailbox: the acceptor appends, the loop takes everything at once. */
struct mailbox {
    pthread_mutex_t lock;
    int *fds; /* a ring of cap messages: accepted fds, or MSG_STOP */
    int head, len, cap;
    int wake; /* eventfd: the loop's epoll sees it readable once a message came */
};

struct actor_loop {
    struct server *s;
    int id;
    pthread_t thread;
    struct mailbox box;
    struct conn_env env; /* this loop's deadlines and request count */
    unsigned long connections;
    int epfd;
    struct epoll_event events[EPOLL_BATCH];
    int next, n; /* events[next..n) is not dispatched yet; n is 0 between batches */
};

static struct actor_conn *actor_conn(struct conn *c)
{
    return container_of(c, struct actor_conn, conn);
}

/* ---- the mailbox ------------------------------------------------------------------ */

static int mailbox_init(struct mailbox *m, int cap)
{
    *m = (struct mailbox){.cap = cap, .wake = -1};
    m->fds = malloc((size_t)cap * sizeof *m->fds);
    m->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!m->fds || m->wake < 0)
        return -1;
    return pthread_mutex_init(&m->lock, NULL) == 0 ? 0 : -1;
}

static void mailbox_destroy(struct mailbox *m)
{
    free(m->fds);
    if (m->wake >= 0)
        close(m->wake);
    pthread_mutex_destroy(&m->lock);
}

/* Posts a message; -1 if the box is full (the loop is that far behind). */
static int mailbox_post(struct mailbox *m, int msg)
{
    pthread_mutex_lock(&m->lock);
    bool full = m->len == m->cap, was_empty = m->len == 0;
    if (!full)
        m->fds[(m->head + m->len++) % m->cap] = msg;
    pthread_mutex_unlock(&m->lock);
    if (full)
        return -1;
    /* Only the first message of a batch wakes the loop: it takes them all at once. */
    uint64_t one = 1;
    if (was_empty && write(m->wake, &one, sizeof one) < 0 && errno != EAGAIN)
        return -1;
    return 0;
}

/* Takes up to max messages into out; returns how many. */
static int mailbox_take(struct mailbox *m, int *out, int max)
{
    uint64_t count;
    if (read(m->wake, &count, sizeof count) < 0 && errno != EAGAIN)
        return 0;
    pthread_mutex_lock(&m->lock);
    int n = m->len < max ? m->len : max;
    for (int i = 0; i < n; i++)
        out[i] = m->fds[(m->head + i) % m->cap];
    m->head = (m->head + n) % m->cap;
    m->len -= n;
    bool more = m->len > 0;
    pthread_mutex_unlock(&m->lock);
    if (more) { /* left for the next turn: keep the eventfd readable */
        uint64_t one = 1;
        if (write(m->wake, &one, sizeof one) < 0 && errno != EAGAIN)
            return n;
    }
    return n;
}

/* ---- one loop: servers/epoll.c's, for the connections posted to it ------------------ */

/* Closes c, and drops its fd's events still ahead in this batch: the rule of loop_close()
 * in common/loop.c (libuv's uv__platform_invalidate_fd). Here it matters most: once
 * closed, the acceptor may reuse the fd and post it to another loop, whose slot this
 * loop must then not touch. */
static void actor_loop_close(struct actor_loop *l, struct conn *c)
{
    int fd = c->fd;
    server_close_conn(l->s, c);
    for (int i = l->next; i < l->n; i++)
        if (l->events[i].data.fd == fd)
            l->events[i].data.fd = -1;
}

static void actor_loop_open(struct actor_loop *l, int fd)
{
    struct conn *c = server_open_conn_in(l->s, &l->env, fd);
    if (!c) { /* cannot happen: server_accept() admitted fd below max_fds */
        close(fd);
        server_conn_gone(l->s);
        return;
    }
    actor_conn(c)->rx = RX_READY;
    /* Both directions, edge-triggered, once: conn_drive() goes on until EAGAIN. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        server_warn(l->s, "epoll_ctl: %s", strerror(errno));
        server_close_conn(l->s, c);
        return;
    }
    l->connections++;
}

/* Takes the mailbox's messages; returns false once told to stop. */
static bool actor_loop_receive(struct actor_loop *l)
{
    int msgs[EPOLL_BATCH];
    bool go_on = true;
    int n = mailbox_take(&l->box, msgs, EPOLL_BATCH);
    for (int i = 0; i < n; i++) {
        if (msgs[i] == MSG_STOP)
            go_on = false;
        else
            actor_loop_open(l, msgs[i]);
    }
    return go_on;
}

static void *actor_loop_main(void *arg)
{
    struct actor_loop *l = arg;
    struct server *s = l->s;
    bool running = true;

    while (running) {
        int timeout = deadline_ms_to_next(&l->env.idle, clock_now_ms(), 1000);
        int n = epoll_wait(l->epfd, l->events, EPOLL_BATCH, timeout);
        if (n < 0 && errno != EINTR) {
            server_warn(s, "epoll_wait: %s", strerror(errno));
            break;
        }
        for (l->next = 0, l->n = n; l->next < l->n;) {
            const struct epoll_event *ev = &l->events[l->next++];
            int fd = ev->data.fd;
            uint32_t e = ev->events;
            if (fd < 0) /* closed earlier in this batch: actor_loop_close() */
                continue;
            if (fd == l->box.wake) {
                running = actor_loop_receive(l) && running;
                continue;
            }
            struct actor_conn *ac = actor_conn(server_conn(s, fd));
            conn_rx_event(&ac->rx, e & EPOLLIN, e & (EPOLLRDHUP | EPOLLERR | EPOLLHUP));
            if (conn_drive(&ac->conn, &ac->rx) == CONN_CLOSE)
                actor_loop_close(l, &ac->conn);
        }
        l->n = 0;
        uint64_t now = clock_now_ms();
        struct conn *c;
        while ((c = conn_next_expired(&l->env, now)))
            actor_loop_close(l, c);
    }
    /* Every open connection of this loop is on its deadline list. */
    l->n = 0;
    struct conn *c;
    while ((c = conn_next_expired(&l->env, UINT64_MAX)))
        actor_loop_close(l, c);
    conn_pool_drain(); /* this thread's buffers */
    return NULL;
}

/* ---- the acceptor ----------------------------------------------------------------- */

static int start_loop(struct server *s, struct actor_loop *l, int id)
{
    *l = (struct actor_loop){.s = s, .id = id, .epfd = -1};
    l->env =
        (struct conn_env){.root_fd = s->env.root_fd, .idle_timeout_ms = s->env.idle_timeout_ms};
    deadline_list_init(&l->env.idle);
    struct epoll_event ev = {.events = EPOLLIN};
    if (mailbox_init(&l->box, s->max_fds) < 0)
        return -1;
    ev.data.fd = l->box.wake;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->box.wake, &ev) < 0)
        return -1;
    int err = pthread_create(&l->thread, NULL, actor_loop_main, l);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

static int actor_run(struct server *s)
{
    int nloops = s->cfg.workers, started = 0, next = 0, rc = -1;
    struct actor_loop *loops = calloc((size_t)nloops, sizeof *loops);
    sigset_t stop_signals, old;

    /* The loops start with SIGINT/SIGTERM blocked, so the signal interrupts accept(). */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    if (!loops)
        goto out;
    pthread_sigmask(SIG_BLOCK, &stop_signals, &old);
    for (; started < nloops; started++)
        if (start_loop(s, &loops[started], started) < 0)
            break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < nloops) {
        server_warn(s, "cannot start loop %d: %s", started, strerror(errno));
        mailbox_destroy(&loops[started].box);
        if (loops[started].epfd >= 0)
            close(loops[started].epfd);
        goto stop;
    }
    if (server_listen_blocking(s) < 0) /* as bin/blocking: asleep in accept() */
        goto stop;

    while (!server_stopping()) {
        int fd = server_accept(s, true); /* the connection nonblocking, for its loop */
        if (fd < 0) {
            server_accept_failed(s, errno);
            continue;
        }
        if (mailbox_post(&loops[next].box, fd) < 0) {
            close(fd);
            server_conn_gone(s);
        }
        next = (next + 1) % nloops;
    }
    rc = 0;
stop:
    for (int i = 0; i < started; i++) {
        while (mailbox_post(&loops[i].box, MSG_STOP) < 0) /* full: it is taking them */
            sched_yield();
    }
    for (int i = 0; i < started; i++) {
        pthread_join(loops[i].thread, NULL);
        workers_report(i, atomic_load(&loops[i].env.requests), loops[i].connections);
        atomic_fetch_add(&s->env.requests, atomic_load(&loops[i].env.requests));
        mailbox_destroy(&loops[i].box);
        close(loops[i].epfd);
    }
out:
    free(loops);
    return rc;
}

int main(int argc, char **argv)
{
    return server_main_workers(argc, argv, "actor", sizeof(struct actor_conn), actor_run,
                               SERVER_WORKERS_THREADS, ACTOR_LOOPS);
}
