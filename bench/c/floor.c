/* floor.c - the null server: the least an HTTP server can do on this kernel, so that every
 * other server's figures can be read against it (docs/bench.md, "The floor and the ceiling").
 *
 *   floor --addr 127.0.0.1 --port 0 --root DIR [--workers N] [--uring] [--max-conns N]
 *         [--idle-timeout S] [--quiet]
 *
 * One thread, one epoll set, level-triggered. With --workers N (the bench gives it one per
 * server core, as every server gets), N such threads, each with its own SO_REUSEPORT
 * listener on the same port and its own epoll set, sharing nothing but the answer: the
 * floor of a server of N cores, so that one thread does not cap the client's ceiling on a
 * bigger machine. A readable connection gets one recv() and, if it read anything, one
 * send() of an answer built once at start-up: a 200 with a body of the size of
 * DIR/index.html (so the bytes on the wire are those of the real servers' headline case).
 * No parsing, no file, no timers: each recv() is taken to hold one whole request, which is
 * what bench/loadgen sends (one request per connection at a time). The only look at the
 * request is for "Connection: close" (loadgen --close), after which the connection is shut
 * down once answered, so that churn works too.
 *
 * What is left is the kernel's share of a request: the wake-up, epoll_wait, recv, send and
 * TCP over loopback. Its CPU per request is the floor; the highest rate loadgen can offer
 * to it with its schedule kept is the client's ceiling.
 *
 * --uring: the same answers through io_uring instead (floor_uring.c): the least a
 * completion server can do, the floor bin/uring is read against (docs/profile.md).
 * --max-conns sizes its table of direct descriptors; the epoll loop has no table.
 *
 * Prints "listening on ADDR:PORT model=floor root=DIR" on stderr when ready (SPEC.md's
 * readiness line), and on SIGTERM/SIGINT "served N requests on M connections".
 * The options the harness passes to every server and that mean nothing here
 * (--idle-timeout, --quiet) are accepted and ignored.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floor.h"

#define MAX_EVENTS 256
#define READ_BUF 4096
#define ANSWER_BODY_MAX (1 << 20)
#define WORKERS_MAX 1024

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

/* The whole answer, head and body, built once: nothing is read or formatted per request. */
static int answer_build(struct answer *a, const char *root)
{
    char path[4096];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/index.html", root) >= (int)sizeof path ||
        stat(path, &st) < 0)
        return -1;
    if (st.st_size > ANSWER_BODY_MAX) {
        errno = EFBIG;
        return -1;
    }
    size_t body = (size_t)st.st_size;
    char head[256];
    int head_len = snprintf(head, sizeof head,
                            "HTTP/1.1 200 OK\r\nServer: c10k-floor\r\nContent-Type: text/html\r\n"
                            "Content-Length: %zu\r\n\r\n",
                            body);
    a->bytes = malloc((size_t)head_len + body);
    if (!a->bytes)
        return -1;
    memcpy(a->bytes, head, (size_t)head_len);
    memset(a->bytes + head_len, 'x', body);
    a->len = (size_t)head_len + body;
    return 0;
}

/* reuseport: several workers' listeners on one port, the kernel spreading connections.
 * Accepted sockets inherit TCP_NODELAY from the listener. */
static int listen_on(const char *addr, int port, int reuseport, int *bound_port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, fd = -1;
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t len = sizeof sa;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    *bound_port = ntohs(sa.sin_port);
    return fd;
}

/* Accepts every pending connection into the epoll set. */
static void accept_all(int epfd, int lfd, unsigned long *conns)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of fds: the queue waits for the next round */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            continue;
        }
        (*conns)++;
    }
}

/* One recv, one send. A short send (a full socket buffer) ends the connection: with loadgen
 * sending one request at a time on a 4 KiB answer it does not happen. */
static void serve(int fd, const struct answer *a, char *buf, unsigned long *requests)
{
    ssize_t n = recv(fd, buf, READ_BUF, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        close(fd); /* also leaves the epoll set */
        return;
    }
    ssize_t sent = send(fd, a->bytes, a->len, MSG_NOSIGNAL);
    if (sent != (ssize_t)a->len) {
        close(fd);
        return;
    }
    (*requests)++;
    if (memmem(buf, (size_t)n, "Connection: close", 17))
        close(fd);
}

/* Serves until stop_fd is readable, or (the first worker, which gets the signals) until
 * *signalled. */
static int worker_loop(struct worker *w, volatile sig_atomic_t *signalled)
{
    struct epoll_event events[MAX_EVENTS];
    char *buf = malloc(READ_BUF);
    if (!buf)
        return -1;
    int rc = 0, running = 1;
    while (running && !(signalled && *signalled)) {
        int n = epoll_wait(w->epfd, events, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR) {
            perror("floor: epoll_wait");
            rc = -1;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == w->lfd)
                accept_all(w->epfd, w->lfd, &w->conns);
            else if (events[i].data.fd == w->stop_fd)
                running = 0;
            else
                serve(events[i].data.fd, w->a, buf, &w->requests);
        }
    }
    free(buf);
    return rc;
}

static int use_uring; /* --uring */

static int worker_run(struct worker *w, volatile sig_atomic_t *signalled)
{
    return use_uring ? floor_uring_loop(w, signalled) : worker_loop(w, signalled);
}

static void *worker_thread(void *arg)
{
    struct worker *w = arg;
    w->rc = worker_run(w, NULL);
    return NULL;
}

/* The worker's listener on addr:*port (0: any; then *port is the one bound) and, for the
 * epoll loop, its epoll set watching it and stop_fd. */
static int worker_open(struct worker *w, const char *addr, int *port, int reuseport)
{
    w->lfd = listen_on(addr, *port, reuseport, port);
    if (use_uring)
        return w->lfd < 0 ? -1 : 0;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = w->lfd};
    struct epoll_event sev = {.events = EPOLLIN, .data.fd = w->stop_fd};
    if (w->lfd < 0 || w->epfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->lfd, &lev) < 0 ||
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->stop_fd, &sev) < 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *root = NULL;
    int port = 0, nworkers = 1, max_conns = 16384;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quiet"))
            continue;
        if (!strcmp(argv[i], "--uring")) {
            use_uring = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "floor: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--addr"))
            addr = argv[++i];
        else if (!strcmp(argv[i], "--port"))
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--root"))
            root = argv[++i];
        else if (!strcmp(argv[i], "--workers"))
            nworkers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-conns"))
            max_conns = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--idle-timeout"))
            i++;
        else {
            fprintf(stderr, "floor: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!root || nworkers < 1 || nworkers > WORKERS_MAX || max_conns < 1) {
        fprintf(stderr,
                "usage: floor --addr A --port P --root DIR [--workers 1..%d] [--uring] "
                "[--max-conns N]\n",
                WORKERS_MAX);
        return 2;
    }
    struct answer a = {0};
    int rc = 1, stop_fd = -1, started = 0;
    struct worker *ws = calloc((size_t)nworkers, sizeof *ws);
    struct sigaction sa = {.sa_handler = on_stop};
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    if (!ws || answer_build(&a, root) < 0) {
        fprintf(stderr, "floor: cannot build the answer from %s/index.html: %s\n", root,
                strerror(errno));
        goto out;
    }
    for (int i = 0; i < nworkers; i++)
        ws[i].lfd = ws[i].epfd = -1;
    /* 10,000 connections need 10,000 fds: the soft limit goes up to the hard one. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        goto out;
    stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd < 0) {
        perror("floor: eventfd");
        goto out;
    }
    for (int i = 0; i < nworkers; i++) {
        ws[i].stop_fd = stop_fd;
        ws[i].max_conns = max_conns;
        ws[i].a = &a;
        if (worker_open(&ws[i], addr, &port, nworkers > 1) < 0) {
            fprintf(stderr, "floor: cannot listen on %s:%d: %s\n", addr, port, strerror(errno));
            goto out;
        }
    }
    /* The signals reach the first worker (this thread) only; it wakes the others. */
    if (pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL) != 0)
        goto out;
    for (started = 1; started < nworkers; started++) {
        errno = pthread_create(&ws[started].thread, NULL, worker_thread, &ws[started]);
        if (errno != 0) {
            perror("floor: pthread_create");
            break;
        }
    }
    if (pthread_sigmask(SIG_UNBLOCK, &stop_sigs, NULL) == 0 && started == nworkers) {
        fprintf(stderr, "listening on %s:%d model=%s root=%s\n", addr, port,
                use_uring ? "floor-uring" : "floor", root);
        fflush(stderr);
        ws[0].rc = worker_run(&ws[0], &stopping);
    }
    uint64_t one = 1;
    if (write(stop_fd, &one, sizeof one) != sizeof one)
        perror("floor: waking the workers");
    unsigned long requests = 0, conns = 0;
    rc = started < nworkers;
    for (int i = 0; i < started; i++) {
        if (i > 0)
            pthread_join(ws[i].thread, NULL);
        requests += ws[i].requests;
        conns += ws[i].conns;
        rc |= ws[i].rc != 0;
    }
    if (!rc)
        fprintf(stderr, "served %lu requests on %lu connections\n", requests, conns);
out:
    for (int i = 0; ws && i < nworkers; i++) {
        if (ws[i].epfd >= 0)
            close(ws[i].epfd);
        if (ws[i].lfd >= 0)
            close(ws[i].lfd);
    }
    if (stop_fd >= 0)
        close(stop_fd);
    free(ws);
    free(a.bytes);
    return rc;
}
