/*
 * blocking.c - model 1, blocking I/O: one thread per connection.
 *
 * Every call here may put the thread to sleep: accept() until a client
 * connects, recv() until a request arrives (waiting for data) and while the
 * kernel copies it in (copying the data), send() and sendfile() until the
 * socket buffer has room. The code reads top to bottom like the protocol,
 * and the kernel scheduler is the event loop: each waiting connection is a
 * sleeping thread with its own stack, which is what C10K is about.
 *
 * What to look at: serve_blocking() is the whole model (bin/fork and
 * bin/prefork run it too, in processes: they link this file's object with its
 * main() made local, see the Makefile). Threads get small stacks (128 KiB) so
 * that 10,000 of them fit; the idle timeout is the
 * kernel's SO_RCVTIMEO, narrowed while a request is half-read so that a
 * slowloris cannot stretch it byte by byte; likewise SO_SNDTIMEO while a file
 * body goes out, so that a reader that stopped reading cannot stretch it.
 */
#include "blocking.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "server.h"

#define THREAD_STACK_SIZE (128 * 1024)
#define SENDFILE_CHUNK (64 * 1024) /* one splice's worth: one wait for room per call */

static struct blocking_conn *blocking_conn(const struct server *s, int fd)
{
    return container_of(server_conn(s, fd), struct blocking_conn, conn);
}

struct blocking {
    struct server *s;
    pthread_mutex_t lock;
    pthread_cond_t all_done;
    int threads;
};

struct worker {
    struct blocking *b;
    int fd;
};

static void set_timeout(int fd, int opt, uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    if (ms == 0)
        tv.tv_usec = 1000; /* zero would mean "no timeout" */
    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

void serve_blocking(struct server *s, struct conn *c)
{
    int fd = c->fd;
    uint32_t timeout_ms = s->env.idle_timeout_ms;
    enum conn_want want = CONN_READ;
    uint64_t deadline = clock_now_ms() + timeout_ms;
    uint64_t write_deadline = deadline; /* a file body must make progress before this */
    bool narrowed = false, send_narrowed = false;

    set_timeout(fd, SO_RCVTIMEO, timeout_ms);
    set_timeout(fd, SO_SNDTIMEO, timeout_ms);

    while (want != CONN_CLOSE) {
        ssize_t r;
        if (want == CONN_READ) {
            char *p;
            size_t n;
            if (conn_rx_buf(c, &p, &n) < 0)
                break;
            r = recv(fd, p, n, 0); /* sleeps until a request arrives or the timeout */
            if (r < 0 && errno == EINTR && !server_stopping())
                continue;
            if (r < 0) /* EAGAIN here means SO_RCVTIMEO expired: idle too long */
                break;
            want = conn_on_input(c, (size_t)r);
            write_deadline = clock_now_ms() + timeout_ms; /* the answer's full timeout */
            if (want == CONN_READ) { /* half a request: only the time left may be waited */
                uint64_t now = clock_now_ms();
                if (now >= deadline)
                    break;
                set_timeout(fd, SO_RCVTIMEO, deadline - now);
                narrowed = true;
            }
        } else {
            struct conn_tx tx;
            conn_tx(c, &tx, false);
            uint64_t start = clock_now_ms();
            if (tx.len > 0) {
                if (send_narrowed) /* a head gets the whole timeout again */
                    set_timeout(fd, SO_SNDTIMEO, timeout_ms);
                send_narrowed = false;
                r = send(fd, tx.buf, tx.len, tx.more ? MSG_MORE : 0);
            } else {
                /* SO_SNDTIMEO restarts at every chunk the kernel takes in, so a reader that
                 * stopped could hold one big sendfile for many timeouts: send a chunk at a
                 * time, and wait only for what is left of the write deadline. */
                off_t off = tx.file_off;
                if (start >= write_deadline)
                    break;
                set_timeout(fd, SO_SNDTIMEO, write_deadline - start);
                send_narrowed = true;
                r = sendfile(fd, tx.file_fd, &off,
                             tx.file_len < SENDFILE_CHUNK ? tx.file_len : SENDFILE_CHUNK);
            }
            if (r < 0 && errno == EINTR && !server_stopping())
                continue;
            if (r < 0) /* reset, or SO_SNDTIMEO: a reader that stopped reading */
                break;
            if (r > 0) /* the reader was there when the call began, not necessarily after */
                write_deadline = start + timeout_ms;
            want = conn_on_output(c, (size_t)r);
            if (want == CONN_READ) { /* answered: the next request gets a full timeout */
                deadline = clock_now_ms() + timeout_ms;
                if (narrowed)
                    set_timeout(fd, SO_RCVTIMEO, timeout_ms);
                narrowed = false;
            }
        }
    }
    if (c->linger)
        server_drain_input(fd);
    conn_close(c);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct blocking *b = w->b;
    int fd = w->fd;
    free(w);

    struct blocking_conn *bc = blocking_conn(b->s, fd);
    conn_init(&bc->conn, &b->s->env, fd); /* off the deadline list: SO_RCVTIMEO instead */
    serve_blocking(b->s, &bc->conn);
    atomic_store(&bc->serving, false); /* releases the slot to the next thread on this fd */
    close(fd);
    server_conn_gone(b->s);
    conn_pool_drain(); /* this thread's buffers die with it */

    pthread_mutex_lock(&b->lock);
    if (--b->threads == 0)
        pthread_cond_signal(&b->all_done);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

static int start_worker(struct blocking *b, pthread_attr_t *attr, int fd)
{
    struct worker *w = malloc(sizeof *w);
    pthread_t tid;
    if (!w)
        return -1;
    *w = (struct worker){b, fd};
    struct blocking_conn *bc = blocking_conn(b->s, fd);
    /* An exchange, not a store: it reads the false of the thread that served this fd
     * last, so that thread's writes to the slot happen before the next one's. */
    atomic_exchange(&bc->serving, true);
    pthread_mutex_lock(&b->lock);
    b->threads++;
    pthread_mutex_unlock(&b->lock);
    int err = pthread_create(&tid, attr, worker_main, w);
    if (err == 0)
        return 0;
    free(w);
    atomic_store(&bc->serving, false);
    pthread_mutex_lock(&b->lock);
    b->threads--;
    pthread_mutex_unlock(&b->lock);
    errno = err;
    return -1;
}

int serve_threads(struct server *s)
{
    struct blocking b = {.s = s};
    pthread_attr_t attr;
    sigset_t stop_signals, old;
    int rc = -1;

    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.all_done, NULL);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);

    if (server_listen_blocking(s) < 0) /* this model sleeps in accept() */
        goto out;

    /* Workers inherit a mask without SIGINT/SIGTERM, so the signal interrupts accept(). */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);

    while (!server_stopping()) {
        int fd = server_accept(s, false);
        if (fd < 0) {
            server_accept_failed(s, errno);
            continue;
        }
        pthread_sigmask(SIG_BLOCK, &stop_signals, &old);
        int started = start_worker(&b, &attr, fd);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (started < 0) {
            server_warn(s, "cannot start a thread: %s", strerror(errno));
            close(fd);
            server_conn_gone(s);
        }
    }
    rc = 0;

    /* Wake every worker out of its recv/send: each then closes its own socket. */
    for (int fd = 0; fd < s->max_fds; fd++)
        if (atomic_load(&blocking_conn(s, fd)->serving))
            shutdown(fd, SHUT_RDWR);
    pthread_mutex_lock(&b.lock);
    while (b.threads > 0)
        pthread_cond_wait(&b.all_done, &b.lock);
    pthread_mutex_unlock(&b.lock);
out:
    pthread_attr_destroy(&attr);
    return rc;
}

int main(int argc, char **argv)
{
    return server_main(argc, argv, "blocking", sizeof(struct blocking_conn), serve_threads);
}
