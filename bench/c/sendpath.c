/* sendpath.c - how a file body should leave an io_uring server, measured: the CPU that
 * each way of sending costs per MiB, at each body size, over loopback TCP.
 *
 *   sendpath --size BYTES --mib M --round R [--dir DIR] METHOD...
 *
 * METHOD is one of
 *   splice    file -> pipe -> socket, two linked splices per pipeful (what bin/uring does
 *             with a body too big for the file cache's memory);
 *   send      SEND from memory (the body in the cache's memory: one copy into the socket,
 *             as bin/uring does with a small file's head and body);
 *   zc        SEND_ZC from the same memory: the socket takes the pages, and the kernel
 *             posts a second completion when it no longer needs them;
 *   zc-fixed  SEND_ZC from the same memory registered with the ring (a registered
 *             buffer: its pages are pinned once, not per send);
 *   map-send  SEND from the file mapped (mmap, MAP_POPULATE): the page cache's own pages,
 *             no copy of the file in memory;
 *   map-zc    SEND_ZC from the file mapped.
 * Every method runs in turn, once, on one connection over 127.0.0.1, one body in flight at a
 * time (as the server sends on one connection). The sender is this process, on CPU 0; the
 * sink is a child on CPU 1 that reads into one buffer and drops the bytes, as a client does.
 *
 * For each method, one CSV row on stdout:
 *     method,size,round,mib,sender_us_per_mib,sink_us_per_mib,wall_s
 * The CPU of both processes is read at the two edges of the transfer (this process's from
 * CLOCK_PROCESS_CPUTIME_ID, which counts the io_uring worker threads a splice runs on, once
 * SEND_ZC's last notification is in; the sink's from /proc/PID/schedstat, once it has read
 * every byte). On loopback the
 * receiving side's TCP work runs in the sender's context, so the sum is the fair figure.
 * bench/sendpath.py runs the rounds and gives medians, intervals and ratios.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PIPE_SIZE (256 * 1024) /* a pipe of 64 pages, as bin/uring had before it mapped files */
#define SINK_BUF 65536         /* what bench/loadgen reads at a time */
#define MIB (1024.0 * 1024.0)

struct sender {
    struct io_uring ring;
    int sock, file_fd, pipe_rd, pipe_wr;
    size_t pipe_cap;
    char *mem; /* the body, in memory, registered as buffer 0 */
    char *map; /* the file, mapped */
    size_t size;
    unsigned notifs; /* SEND_ZC notifications still due */
};

static int fail(const char *what, int err)
{
    fprintf(stderr, "sendpath: %s: %s\n", what, strerror(err));
    return -1;
}

/* Submits what is queued and waits for the completion of user_data 1 (others are counted:
 * SEND_ZC notifications). Its result, or a negative errno. */
static int wait_for(struct sender *t)
{
    for (;;) {
        int e = io_uring_submit_and_wait(&t->ring, 1);
        if (e < 0 && e != -EINTR)
            return e;
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        int res = 0;
        bool done = false;
        io_uring_for_each_cqe(&t->ring, head, cqe)
        {
            n++;
            if (cqe->flags & IORING_CQE_F_NOTIF)
                t->notifs--;
            else if (cqe->user_data == 1) {
                res = cqe->res;
                done = true;
                if (cqe->flags & IORING_CQE_F_MORE) /* a SEND_ZC: its notification follows */
                    t->notifs++;
            }
        }
        io_uring_cq_advance(&t->ring, n);
        if (done)
            return res;
    }
}

/* Waits until the socket has room again (a full socket fails a splice with EAGAIN). */
static int wait_room(struct sender *t)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
    io_uring_prep_poll_add(sqe, t->sock, POLLOUT);
    io_uring_sqe_set_data64(sqe, 1);
    int r = wait_for(t);
    return r < 0 ? r : 0;
}

/* One body from memory: SEND or SEND_ZC of all of it, MSG_WAITALL (the kernel finishes a
 * partial send itself), as bin/uring sends a cached body. */
static int send_memory(struct sender *t, const char *body, bool zc, bool fixed)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
    if (zc && fixed)
        io_uring_prep_send_zc_fixed(sqe, t->sock, body, t->size, MSG_WAITALL, 0, 0);
    else if (zc)
        io_uring_prep_send_zc(sqe, t->sock, body, t->size, MSG_WAITALL, 0);
    else
        io_uring_prep_send(sqe, t->sock, body, t->size, MSG_WAITALL);
    io_uring_sqe_set_data64(sqe, 1);
    int r = wait_for(t);
    return r == (int)t->size ? 0 : r < 0 ? r : -EIO;
}

/* One body from the file: a splice into the pipe linked to a splice out of it, per
 * pipeful; what the socket did not take waits in the pipe for room (bin/uring's
 * uring_send_file() and uring_on_splice_out()). */
static int send_splice(struct sender *t)
{
    size_t off = 0, in_pipe = 0;
    while (off < t->size || in_pipe > 0) {
        struct io_uring_sqe *sqe;
        if (in_pipe == 0) {
            size_t len = t->size - off < t->pipe_cap ? t->size - off : t->pipe_cap;
            sqe = io_uring_get_sqe(&t->ring);
            io_uring_prep_splice(sqe, t->file_fd, (int64_t)off, t->pipe_wr, -1, (unsigned)len, 0);
            sqe->flags |= IOSQE_IO_LINK;
            io_uring_sqe_set_data64(sqe, 2);
            in_pipe = len; /* a page-cache file fills it whole, or the link fails below */
            off += len;
        }
        sqe = io_uring_get_sqe(&t->ring);
        io_uring_prep_splice(sqe, t->pipe_rd, -1, t->sock, -1, (unsigned)in_pipe, 0);
        io_uring_sqe_set_data64(sqe, 1);
        int r = wait_for(t);
        if (r == -ECANCELED)
            return -EIO; /* the splice into the pipe came up short */
        if (r > 0)
            in_pipe -= (size_t)r;
        else if (r != -EAGAIN)
            return r < 0 ? r : -EIO;
        if (in_pipe > 0 && (r = wait_room(t)) < 0)
            return r;
    }
    return 0;
}

static uint64_t process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t schedstat_ns(pid_t pid)
{
    char path[64];
    unsigned long long ns = 0;
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%llu", &ns) != 1)
            ns = 0;
        fclose(f);
    }
    return ns;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pin(size_t cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)sched_setaffinity(0, sizeof set, &set); /* one core only: then both share it */
}

/* The sink: reads until the end, counting what it read where the sender sees it. */
static void sink(int port, _Atomic uint64_t *received)
{
    pin(1);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char *buf = malloc(SINK_BUF);
    if (fd < 0 || !buf || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        _exit(1);
    ssize_t n;
    while ((n = recv(fd, buf, SINK_BUF, 0)) > 0)
        atomic_fetch_add(received, (uint64_t)n);
    _exit(n == 0 ? 0 : 1);
}

/* The connection: a listener on an ephemeral port, the sink connecting, the accepted
 * socket nonblocking (as the server's are). */
static int connect_sink(pid_t *pid, _Atomic uint64_t *received)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) < 0)
        return fail("listen", errno);
    if ((*pid = fork()) == 0)
        sink(ntohs(sa.sin_port), received);
    int fd = *pid < 0 ? -1 : accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int err = errno;
    close(lfd);
    return fd < 0 ? fail("accept", err) : fd;
}

/* A file of size random-ish bytes in dir, read once so that it is in the page cache, and
 * its copy in memory. */
static int make_body(struct sender *t, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/sendpath.XXXXXX", dir);
    t->file_fd = mkstemp(path);
    if (t->file_fd < 0)
        return fail(path, errno);
    unlink(path);
    t->mem = mmap(NULL, t->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t->mem == MAP_FAILED)
        return fail("mmap", errno);
    for (size_t i = 0; i < t->size; i++)
        t->mem[i] = (char)('a' + (i * 7919) % 26);
    for (size_t off = 0; off < t->size;) {
        ssize_t n = pwrite(t->file_fd, t->mem + off, t->size - off, (off_t)off);
        if (n <= 0)
            return fail("write", errno);
        off += (size_t)n;
    }
    t->map = mmap(NULL, t->size, PROT_READ, MAP_SHARED | MAP_POPULATE, t->file_fd, 0);
    if (t->map == MAP_FAILED)
        return fail("mmap of the file", errno);
    return 0;
}

static int setup(struct sender *t, const char *dir)
{
    int fds[2], e;
    if (make_body(t, dir) < 0)
        return -1;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return fail("pipe", errno);
    t->pipe_rd = fds[0];
    t->pipe_wr = fds[1];
    fcntl(t->pipe_rd, F_SETPIPE_SZ, PIPE_SIZE);
    int cap = fcntl(t->pipe_rd, F_GETPIPE_SZ);
    t->pipe_cap = cap > 0 ? (size_t)cap : 65536;
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    if ((e = io_uring_queue_init_params(64, &t->ring, &p)) < 0)
        return fail("io_uring_queue_init", -e);
    struct iovec iov = {.iov_base = t->mem, .iov_len = t->size};
    if ((e = io_uring_register_buffers(&t->ring, &iov, 1)) < 0)
        return fail("io_uring_register_buffers", -e);
    return 0;
}

static int send_one(struct sender *t, const char *method)
{
    if (!strcmp(method, "splice"))
        return send_splice(t);
    if (!strcmp(method, "send"))
        return send_memory(t, t->mem, false, false);
    if (!strcmp(method, "zc"))
        return send_memory(t, t->mem, true, false);
    if (!strcmp(method, "zc-fixed"))
        return send_memory(t, t->mem, true, true);
    if (!strcmp(method, "map-send"))
        return send_memory(t, t->map, false, false);
    return send_memory(t, t->map, true, false); /* map-zc */
}

static bool is_method(const char *m)
{
    static const char *const methods[] = {"splice", "send", "zc", "zc-fixed", "map-send", "map-zc"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (!strcmp(m, methods[i]))
            return true;
    return false;
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp";
    double mib = 256;
    int round = 0, i = 1;
    struct sender t = {.sock = -1, .file_fd = -1};
    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        if (!strcmp(argv[i], "--size"))
            t.size = strtoul(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--mib"))
            mib = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--round"))
            round = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else
            break;
    }
    for (int m = i; m < argc; m++)
        if (!is_method(argv[m]))
            i = argc; /* an unknown method: usage */
    if (t.size == 0 || mib <= 0 || i >= argc) {
        fprintf(stderr, "usage: sendpath --size BYTES [--mib M] [--round R] [--dir DIR] "
                        "splice|send|zc|zc-fixed|map-send|map-zc...\n");
        return 2;
    }
    _Atomic uint64_t *received =
        mmap(NULL, sizeof *received, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (received == MAP_FAILED) {
        fail("mmap", errno);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    pin(0);
    pid_t pid = -1;
    int rc = 1;
    if (setup(&t, dir) < 0 || (t.sock = connect_sink(&pid, received)) < 0)
        goto out;
    uint64_t bodies = (uint64_t)(mib * MIB / (double)t.size);
    if (bodies == 0)
        bodies = 1;
    uint64_t sent = 0;
    for (int m = i; m < argc; m++) {
        double w0 = wall_s();
        uint64_t s0 = process_cpu_ns(), k0 = schedstat_ns(pid);
        for (uint64_t b = 0; b < bodies; b++) {
            int r = send_one(&t, argv[m]);
            if (r < 0) {
                fail(argv[m], -r);
                goto out;
            }
        }
        sent += bodies * t.size;
        while (t.notifs > 0) { /* SEND_ZC: the last pages given back; this waits, asleep */
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&t.ring, &cqe) < 0)
                break;
            if (cqe->flags & IORING_CQE_F_NOTIF)
                t.notifs--;
            io_uring_cqe_seen(&t.ring, cqe);
        }
        uint64_t s1 = process_cpu_ns(); /* before the wait below, which is not the sender's */
        struct timespec nap = {.tv_nsec = 50000};
        while (atomic_load(received) < sent) /* the sink's last reads */
            nanosleep(&nap, NULL);
        uint64_t k1 = schedstat_ns(pid);
        double w1 = wall_s(), moved = (double)(bodies * t.size) / MIB;
        printf("%s,%zu,%d,%.1f,%.1f,%.1f,%.4f\n", argv[m], t.size, round, moved,
               (double)(s1 - s0) / 1e3 / moved, (double)(k1 - k0) / 1e3 / moved, w1 - w0);
        fflush(stdout);
    }
    rc = 0;
out:
    if (t.sock >= 0)
        close(t.sock); /* the sink reads the end and exits */
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return rc;
}
