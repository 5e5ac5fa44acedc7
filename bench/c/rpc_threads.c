/*
 * rpc_threads.c - a thread-per-call client: the other side of the asynchronous RPC
 * benchmark (make demo-rpc, bench/demo_rpc.py).
 *
 *   rpc_threads --port P --threads N --rate R --duration S [--warmup S] [--path /small.txt]
 *
 * N threads, each with its own blocking keep-alive connection and one call in flight:
 * send a GET, read the whole answer, then the next. Together they keep the same open-loop
 * schedule as build/bench/loadgen: call i is due at start + i/R, and thread t makes calls
 * t, t+N, t+2N, ...; a thread sleeps until its next call is due, and a call made late (its
 * thread was still waiting for the previous answer) is measured from its due time, as
 * loadgen measures. loadgen is the other client: one thread, an epoll set, many calls in
 * flight. Prints one JSON line: threads, calls in the window, answers/s, p50 and p99 ms,
 * errors. Its CPU and memory are read by whoever started it (wait4).
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define ANSWER_BUF 4096           /* on each thread's stack: heads are ~150 B, bodies are counted */
#define THREAD_STACK (256 * 1024) /* a parked client thread needs little */

struct options {
    const char *host, *path;
    int port, threads;
    double rate, duration, warmup;
};

struct worker {
    const struct options *opt;
    int index, fd;
    double start_ns;    /* the schedule's origin, shared by every thread */
    double *latency_ms; /* calls due inside the window, in order */
    size_t cap, n;
    long errors;
    pthread_t tid;
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void sleep_until_ns(double t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1e9),
                          .tv_nsec = (long)(t - (double)(time_t)(t / 1e9) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int connect_to(const struct options *opt)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt->port)};
    int one = 1;
    if (inet_pton(AF_INET, opt->host, &sa.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* One call on a blocking connection: send the request, read the head, then the body. */
static int call(struct worker *w, char *buf, size_t buf_size, const char *req, size_t req_len)
{
    size_t off = 0, have = 0;
    ssize_t n;
    while (off < req_len) {
        n = send(w->fd, req + off, req_len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    char *head_end = NULL;
    while (!head_end) {
        if (have == buf_size - 1)
            return -1; /* a head this long is not one of ours */
        n = recv(w->fd, buf + have, buf_size - 1 - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        head_end = strstr(buf, "\r\n\r\n");
    }
    const char *length = strcasestr(buf, "\r\nContent-Length:");
    if (!length || length > head_end || strncmp(buf, "HTTP/1.1 2", 10) != 0)
        return -1; /* an answer that is not a success counts as an error */
    /* The body is not kept, only counted: one call in flight, so nothing follows it. */
    long left = strtol(length + 17, NULL, 10) - (long)(have - (size_t)(head_end + 4 - buf));
    while (left > 0) {
        n = recv(w->fd, buf, buf_size, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        left -= n;
    }
    return left == 0 ? 0 : -1;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    const struct options *opt = w->opt;
    char req[512], buf[ANSWER_BUF];
    int req_len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: rpc\r\n\r\n", opt->path);
    double gap_ns = 1e9 / opt->rate;
    double window_start = w->start_ns + opt->warmup * 1e9;
    double end = window_start + opt->duration * 1e9;
    for (long i = w->index;; i += opt->threads) {
        double due = w->start_ns + (double)i * gap_ns;
        if (due >= end)
            break;
        sleep_until_ns(due);
        if (w->fd < 0 && (w->fd = connect_to(opt)) < 0) {
            w->errors++;
            continue;
        }
        if (call(w, buf, sizeof buf, req, (size_t)req_len) < 0) {
            w->errors++;
            close(w->fd);
            w->fd = -1;
            continue;
        }
        if (due >= window_start && w->n < w->cap)
            w->latency_ms[w->n++] = (now_ns() - due) / 1e6;
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int usage(void)
{
    fprintf(stderr, "usage: rpc_threads --port P --threads N --rate R --duration S "
                    "[--warmup S] [--host 127.0.0.1] [--path /small.txt]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct options opt = {.host = "127.0.0.1", .path = "/small.txt", .threads = 100};
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},     {"port", required_argument, 0, 'p'},
        {"threads", required_argument, 0, 't'},  {"rate", required_argument, 0, 'r'},
        {"duration", required_argument, 0, 'd'}, {"warmup", required_argument, 0, 'w'},
        {"path", required_argument, 0, 'P'},     {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 't': opt.threads = atoi(optarg); break;
        case 'r': opt.rate = atof(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'P': opt.path = optarg; break;
        default: return usage();
        }
    }
    if (opt.port <= 0 || opt.threads <= 0 || opt.rate <= 0 || opt.duration <= 0 || opt.warmup < 0)
        return usage();

    int rc = 1, started = 0;
    size_t cap = (size_t)(opt.duration * opt.rate / opt.threads) + 2;
    struct worker *workers = calloc((size_t)opt.threads, sizeof *workers);
    double *all = calloc((size_t)opt.threads * cap, sizeof *all);
    pthread_attr_t attr;
    if (!workers || !all || pthread_attr_init(&attr) != 0) {
        perror("rpc_threads: memory");
        goto out;
    }
    for (int t = 0; t < opt.threads; t++)
        workers[t] = (struct worker){
            .opt = &opt, .index = t, .fd = -1, .latency_ms = all + (size_t)t * cap, .cap = cap};
    if (pthread_attr_setstacksize(&attr, THREAD_STACK) != 0)
        goto out_attr;
    /* Every connection opens before the schedule starts, as loadgen's do. */
    for (int t = 0; t < opt.threads; t++) {
        struct worker *w = &workers[t];
        if ((w->fd = connect_to(&opt)) < 0) {
            fprintf(stderr, "rpc_threads: connect %s:%d: %s\n", opt.host, opt.port,
                    strerror(errno));
            goto out_threads;
        }
    }
    double start = now_ns() + 50e6; /* room for the threads to start */
    for (; started < opt.threads; started++) {
        workers[started].start_ns = start;
        int err = pthread_create(&workers[started].tid, &attr, run_worker, &workers[started]);
        if (err) {
            fprintf(stderr, "rpc_threads: thread %d: %s\n", started, strerror(err));
            break;
        }
    }
    rc = started == opt.threads ? 0 : 1;
out_threads:
    for (int t = 0; t < started; t++)
        pthread_join(workers[t].tid, NULL);
    if (rc == 0) {
        size_t n = 0;
        long errors = 0;
        for (int t = 0; t < opt.threads; t++) {
            memmove(all + n, workers[t].latency_ms, workers[t].n * sizeof *all);
            n += workers[t].n;
            errors += workers[t].errors;
        }
        qsort(all, n, sizeof *all, cmp_double);
        double p50 = n ? all[n / 2] : -1, p99 = n ? all[(size_t)((double)n * 0.99)] : -1;
        printf("{\"threads\": %d, \"calls\": %zu, \"achieved_rps\": %.1f, \"p50_ms\": %.3f, "
               "\"p99_ms\": %.3f, \"errors\": %ld}\n",
               opt.threads, n, (double)n / opt.duration, p50, p99, errors);
    }
out_attr:
    for (int t = 0; t < opt.threads; t++)
        if (workers[t].fd >= 0)
            close(workers[t].fd);
    pthread_attr_destroy(&attr);
out:
    free(all);
    free(workers);
    return rc;
}
