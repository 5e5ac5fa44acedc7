/* floor.c - the null server: the least an HTTP server can do on this kernel, so that every
 * other server's figures can be read against it (docs/bench.md, "The floor and the ceiling").
 *
 *   floor --addr 127.0.0.1 --port 0 --root DIR [--max-conns N] [--idle-timeout S] [--quiet]
 *
 * One thread, one epoll set, level-triggered. A readable connection gets one recv() and, if
 * it read anything, one send() of an answer built once at start-up: a 200 with a body of
 * the size of DIR/index.html (so the bytes on the wire are those of the real servers'
 * headline case). No parsing, no file, no timers: each recv() is taken to hold one whole
 * request, which is what bench/loadgen sends (one request per connection at a time). The
 * only look at the request is for "Connection: close" (loadgen --close), after which the
 * connection is shut down once answered, so that churn works too.
 *
 * What is left is the kernel's share of a request: the wake-up, epoll_wait, recv, send and
 * TCP over loopback. Its CPU per request is the floor; the highest rate loadgen can offer
 * to it with its schedule kept is the client's ceiling.
 *
 * Prints "listening on ADDR:PORT model=floor root=DIR" on stderr when ready (SPEC.md's
 * readiness line), and on SIGTERM/SIGINT "served N requests on M connections".
 * The options the harness passes to every server and that mean nothing here (--max-conns,
 * --idle-timeout, --quiet) are accepted and ignored.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define READ_BUF 4096
#define ANSWER_BODY_MAX (1 << 20)

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

struct answer {
    char *bytes;
    size_t len;
};

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

static int listen_on(const char *addr, int port, int *bound_port)
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
        int one = 1;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
            epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
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

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *root = NULL;
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quiet"))
            continue;
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
        else if (!strcmp(argv[i], "--max-conns") || !strcmp(argv[i], "--idle-timeout"))
            i++;
        else {
            fprintf(stderr, "floor: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!root) {
        fprintf(stderr, "usage: floor --addr A --port P --root DIR\n");
        return 2;
    }
    struct answer a = {0};
    int rc = 1, lfd = -1, epfd = -1, bound = 0;
    unsigned long requests = 0, conns = 0;
    char *buf = malloc(READ_BUF);
    struct sigaction sa = {.sa_handler = on_stop};
    if (!buf || answer_build(&a, root) < 0) {
        fprintf(stderr, "floor: cannot build the answer from %s/index.html: %s\n", root,
                strerror(errno));
        goto out;
    }
    /* 10,000 connections need 10,000 fds: the soft limit goes up to the hard one. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        goto out;
    lfd = listen_on(addr, port, &bound);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    if (lfd < 0 || epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        fprintf(stderr, "floor: cannot listen on %s:%d: %s\n", addr, port, strerror(errno));
        goto out;
    }
    fprintf(stderr, "listening on %s:%d model=floor root=%s\n", addr, bound, root);
    fflush(stderr);
    struct epoll_event events[MAX_EVENTS];
    while (!stopping) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR) {
            perror("floor: epoll_wait");
            goto out;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == lfd)
                accept_all(epfd, lfd, &conns);
            else
                serve(events[i].data.fd, &a, buf, &requests);
        }
    }
    fprintf(stderr, "served %lu requests on %lu connections\n", requests, conns);
    rc = 0;
out:
    if (epfd >= 0)
        close(epfd);
    if (lfd >= 0)
        close(lfd);
    free(a.bytes);
    free(buf);
    return rc;
}
