/* loadgen.c - an open-loop HTTP/1.1 load generator: requests go out on a fixed schedule,
 * and each latency is measured from when the request was due, not from when it was sent.
 *
 *   loadgen --host 127.0.0.1 --port P --conns N --rate R --duration S [--path /index.html]
 *           [--warmup S] [--close] [--arrivals uniform|poisson] [--timeout S]
 *           [--connect-window W] [--seed X] [--hist-out FILE] [--start-on-stdin]
 *   loadgen --merge FILE...      sums the --hist-out files of several instances
 *   loadgen --selftest           checks the histogram's error bound; "N passed, M failed"
 *
 * Closed loop and open loop. wrk and ab are closed-loop: a connection sends its next request
 * only when the previous answer has arrived. When the server stalls for 200 ms, a closed-loop
 * client stops sending too, so the requests that real users would have sent during the stall
 * are never issued and never measured: the stall shows up as one slow request per connection
 * instead of as 0.2 s x rate slow ones. The client has coordinated with the server to omit
 * the bad samples ("coordinated omission", Gil Tene). Real users arrive on their own clock
 * (open loop), so loadgen fixes the schedule in advance -- R requests per second, evenly spaced
 * or Poisson -- and measures each latency from the request's scheduled time to the last byte
 * of its answer, however late it could actually be sent.
 *
 * How it runs, in one thread around one epoll set, with no allocation per request:
 *   1. Opens N keep-alive connections, at most W connects in flight (a full listen queue drops
 *      SYNs, and a dropped SYN costs a 1 s retransmit). Connect failures are reported, not
 *      retried. None of this is measured. RLIMIT_NOFILE is raised to N + 8, past the hard
 *      limit if it may (as root with CAP_SYS_RESOURCE, up to fs.nr_open). Then each open
 *      connection carries one unmeasured request ("primed"), so none is cold in the window.
 *   2. Issues requests at rate R for warmup + duration seconds. A due request goes to the
 *      connection that has been idle longest (FIFO, so the load spreads over all N); if none is
 *      idle, it waits, and its wait counts in its latency ("conn_waits" counts these). Requests
 *      scheduled in the warm-up are sent and read but not recorded. A connection the server
 *      closes (idle timeout, error) is reopened 10 ms later.
 *   3. Stops issuing at the end of the window (requests due but never sent are "unsent" and
 *      enter the histogram at window end - due), waits up to --timeout for the answers still
 *      in flight (those missing are timeouts, in the histogram at their age), and resets the
 *      connections (no TIME_WAIT left on the client's ports).
 * The latency sample ("requests") is the answers to requests due inside the window, wherever
 * they arrive; achieved_rps is the answers that arrive inside the window / its length, so a
 * backlog answered after the window does not count as throughput.
 * --close: churn. Each request opens its own connection at its scheduled time (so its latency
 * includes the connect), sends "Connection: close", and the socket is closed after the server's
 * FIN (the server closes first, so TIME_WAIT stays on its side). At most N are open at once.
 *
 * Client-bound. A send is "late" if it left (by the clock read at the send) more than 1 ms
 * after the moment it was both due and had a connection free: that delay is the client's
 * own (time waiting for a busy connection is the server's and is in the latency). behind_ms
 * is the largest such delay; every send's lateness goes into a second histogram. The run is
 * client_bound when more than 0.1% of the window's sends were late, when the p99.9 of
 * lateness exceeds 1 ms, or when loadgen used 90% or more of one core (getrusage user+sys
 * over the window / wall time). "steady" compares the window's two halves. A
 * client-bound run measured the client, not the server: never report it as the server's figure.
 *
 * Merging (several client machines): each instance runs the same command with its share of the
 * rate and connections, started together, and writes --hist-out FILE. --start-on-stdin holds
 * each instance after its set-up until a line arrives on stdin, so that one writer starts
 * every schedule at once, however long each took to open its connections.
 * `loadgen --merge FILE...` adds the histograms bucket by bucket (exact: percentiles of the union,
 * not an average of percentiles), sums rates, requests, statuses and errors, and takes the maximum
 * of behind_ms, client_cpu (each instance's own core) and duration; client_bound if any instance
 * was.
 *
 * Histogram: log-linear like HdrHistogram, in nanoseconds. Each power of two is cut into 128
 * equal buckets; a value is reported as its bucket's midpoint, so the relative error is at most
 * 1/256 (0.4%); values below 256 ns are exact. Values past 2^40 ns (18 min) are clamped.
 *
 * Output: human-readable lines, then as the last line of stdout one JSON object (see
 * results_print_json() in loadgen_results.c). Exit status 0; 1 if it cannot run (no connection
 * opened, bad file to merge); 2 for bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen_results.h"

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define LATE_NS NS_PER_MS            /* a send this late is the client's fault */
#define LATE_FRACTION_BOUND 0.001    /* more late sends than this: client_bound */
#define LATE_P999_BOUND_NS NS_PER_MS /* a p99.9 of lateness above this: client_bound */
#define CPU_BOUND 0.90               /* more of one core than this: client_bound */
#define RECONNECT_DELAY_NS (10 * NS_PER_MS)
#define SWEEP_NS (100 * NS_PER_MS) /* how often in-flight requests are checked for timeout */
#define SETUP_TIMEOUT_NS (60 * NS_PER_S)
#define MAX_EVENTS 512
#define BIG_BATCH 64 /* events in one epoll batch from which it counts as big */
#define READ_BUF 65536
#define FD_SPARE 8

/* ---- responses: just enough HTTP/1.1 to find where an answer ends ------------------------ */

enum resp_phase { RESP_STATUS, RESP_HEADERS, RESP_BODY };
enum resp_result { RESP_MORE, RESP_DONE, RESP_BAD };

/* Byte-at-a-time over the head (so it needs no buffer and survives any split), then the body
 * is skipped by count. Every answer of ours carries Content-Length; one without is "parse". */
struct resp {
    uint8_t phase;
    uint8_t cl_match; /* how much of "content-length:" this line has matched */
    bool cl_seen;
    uint16_t status;
    uint32_t line_len; /* bytes on the current line, CR not counted */
    uint64_t body_left;
};

static const char status_prefix[] = "HTTP/1.";
static const char cl_name[] = "content-length:";

/* Feeds len bytes; *used says how many belonged to this answer. */
static enum resp_result resp_feed(struct resp *p, const char *buf, size_t len, size_t *used)
{
    size_t i = 0;
    for (; i < len && p->phase != RESP_BODY; i++) {
        char ch = buf[i];
        if (ch == '\r')
            continue;
        if (ch == '\n') {
            if (p->phase == RESP_STATUS) {
                if (p->status < 100)
                    return RESP_BAD;
                p->phase = RESP_HEADERS;
            } else if (p->line_len == 0) {
                if (!p->cl_seen)
                    return RESP_BAD;
                p->phase = RESP_BODY;
            }
            p->line_len = 0;
            p->cl_match = 0;
            continue;
        }
        uint32_t at = p->line_len++;
        if (p->phase == RESP_STATUS) {
            if (at < sizeof status_prefix - 1 && ch != status_prefix[at])
                return RESP_BAD;
            if (at >= 9 && at <= 11) { /* "HTTP/1.1 200": the three digits */
                if (ch < '0' || ch > '9')
                    return RESP_BAD;
                p->status = (uint16_t)(p->status * 10 + (ch - '0'));
            }
        } else if (p->cl_match == sizeof cl_name - 1) {
            if (ch >= '0' && ch <= '9') {
                p->body_left = p->body_left * 10 + (uint64_t)(ch - '0');
                p->cl_seen = true;
            } else if (ch != ' ' && ch != '\t') {
                return RESP_BAD;
            }
        } else if (p->cl_match == at && (ch | 0x20) == cl_name[at]) {
            p->cl_match++;
        }
    }
    size_t body = len - i < p->body_left ? len - i : (size_t)p->body_left;
    p->body_left -= body;
    *used = i + body;
    return p->phase == RESP_BODY && p->body_left == 0 ? RESP_DONE : RESP_MORE;
}

/* ---- connections and the schedule -------------------------------------------------------- */

enum slot_state {
    SLOT_FREE,
    SLOT_CONNECTING,
    SLOT_IDLE,
    SLOT_WRITING,
    SLOT_READING,
    SLOT_DRAINING
};

struct conn {
    int fd;
    uint8_t state;
    bool queued;   /* in the idle (or free) FIFO; entries whose state changed are skipped */
    bool measured; /* the request in flight was scheduled inside the measured window */
    bool has_request;
    bool wants_out; /* registered for EPOLLOUT: while connecting, or a request is half-written */
    uint32_t written;
    int64_t sched_ns; /* when the request in flight was due */
    int64_t since_ns; /* when it was sent; when the slot became idle/free; when to reconnect */
    struct resp resp;
};

/* A FIFO of slot numbers; every slot is in it at most once, so N entries suffice. */
struct ring {
    uint32_t *slot;
    uint32_t head, count, cap;
};

static void ring_push(struct ring *q, uint32_t s)
{
    q->slot[(q->head + q->count++) % q->cap] = s;
}

static uint32_t ring_pop(struct ring *q)
{
    uint32_t s = q->slot[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    return s;
}

struct options {
    const char *host, *path, *hist_out;
    int port;
    uint32_t conns, connect_window;
    double rate, duration_s, warmup_s, timeout_s;
    bool close_mode, poisson, start_on_stdin;
    uint64_t seed;
};

struct loadgen {
    struct options o;
    struct sockaddr_in addr;
    int epfd;
    struct conn *conns;
    struct ring ready;   /* keep-alive: idle connections; --close: free slots */
    struct ring reopen;  /* keep-alive: slots to reconnect, in order of since_ns */
    uint32_t connecting; /* connects in flight */
    uint32_t in_flight;  /* requests sent or being connected, not yet answered */
    bool setting_up;
    bool issuing;  /* from the schedule's start to one last pass after the window's end */
    bool in_batch; /* handling the events of one epoll_pwait2 */
    char request[2048];
    uint32_t request_len;
    int64_t t_start, t_measure, t_end; /* schedule start, window start, window end */
    int64_t t_half;                    /* the middle of the window (the steady-state check) */
    int64_t t_next;                    /* when the next request is due */
    uint64_t seq, rng;
    int connect_errno; /* the last connect failure's reason, for the report */
    struct results r;
    char buf[READ_BUF]; /* every read lands here: answers are counted, not kept */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* xorshift64*: a fixed seed gives the same Poisson schedule every run. */
static double rand_unit(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ull) >> 11) / 9007199254740992.0; /* [0, 1) */
}

static void schedule_advance(struct loadgen *lg)
{
    lg->seq++;
    if (lg->o.poisson)
        lg->t_next += (int64_t)(-log(1.0 - rand_unit(&lg->rng)) / lg->o.rate * 1e9);
    else
        lg->t_next = lg->t_start + (int64_t)((double)lg->seq * 1e9 / lg->o.rate);
}

static bool in_window(const struct loadgen *lg, int64_t now)
{
    return !lg->setting_up && now >= lg->t_measure;
}

static void count_error(struct loadgen *lg, enum counter kind, int64_t now)
{
    if (in_window(lg, now))
        lg->r.n[kind]++;
}

static void slot_make_ready(struct loadgen *lg, struct conn *c, uint32_t slot, int64_t now)
{
    c->since_ns = now;
    if (!c->queued) {
        c->queued = true;
        ring_push(&lg->ready, slot);
    }
}

/* Ends a slot's connection. kind is the error to count against its request, or C_COUNT. */
static void slot_close(struct loadgen *lg, uint32_t slot, enum counter kind, int64_t now)
{
    struct conn *c = &lg->conns[slot];
    if (kind == C_E_CONNECT)
        lg->connect_errno = errno;
    if (c->has_request) {
        lg->in_flight--;
        c->has_request = false;
        if (kind != C_COUNT && c->measured)
            lg->r.n[kind]++;
    } else if (kind == C_E_CONNECT) {
        count_error(lg, kind, now);
    }
    if (c->state == SLOT_CONNECTING)
        lg->connecting--;
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set: the fd was never duplicated */
    c->fd = -1;
    c->state = SLOT_FREE;
    if (lg->o.close_mode) {
        slot_make_ready(lg, c, slot, now);
    } else if (!lg->setting_up) {
        c->since_ns = now + RECONNECT_DELAY_NS;
        ring_push(&lg->reopen, slot);
    } else {
        lg->r.n[kind == C_E_CONNECT ? C_SETUP_FAILED : C_SETUP_CLOSED]++;
    }
}

static int slot_watch(struct loadgen *lg, uint32_t slot, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u32 = slot};
    return epoll_ctl(lg->epfd, op, lg->conns[slot].fd, &ev);
}

static void slot_connect(struct loadgen *lg, uint32_t slot, int64_t now)
{
    struct conn *c = &lg->conns[slot];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->state = SLOT_CONNECTING;
    c->wants_out = true;
    c->since_ns = now;
    lg->connecting++;
    if (c->fd < 0 ||
        (connect(c->fd, (struct sockaddr *)&lg->addr, sizeof lg->addr) < 0 &&
         errno != EINPROGRESS) ||
        slot_watch(lg, slot, EPOLL_CTL_ADD, EPOLLOUT) < 0)
        slot_close(lg, slot, C_E_CONNECT, now);
}

/* Writes what is left of the request; waits for EPOLLOUT only if the socket is full. */
static void slot_send(struct loadgen *lg, uint32_t slot, int64_t now)
{
    struct conn *c = &lg->conns[slot];
    ssize_t n = send(c->fd, lg->request + c->written, lg->request_len - c->written, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) {
        slot_close(lg, slot, C_E_WRITE, now);
        return;
    }
    c->written += n > 0 ? (uint32_t)n : 0;
    bool done = c->written == lg->request_len;
    c->state = done ? SLOT_READING : SLOT_WRITING;
    if (c->wants_out == done) { /* the interest changes only around a half-written request */
        c->wants_out = !done;
        if (slot_watch(lg, slot, EPOLL_CTL_MOD, done ? EPOLLIN : EPOLLIN | EPOLLOUT) < 0)
            slot_close(lg, slot, C_E_WRITE, now);
    }
}

static void slot_connected(struct loadgen *lg, uint32_t slot, int64_t now)
{
    struct conn *c = &lg->conns[slot];
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        errno = err ? err : errno;
        slot_close(lg, slot, C_E_CONNECT, now);
        return;
    }
    lg->connecting--;
    c->state = SLOT_WRITING;
    if (lg->o.close_mode) {
        slot_send(lg, slot, now); /* and switches the interest to EPOLLIN */
        return;
    }
    c->wants_out = false;
    c->state = SLOT_IDLE;
    if (slot_watch(lg, slot, EPOLL_CTL_MOD, EPOLLIN) < 0) {
        slot_close(lg, slot, C_E_CONNECT, now);
        return;
    }
    slot_make_ready(lg, c, slot, now);
}

static void record_answer(struct loadgen *lg, struct conn *c)
{
    /* A fresh clock: the batch's time can be a few hundred microseconds old by now. */
    int64_t now = now_ns();
    lg->in_flight--;
    c->has_request = false;
    bool arrived_in = now >= lg->t_measure && now < lg->t_end;
    lg->r.n[C_WINDOW_ANSWERS] += arrived_in;
    lg->r.n[now < lg->t_half ? C_HALF1_ANSWERS : C_HALF2_ANSWERS] += arrived_in;
    if (!c->measured)
        return;
    lg->r.n[C_REQUESTS]++;
    unsigned cls = c->resp.status / 100;
    if (cls >= 1 && cls <= 5)
        lg->r.n[C_S1XX + cls - 1]++;
    uint64_t latency = (uint64_t)(now - c->sched_ns);
    hist_record(&lg->r.hist, latency);
    bool first = c->sched_ns < lg->t_half;
    lg->r.n[first ? C_HALF1_SUM_NS : C_HALF2_SUM_NS] += latency;
    lg->r.n[first ? C_HALF1_N : C_HALF2_N]++;
}

static void issue_due(struct loadgen *lg, int64_t now);

static void slot_readable(struct loadgen *lg, uint32_t slot, int64_t now)
{
    struct conn *c = &lg->conns[slot];
    for (;;) {
        ssize_t n = recv(c->fd, lg->buf, sizeof lg->buf, 0);
        if (n < 0) {
            if (errno != EAGAIN)
                slot_close(lg, slot, c->state == SLOT_IDLE ? C_COUNT : C_E_READ, now);
            return;
        }
        if (n == 0) {
            if (c->state == SLOT_IDLE && in_window(lg, now))
                lg->r.n[C_IDLE_CLOSED]++;
            /* The server's FIN after a complete answer is how a --close exchange ends. */
            slot_close(lg, slot, c->state == SLOT_READING ? C_E_CLOSED : C_COUNT, now);
            return;
        }
        if (c->state == SLOT_DRAINING)
            continue;
        size_t used = 0;
        enum resp_result res = c->state == SLOT_READING
                                   ? resp_feed(&c->resp, lg->buf, (size_t)n, &used)
                                   : RESP_BAD; /* bytes nobody asked for */
        if (res == RESP_BAD || (res == RESP_DONE && used != (size_t)n)) {
            slot_close(lg, slot, C_E_PARSE, now);
            return;
        }
        if (res == RESP_DONE) {
            record_answer(lg, c);
            if (lg->o.close_mode) {
                c->state = SLOT_DRAINING;
                continue;
            }
            c->state = SLOT_IDLE;
            slot_make_ready(lg, c, slot, now);
            /* A backlog waiting for a free connection goes now, not after the whole batch;
             * and so does what fell due while this batch was being handled (a fresh clock:
             * a batch of hundreds of answers takes milliseconds). */
            if (lg->issuing) {
                int64_t t = now_ns();
                if (lg->t_next <= t)
                    issue_due(lg, t);
            }
            return;
        }
    }
}

/* Puts a request due at sched on the slot's connection (or, --close, opens it). */
static void slot_start_request(struct loadgen *lg, uint32_t slot, int64_t sched, bool measured,
                               int64_t now)
{
    struct conn *c = &lg->conns[slot];
    c->measured = measured;
    c->sched_ns = sched;
    c->has_request = true;
    c->written = 0;
    memset(&c->resp, 0, sizeof c->resp);
    lg->in_flight++;
    if (lg->o.close_mode) {
        slot_connect(lg, slot, now);
    } else {
        c->since_ns = now;
        slot_send(lg, slot, now);
    }
}

/* Sends every request that is due, as long as a connection (or a --close slot) is free. */
static void issue_due(struct loadgen *lg, int64_t now)
{
    while (lg->t_next <= now && lg->t_next < lg->t_end) {
        uint32_t slot = 0;
        struct conn *c = NULL;
        while (lg->ready.count > 0 && !c) {
            slot = ring_pop(&lg->ready);
            c = &lg->conns[slot];
            c->queued = false;
            if (c->state != (lg->o.close_mode ? SLOT_FREE : SLOT_IDLE))
                c = NULL; /* it was closed, or reused, since it was queued */
        }
        if (!c)
            return;
        /* Lateness against the clock now, as the request leaves: `now` is when this batch
         * began, and the sends before this one in the batch took time too. */
        int64_t sent_at = now_ns();
        int64_t free_at = c->since_ns > lg->t_next ? c->since_ns : lg->t_next;
        int64_t lag = sent_at > free_at ? sent_at - free_at : 0;
        bool measured = lg->t_next >= lg->t_measure;
        if (measured) {
            lg->r.n[C_SENT]++;
            lg->r.n[C_LATE] += lag > LATE_NS;
            lg->r.n[C_LATE_IN_BATCH] += lag > LATE_NS && lg->in_batch;
            lg->r.n[C_CONN_WAITS] += c->since_ns > lg->t_next;
            hist_record(&lg->r.lateness, (uint64_t)lag);
            if (lag > lg->r.max_lag_ns)
                lg->r.max_lag_ns = lag;
        }
        int64_t due = lg->t_next;
        schedule_advance(lg);
        slot_start_request(lg, slot, due, measured, sent_at);
    }
}

/* Reopens closed keep-alive connections whose delay has passed, W at a time. */
static void reopen_due(struct loadgen *lg, int64_t now)
{
    while (lg->reopen.count > 0 && lg->connecting < lg->o.connect_window) {
        uint32_t slot = lg->reopen.slot[lg->reopen.head];
        if (lg->conns[slot].since_ns > now)
            return;
        ring_pop(&lg->reopen);
        if (!lg->setting_up && in_window(lg, now))
            lg->r.n[C_RECONNECTS]++;
        slot_connect(lg, slot, now);
    }
}

/* Connections and requests that have waited longer than --timeout. */
static void sweep_timeouts(struct loadgen *lg, int64_t now)
{
    int64_t limit = (int64_t)(lg->o.timeout_s * 1e9);
    for (uint32_t i = 0; i < lg->o.conns; i++) {
        struct conn *c = &lg->conns[i];
        bool waiting = c->state == SLOT_CONNECTING || c->state == SLOT_WRITING ||
                       c->state == SLOT_READING || c->state == SLOT_DRAINING;
        if (!waiting || now - c->since_ns < limit)
            continue;
        if (c->state == SLOT_CONNECTING)
            slot_close(lg, i, C_E_CONNECT, now);
        else
            slot_close(lg, i, c->state == SLOT_DRAINING ? C_COUNT : C_E_TIMEOUT, now);
    }
}

static void dispatch(struct loadgen *lg, uint32_t slot, uint32_t events, int64_t now)
{
    struct conn *c = &lg->conns[slot];
    if (c->state == SLOT_CONNECTING)
        slot_connected(lg, slot, now);
    else if (c->state == SLOT_WRITING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        slot_send(lg, slot, now);
    else if (c->state != SLOT_FREE && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        slot_readable(lg, slot, now);
}

/* One round: wait for sockets or for the next deadline, then act on both. */
static int poll_once(struct loadgen *lg, int64_t deadline)
{
    struct epoll_event events[MAX_EVENTS];
    int64_t wait = deadline - now_ns();
    struct timespec ts = {.tv_sec = wait > 0 ? wait / NS_PER_S : 0,
                          .tv_nsec = wait > 0 ? wait % NS_PER_S : 0};
    int n = epoll_pwait2(lg->epfd, events, MAX_EVENTS, &ts, NULL);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    int64_t now = now_ns();
    lg->r.n[C_BIG_BATCHES] += n >= BIG_BATCH && in_window(lg, now);
    lg->in_batch = true;
    for (int i = 0; i < n; i++)
        dispatch(lg, events[i].data.u32, events[i].events, now);
    lg->in_batch = false;
    return 0;
}

/* Phase 1b: one unmeasured request on every open connection, W in flight at a time, before
 * the schedule starts: a server's first request on a connection can cost more than the
 * rest (state allocated, buffers grown), and at 10,000 connections a warm-up of a few
 * thousand requests would leave most of them cold inside the window. Returns how many
 * connections were answered. */
static uint32_t prime_all(struct loadgen *lg)
{
    int64_t start = now_ns();
    uint32_t next = 0;
    while ((next < lg->o.conns || lg->in_flight > 0) && now_ns() - start < SETUP_TIMEOUT_NS) {
        for (; next < lg->o.conns && lg->in_flight < lg->o.connect_window; next++)
            if (lg->conns[next].state == SLOT_IDLE)
                slot_start_request(lg, next, now_ns(), false, now_ns());
        if (poll_once(lg, now_ns() + SWEEP_NS) < 0)
            break;
        sweep_timeouts(lg, now_ns());
    }
    uint32_t answered = 0;
    for (uint32_t i = 0; i < lg->o.conns; i++)
        answered += lg->conns[i].state == SLOT_IDLE && !lg->conns[i].has_request;
    lg->r.n[C_PRIMED] = answered;
    return answered;
}

/* Phase 1: open every keep-alive connection, W at a time, then prime each (prime_all).
 * Returns how many are open. */
static uint32_t open_all(struct loadgen *lg)
{
    int64_t start = now_ns();
    lg->setting_up = true;
    for (uint32_t i = 0; i < lg->o.conns; i++) {
        lg->conns[i].since_ns = 0;
        ring_push(&lg->reopen, i);
    }
    while ((lg->reopen.count > 0 || lg->connecting > 0) && now_ns() - start < SETUP_TIMEOUT_NS) {
        reopen_due(lg, now_ns());
        if (poll_once(lg, now_ns() + SWEEP_NS) < 0)
            break;
        sweep_timeouts(lg, now_ns());
    }
    /* Whatever is still connecting at the deadline has failed. */
    for (uint32_t i = 0; i < lg->o.conns; i++)
        if (lg->conns[i].state == SLOT_CONNECTING)
            slot_close(lg, i, C_E_CONNECT, now_ns());
    lg->r.n[C_SETUP_FAILED] += lg->reopen.count; /* never tried: out of time */
    lg->reopen.count = 0;
    uint32_t open = 0;
    for (uint32_t i = 0; i < lg->o.conns; i++)
        open += lg->conns[i].state == SLOT_IDLE;
    uint32_t primed = open ? prime_all(lg) : 0;
    lg->setting_up = false;
    /* The harness starts its clock at this line: the schedule begins right after it. */
    fprintf(stderr,
            "loadgen: %" PRIu32 " connections open in %.2f s (%" PRIu64
            " failed to connect%s%s, %" PRIu64 " closed by the server meanwhile, %" PRIu32
            " primed with one request each)\n",
            open, (double)(now_ns() - start) / 1e9, lg->r.n[C_SETUP_FAILED],
            lg->connect_errno ? ": " : "", lg->connect_errno ? strerror(lg->connect_errno) : "",
            lg->r.n[C_SETUP_CLOSED], primed);
    return open;
}

/* --start-on-stdin: blocks until a whole line arrives on stdin (the harness's start signal
 * to every instance at once). Returns -1 if stdin closed first (the harness went away). */
static int wait_for_start(void)
{
    char c;
    fprintf(stderr, "loadgen: ready; waiting for the start line on stdin\n");
    for (;;) {
        ssize_t n = read(STDIN_FILENO, &c, 1);
        if (n == 1 && c == '\n')
            return 0;
        if (n == 0)
            return -1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Back to SCHED_OTHER if loadgen was started under a real-time policy. */
static void drop_realtime(void)
{
    struct sched_param normal = {.sched_priority = 0};
    int policy = sched_getscheduler(0);
    if (policy == SCHED_FIFO || policy == SCHED_RR) {
        if (sched_setscheduler(0, SCHED_OTHER, &normal) < 0)
            fprintf(stderr, "loadgen: sched_setscheduler(SCHED_OTHER): %s\n", strerror(errno));
    }
}

/* Phases 2 and 3: the schedule, then waiting for the last answers. */
static int run(struct loadgen *lg)
{
    int64_t now = now_ns();
    lg->t_start = lg->t_next = now;
    lg->t_measure = now + (int64_t)(lg->o.warmup_s * 1e9);
    lg->t_end = lg->t_measure + (int64_t)(lg->o.duration_s * 1e9);
    lg->t_half = lg->t_measure + (lg->t_end - lg->t_measure) / 2;
    int64_t next_sweep = now + SWEEP_NS, cpu_at = 0;
    int64_t drain_end = lg->t_end + (int64_t)(lg->o.timeout_s * 1e9);
    double cpu_start = 0, cpu_end = 0;
    bool measuring = false;
    lg->issuing = true;
    for (;;) {
        if (!measuring && now >= lg->t_measure) {
            measuring = true;
            cpu_start = cpu_seconds();
            cpu_at = now;
        }
        /* One last pass after the end, for requests due just before it. */
        if (lg->issuing) {
            issue_due(lg, now);
            lg->issuing = now < lg->t_end;
        }
        if (!lg->issuing && (lg->in_flight == 0 || now >= drain_end))
            break;
        reopen_due(lg, now);
        if (now >= next_sweep) {
            sweep_timeouts(lg, now);
            next_sweep = now + SWEEP_NS;
        }
        /* Sleep until the next request is due, unless nothing could carry it anyway. */
        int64_t deadline = next_sweep;
        if (lg->issuing && lg->ready.count > 0 && lg->t_next < deadline)
            deadline = lg->t_next;
        if (measuring && lg->t_end < deadline && now < lg->t_end)
            deadline = lg->t_end;
        if (!measuring && lg->t_measure < deadline)
            deadline = lg->t_measure;
        if (lg->reopen.count > 0 && lg->connecting < lg->o.connect_window) {
            int64_t t = lg->conns[lg->reopen.slot[lg->reopen.head]].since_ns;
            deadline = t < deadline ? t : deadline;
        }
        if (poll_once(lg, deadline) < 0)
            return -1;
        int64_t before = now;
        now = now_ns();
        if (before < lg->t_end && now >= lg->t_end) {
            cpu_end = cpu_seconds();
            lg->r.client_cpu = (cpu_end - cpu_start) / ((double)(now - cpu_at) / 1e9);
        }
    }
    /* The window is over. Under SCHED_FIFO (bench.py runs loadgen under chrt) closing
     * 10,000 sockets takes ~170 ms of this core, and the harness, which reads the server's
     * CPU at the window's end from the same core at a lower real-time priority, would wait
     * behind it: the end is given back to ordinary scheduling first. */
    drop_realtime();
    /* Due in the window but never sent: no connection came free in time. They enter the
     * latency histogram at what they had waited when the window closed (a lower bound):
     * left out, they would hide exactly the tail past a server's knee. */
    for (; lg->t_next < lg->t_end; schedule_advance(lg)) {
        if (lg->t_next < lg->t_measure)
            continue;
        lg->r.n[C_UNSENT]++;
        hist_record(&lg->r.hist, (uint64_t)(lg->t_end - lg->t_next));
    }
    /* Reset rather than close: N sockets in TIME_WAIT here would hold N of the ~28,000
     * ephemeral ports for a minute, and the next run's connects would crawl past them. */
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    for (uint32_t i = 0; i < lg->o.conns; i++) {
        if (lg->conns[i].fd < 0)
            continue;
        setsockopt(lg->conns[i].fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        /* Still unanswered after --timeout: an error, and in the histogram at its age. */
        if (lg->conns[i].has_request && lg->conns[i].measured)
            hist_record(&lg->r.hist, (uint64_t)(now - lg->conns[i].sched_ns));
        slot_close(lg, i, lg->conns[i].has_request ? C_E_TIMEOUT : C_COUNT, now);
    }
    return 0;
}

/* ---- set-up ------------------------------------------------------------------------------ */

/* Each connection needs an fd. As root the hard limit can go up to fs.nr_open. */
static int raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_max < want) {
        rlim_t nr_open = 0;
        FILE *f = fopen("/proc/sys/fs/nr_open", "r");
        unsigned long v;
        if (f && fscanf(f, "%lu", &v) == 1)
            nr_open = v;
        if (f)
            fclose(f);
        struct rlimit up = {.rlim_cur = want, .rlim_max = want};
        if (want <= nr_open && setrlimit(RLIMIT_NOFILE, &up) == 0)
            return 0;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    return want <= rl.rlim_cur ? 0 : -1;
}

static void usage_exit(const char *why)
{
    fprintf(stderr,
            "loadgen: %s\nusage: loadgen --host H --port P --conns N --rate R --duration S\n"
            "         [--path /index.html] [--warmup S] [--close] [--arrivals uniform|poisson]\n"
            "         [--timeout S] [--connect-window W] [--seed X] [--hist-out FILE]\n"
            "         [--start-on-stdin]\n"
            "       loadgen --merge FILE...\n       loadgen --selftest\n",
            why);
    exit(2);
}

static double parse_num(const char *s, double min, double max, const char *what)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *s == '\0' || *end != '\0' || !(v >= min && v <= max))
        usage_exit(what);
    return v;
}

static struct options parse_args(int argc, char **argv)
{
    static const struct option longs[] = {
        {"host", 1, 0, 'h'},     {"port", 1, 0, 'p'},           {"conns", 1, 0, 'c'},
        {"rate", 1, 0, 'r'},     {"duration", 1, 0, 'd'},       {"path", 1, 0, 'P'},
        {"warmup", 1, 0, 'w'},   {"close", 0, 0, 'C'},          {"arrivals", 1, 0, 'a'},
        {"timeout", 1, 0, 't'},  {"connect-window", 1, 0, 'W'}, {"seed", 1, 0, 's'},
        {"hist-out", 1, 0, 'o'}, {"start-on-stdin", 0, 0, 'G'}, {0, 0, 0, 0},
    };
    struct options o = {.host = "127.0.0.1",
                        .path = "/index.html",
                        .port = -1,
                        .conns = 100,
                        .connect_window = 128,
                        .rate = -1,
                        .duration_s = 10,
                        .timeout_s = 5,
                        .seed = 1};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'h': o.host = optarg; break;
        case 'p': o.port = (int)parse_num(optarg, 1, 65535, "bad --port"); break;
        case 'c': o.conns = (uint32_t)parse_num(optarg, 1, 1000000, "bad --conns"); break;
        case 'r': o.rate = parse_num(optarg, 0.001, 1e8, "bad --rate"); break;
        case 'd': o.duration_s = parse_num(optarg, 0.01, 86400, "bad --duration"); break;
        case 'P': o.path = optarg; break;
        case 'w': o.warmup_s = parse_num(optarg, 0, 86400, "bad --warmup"); break;
        case 'C': o.close_mode = true; break;
        case 'a':
            if (strcmp(optarg, "uniform") && strcmp(optarg, "poisson"))
                usage_exit("--arrivals is uniform or poisson");
            o.poisson = !strcmp(optarg, "poisson");
            break;
        case 't': o.timeout_s = parse_num(optarg, 0.001, 3600, "bad --timeout"); break;
        case 'W':
            o.connect_window = (uint32_t)parse_num(optarg, 1, 65536, "bad --connect-window");
            break;
        case 's': o.seed = (uint64_t)parse_num(optarg, 1, 1e18, "bad --seed"); break;
        case 'o': o.hist_out = optarg; break;
        case 'G': o.start_on_stdin = true; break;
        default: usage_exit("unknown option");
        }
    }
    if (optind != argc)
        usage_exit("unexpected argument");
    if (o.port < 0 || o.rate < 0)
        usage_exit("--port and --rate are required");
    return o;
}

static int resolve(const char *host, int port, struct sockaddr_in *sa)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return -1;
    *sa = *(struct sockaddr_in *)res->ai_addr;
    sa->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

static struct loadgen *loadgen_new(const struct options *o)
{
    struct loadgen *lg = calloc(1, sizeof *lg);
    if (!lg)
        return NULL;
    lg->o = *o;
    lg->epfd = epoll_create1(EPOLL_CLOEXEC);
    lg->conns = calloc(o->conns, sizeof *lg->conns);
    lg->ready.slot = calloc(o->conns, sizeof(uint32_t));
    lg->reopen.slot = calloc(o->conns, sizeof(uint32_t));
    if (lg->epfd < 0 || !lg->conns || !lg->ready.slot || !lg->reopen.slot)
        goto fail;
    lg->ready.cap = lg->reopen.cap = o->conns;
    for (uint32_t i = 0; i < o->conns; i++)
        lg->conns[i].fd = -1;
    int len = snprintf(lg->request, sizeof lg->request,
                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: c10k-loadgen\r\n%s\r\n",
                       o->path, o->host, o->port, o->close_mode ? "Connection: close\r\n" : "");
    if (len < 0 || len >= (int)sizeof lg->request || resolve(o->host, o->port, &lg->addr) < 0)
        goto fail;
    lg->request_len = (uint32_t)len;
    lg->rng = o->seed;
    lg->r.offered_rps = o->rate;
    lg->r.duration_s = o->duration_s;
    lg->r.conns = o->conns;
    lg->r.instances = 1;
    return lg;
fail:
    if (lg->epfd >= 0)
        close(lg->epfd);
    free(lg->conns);
    free(lg->ready.slot);
    free(lg->reopen.slot);
    free(lg);
    return NULL;
}

static void loadgen_free(struct loadgen *lg)
{
    close(lg->epfd);
    free(lg->conns);
    free(lg->ready.slot);
    free(lg->reopen.slot);
    free(lg);
}

static void check(bool ok, int *passed, int *failed)
{
    if (ok)
        (*passed)++;
    else
        (*failed)++;
}

/* Every value from 1 ns to 2^40 ns, sampled, comes back within 1/256 of itself. */
static int selftest(void)
{
    static struct hist h;
    int passed = 0, failed = 0;
    double worst = 0;
    for (uint64_t v = 1; v < (1ull << HIST_MAX_BITS); v = (uint64_t)((double)v * 1.0137) + 1) {
        memset(&h, 0, sizeof h);
        h.max_ns = UINT64_MAX; /* test the bucket, not the clamp to max */
        h.count[hist_index(v)]++;
        h.total = 1;
        double err = fabs((double)hist_percentile(&h, 50) - (double)v) / (double)v;
        worst = err > worst ? err : worst;
    }
    check(worst <= 1.0 / 256, &passed, &failed);
    printf("%s single values: worst relative error %.5f (bound 1/256)\n",
           worst <= 1.0 / 256 ? "ok" : "FAIL", worst);

    memset(&h, 0, sizeof h);
    for (uint64_t us = 1; us <= 100000; us++)
        hist_record(&h, us * 1000);
    static const double pcts[] = {50, 90, 99, 99.9};
    for (unsigned i = 0; i < sizeof pcts / sizeof pcts[0]; i++) {
        double want = pcts[i] * 1000 * 1000, got = (double)hist_percentile(&h, pcts[i]);
        bool ok = fabs(got - want) / want <= 0.01;
        check(ok, &passed, &failed);
        printf("%s 1..100000 us uniform: p%g %.0f ns, exact %.0f\n", ok ? "ok" : "FAIL", pcts[i],
               got, want);
    }
    bool ok = hist_percentile(&h, 100) == 100000000ull && h.max_ns == 100000000ull;
    check(ok, &passed, &failed);
    printf("%s max is exact\n", ok ? "ok" : "FAIL");

    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-LENGTH:  5\r\nX: y\r\n\r\nhello";
    size_t split_ok = 0;
    for (size_t cut = 0; cut <= sizeof answer - 1; cut++) {
        struct resp p = {0};
        size_t used1 = 0, used2 = 0;
        enum resp_result a = resp_feed(&p, answer, cut, &used1);
        enum resp_result b = resp_feed(&p, answer + cut, sizeof answer - 1 - cut, &used2);
        split_ok += (cut < sizeof answer - 1 ? a == RESP_MORE : a == RESP_DONE) &&
                    (b == RESP_DONE || cut == sizeof answer - 1) && p.status == 200 &&
                    used1 + used2 == sizeof answer - 1;
    }
    ok = split_ok == sizeof answer;
    check(ok, &passed, &failed);
    printf("%s an answer split at every byte parses the same\n", ok ? "ok" : "FAIL");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--selftest"))
        return selftest();
    if (argc >= 2 && !strcmp(argv[1], "--merge")) {
        static struct results sum;
        if (argc < 3)
            usage_exit("--merge needs files");
        for (int i = 2; i < argc; i++) {
            if (results_merge_file(&sum, argv[i]) < 0) {
                fprintf(stderr, "loadgen: %s: not a loadgen histogram file\n", argv[i]);
                return 1;
            }
        }
        if (sum.duration_s <= 0)
            sum.duration_s = 1;
        results_print_summary(&sum);
        results_print_json(&sum);
        return 0;
    }
    struct options o = parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    /* Wake-ups at the scheduled ns, not 50 us later (the default timer slack). */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    /* stdin, stdout, stderr, the epoll fd, and a few to spare (the --hist-out file). */
    if (raise_nofile((rlim_t)o.conns + FD_SPARE) < 0) {
        struct rlimit rl = {0};
        getrlimit(RLIMIT_NOFILE, &rl);
        fprintf(stderr,
                "loadgen: RLIMIT_NOFILE %lu allows at most %lu connections (the hard limit "
                "rises only with CAP_SYS_RESOURCE)\n",
                (unsigned long)rl.rlim_max, (unsigned long)rl.rlim_max - FD_SPARE);
        return 1;
    }
    struct loadgen *lg = loadgen_new(&o);
    if (!lg) {
        fprintf(stderr, "loadgen: cannot start (out of memory, or cannot resolve %s)\n", o.host);
        return 1;
    }
    int rc = 1;
    if (!o.close_mode && open_all(lg) == 0) {
        fprintf(stderr, "loadgen: no connection to %s:%d\n", o.host, o.port);
        goto out;
    }
    if (o.close_mode)
        for (uint32_t i = 0; i < o.conns; i++)
            slot_make_ready(lg, &lg->conns[i], i, 0);
    if (o.start_on_stdin && wait_for_start() < 0) {
        fprintf(stderr, "loadgen: stdin closed before the start line\n");
        goto out;
    }
    if (run(lg) < 0) {
        perror("loadgen: epoll_pwait2");
        goto out;
    }
    struct results *r = &lg->r;
    double sent = (double)r->n[C_SENT];
    r->client_bound = (sent > 0 && (double)r->n[C_LATE] / sent > LATE_FRACTION_BOUND) ||
                      hist_percentile(&r->lateness, 99.9) > (uint64_t)LATE_P999_BOUND_NS ||
                      r->client_cpu >= CPU_BOUND;
    if (o.hist_out && results_write(r, o.hist_out) < 0) {
        fprintf(stderr, "loadgen: cannot write %s\n", o.hist_out);
        goto out;
    }
    results_print_summary(r);
    results_print_json(r);
    rc = 0;
out:
    loadgen_free(lg);
    return rc;
}
