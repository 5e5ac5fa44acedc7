/* idlers.c - holds M idle keep-alive connections open to a server: the C10K load.
 *
 *   idlers --port PORT [--addr 127.0.0.1] [--count M] [--path /index.html]
 *          [--time-limit SECONDS] [--window N]
 *
 * Each connection sends one GET, reads the whole answer (headers, then Content-Length
 * bytes of body) and then stays open and silent, as a browser's idle keep-alive
 * connection does. A server whose cost grows with the number of connections it merely
 * holds (select, poll, busypoll) slows down while these are open; epoll and io_uring
 * should not. The bench runs wrk against the server at the same time.
 *
 * At most --window connections are being set up at once, so the server's listen queue
 * never overflows (a dropped SYN costs a one-second retransmit). When every connection
 * is idle or has failed, one line goes to stdout:
 *     idlers: ready 9000 idle connections to 127.0.0.1:8080 (0 failed)
 * Then it waits for SIGTERM/SIGINT or the time limit, watching for connections the
 * server closes, and prints at exit:
 *     idlers: exit 8990 of 9000 still open (10 closed by the server)
 * One epoll loop does all of it. Exit status: 0, or 2 for bad usage, 1 if it cannot run.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEADER_MAX 8192
#define SETUP_TIMEOUT_S 30 /* past this, connections still being set up count as failed */

enum state { CONNECTING, READING, IDLE, DEAD };

struct conn {
    int fd;
    enum state state;
    char *buf;        /* response header bytes, allocated only while READING */
    size_t buf_len;
    long body_left;   /* body bytes still to read, -1 until the header is complete */
};

struct options {
    const char *addr;
    int port;
    int count;
    const char *path;
    int time_limit_s;
    int window;
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage_exit(const char *why)
{
    fprintf(stderr,
            "idlers: %s\nusage: idlers --port PORT [--addr 127.0.0.1] [--count M] "
            "[--path /index.html] [--time-limit SECONDS] [--window N]\n",
            why);
    exit(2);
}

static int parse_int(const char *s, int min, int max, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < min || v > max)
        usage_exit(what);
    return (int)v;
}

static struct options parse_args(int argc, char **argv)
{
    struct options o = {.addr = "127.0.0.1", .port = -1, .count = 1000,
                        .path = "/index.html", .time_limit_s = 600, .window = 256};
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (i + 1 >= argc)
            usage_exit("missing value");
        const char *val = argv[++i];
        if (!strcmp(opt, "--port"))
            o.port = parse_int(val, 1, 65535, "bad --port");
        else if (!strcmp(opt, "--addr"))
            o.addr = val;
        else if (!strcmp(opt, "--count"))
            o.count = parse_int(val, 0, 1000000, "bad --count");
        else if (!strcmp(opt, "--path"))
            o.path = val;
        else if (!strcmp(opt, "--time-limit"))
            o.time_limit_s = parse_int(val, 1, 86400, "bad --time-limit");
        else if (!strcmp(opt, "--window"))
            o.window = parse_int(val, 1, 65536, "bad --window");
        else
            usage_exit("unknown option");
    }
    if (o.port < 0)
        usage_exit("--port is required");
    return o;
}

/* Each connection needs one fd; ask for the hard limit, like the servers do. */
static int raise_nofile(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    return (rlim_t)want + 16 <= rl.rlim_cur ? 0 : -1;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->state = DEAD;
}

/* Starts a nonblocking connect; returns 0 or -1. */
static int conn_open(struct conn *c, int ep, const struct sockaddr_in *sa, uint32_t slot)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    c->state = CONNECTING;
    c->buf_len = 0;
    c->body_left = -1;
    if (connect(c->fd, (const struct sockaddr *)sa, sizeof *sa) < 0 && errno != EINPROGRESS)
        return -1;
    /* Writable means connected (or failed: SO_ERROR tells which). */
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = slot};
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* The connect finished: check it and send the one request (it fits any socket buffer). */
static int conn_send(struct conn *c, int ep, uint32_t slot, const char *req, size_t req_len)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
        return -1;
    if (write(c->fd, req, req_len) != (ssize_t)req_len)
        return -1;
    c->buf = malloc(HEADER_MAX);
    if (!c->buf)
        return -1;
    c->state = READING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = slot};
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Does the header line starting at line (ending at CRLF) contain word? */
static bool line_has(const char *line, const char *word)
{
    const char *eol = strstr(line, "\r\n");
    const char *hit = strcasestr(line, word);
    return hit && eol && hit < eol;
}

/* Parses a complete header block: 0 with *body_len set for a 2xx keep-alive answer,
 * else -1 (an error status, or the server says it will close). */
static int parse_header(const char *hdr, long *body_len)
{
    if (strncmp(hdr, "HTTP/1.1 2", 10) != 0)
        return -1;
    *body_len = 0;
    for (const char *line = strstr(hdr, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (!strncasecmp(line, "Content-Length:", 15))
            *body_len = strtol(line + 15, NULL, 10);
        else if (!strncasecmp(line, "Connection:", 11) && line_has(line, "close"))
            return -1;
    }
    return *body_len >= 0 ? 0 : -1;
}

/* Reads what the server sent; returns 1 once the whole answer is in, 0 for more, -1. */
static int conn_read(struct conn *c)
{
    char scratch[16384];
    for (;;) {
        ssize_t n;
        if (c->body_left < 0) {
            n = read(c->fd, c->buf + c->buf_len, HEADER_MAX - 1 - c->buf_len);
        } else {
            if (c->body_left == 0)
                return 1;
            size_t want = c->body_left < (long)sizeof scratch ? (size_t)c->body_left
                                                               : sizeof scratch;
            n = read(c->fd, scratch, want);
        }
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        if (n == 0)
            return -1;
        if (c->body_left >= 0) {
            c->body_left -= n;
            continue;
        }
        c->buf_len += (size_t)n;
        c->buf[c->buf_len] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end) {
            if (c->buf_len >= HEADER_MAX - 1)
                return -1;
            continue;
        }
        long body_len;
        end[2] = '\0'; /* keep the last header line's CRLF for parse_header */
        if (parse_header(c->buf, &body_len) < 0)
            return -1;
        /* Body bytes that came with the header count against the body. */
        size_t hdr_len = (size_t)(end + 4 - c->buf);
        long extra = (long)(c->buf_len - hdr_len);
        if (extra > body_len)
            return -1; /* more than one answer: nothing we asked for */
        c->body_left = body_len - extra;
    }
}

/* The answer is complete: keep the connection, silent, and watch only for its end. */
static void conn_idle(struct conn *c)
{
    free(c->buf);
    c->buf = NULL;
    c->state = IDLE;
}

/* An idle connection became readable: returns true if the server has closed it. */
static bool idle_ended(struct conn *c)
{
    char b[4096];
    ssize_t r = read(c->fd, b, sizeof b);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c);
        return true;
    }
    return false; /* unexpected bytes: ignored */
}

int main(int argc, char **argv)
{
    struct options o = parse_args(argc, argv);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    if (inet_pton(AF_INET, o.addr, &sa.sin_addr) != 1)
        usage_exit("bad --addr (IPv4 only)");
    if (raise_nofile(o.count) < 0) {
        fprintf(stderr, "idlers: RLIMIT_NOFILE too low for %d connections\n", o.count);
        return 1;
    }
    struct sigaction act = {.sa_handler = on_stop_signal};
    sigemptyset(&act.sa_mask);
    /* No SA_RESTART: epoll_wait must return EINTR and see the flag. */
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    signal(SIGPIPE, SIG_IGN);

    char req[1024];
    int req_len = snprintf(req, sizeof req,
                           "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: c10k-idlers\r\n\r\n",
                           o.path, o.addr, o.port);
    if (req_len <= 0 || req_len >= (int)sizeof req)
        usage_exit("--path too long");

    struct conn *conns = calloc((size_t)o.count + 1, sizeof *conns);
    struct epoll_event *events = calloc(1024, sizeof *events);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || !events || ep < 0) {
        perror("idlers: start");
        return 1;
    }
    for (int i = 0; i < o.count; i++)
        conns[i].fd = -1;

    /* Phase 1: open the connections, at most o.window of them in flight. */
    int next = 0, in_flight = 0, idle = 0, failed = 0, closed = 0;
    double setup_deadline = now_s() + SETUP_TIMEOUT_S;
    while ((next < o.count || in_flight > 0) && !stop_requested) {
        while (next < o.count && in_flight < o.window) {
            struct conn *c = &conns[next];
            if (conn_open(c, ep, &sa, (uint32_t)next) < 0) {
                conn_close(c);
                failed++;
            } else {
                in_flight++;
            }
            next++;
        }
        if (now_s() > setup_deadline)
            break;
        int n = epoll_wait(ep, events, 1024, 100);
        for (int i = 0; i < n; i++) {
            uint32_t slot = events[i].data.u32;
            struct conn *c = &conns[slot];
            int r;
            if (c->state == CONNECTING) {
                r = conn_send(c, ep, slot, req, (size_t)req_len) < 0 ? -1 : 0;
            } else if (c->state == READING) {
                r = conn_read(c);
            } else {
                if (c->state == IDLE && idle_ended(c))
                    closed++;
                continue;
            }
            if (r == 0)
                continue;
            in_flight--;
            if (r > 0) {
                conn_idle(c);
                idle++;
            } else {
                conn_close(c);
                failed++;
            }
        }
    }
    /* Whatever is still being set up at the deadline has failed. */
    for (int i = 0; i < o.count; i++) {
        if (conns[i].state == CONNECTING || conns[i].state == READING) {
            conn_close(&conns[i]);
            failed++;
        }
    }
    failed += o.count - next; /* never opened: stopped early */
    printf("idlers: ready %d idle connections to %s:%d (%d failed)\n", idle - closed, o.addr,
           o.port, failed + closed);
    fflush(stdout);

    /* Phase 2: stay silent until told to stop; note every connection the server ends. */
    idle -= closed; /* those closed during set-up were reported as failed */
    closed = 0;
    double stop_at = now_s() + o.time_limit_s;
    while (!stop_requested && now_s() < stop_at) {
        int n = epoll_wait(ep, events, 1024, 500);
        for (int i = 0; i < n; i++) {
            struct conn *c = &conns[events[i].data.u32];
            if (c->state == IDLE && idle_ended(c))
                closed++;
        }
    }
    printf("idlers: exit %d of %d still open (%d closed by the server)\n", idle - closed,
           idle, closed);
    for (int i = 0; i < o.count; i++)
        conn_close(&conns[i]);
    free(conns);
    free(events);
    close(ep);
    return 0;
}
