/*
 * costs.c - what a process, a thread and a coroutine cost, measured (make costs).
 *
 * The three ways this project gives a connection its own flow of control:
 * bin/fork's process, bin/blocking's thread, bin/coro's coroutine. For each:
 *   create:  make one and wait for its end (fork + _exit + waitpid;
 *            pthread_create + join; coro_create + resume to the end + destroy);
 *   switch:  hand control to the other one and back, divided by two (two processes
 *            or two threads bounce a byte through two pipes, so a switch includes a
 *            write and a read; coroutines resume and yield, no system call);
 *   memory:  what one costs parked (blocked in read, or suspended), from VmRSS
 *            (processes: their private pages and page tables, from /proc).
 * Everything runs pinned to one CPU, so that a switch is a real context switch
 * and not a wakeup on the other core. Each figure is the median of RUNS runs.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coro.h"

#define RUNS 7
#define CREATES 2000   /* per run */
#define SWITCHES 20000 /* round trips per run */
#define PARKED 500     /* units held at once for the memory figure */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void die(const char *what)
{
    fprintf(stderr, "costs: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- processes ------------------------------------------------------------------ */

static double process_create(void)
{
    double t0 = now_ns();
    for (int i = 0; i < CREATES; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0 || waitpid(pid, NULL, 0) < 0)
            die("fork");
    }
    return (now_ns() - t0) / CREATES;
}

/* One side of a ping-pong: reads a byte from in, writes it to out, n times. */
static void bounce(int in, int out, int n, int first)
{
    char b = 0;
    for (int i = 0; i < n; i++) {
        if (first && write(out, &b, 1) != 1)
            die("write");
        if (read(in, &b, 1) != 1)
            die("read");
        if (!first && write(out, &b, 1) != 1)
            die("write");
    }
}

static double process_switch(void)
{
    int ab[2], ba[2];
    if (pipe(ab) < 0 || pipe(ba) < 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        bounce(ab[0], ba[1], SWITCHES, 0);
        _exit(0);
    }
    double t0 = now_ns();
    bounce(ba[0], ab[1], SWITCHES, 1);
    double ns = (now_ns() - t0) / SWITCHES / 2;
    waitpid(pid, NULL, 0);
    close(ab[0]), close(ab[1]), close(ba[0]), close(ba[1]);
    return ns;
}

/* A field of /proc/PID/status or smaps_rollup, in KiB (0 if absent). */
static long proc_kib(pid_t pid, const char *file, const char *field)
{
    char path[64], line[256];
    long kib = 0;
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, len) && line[len] == ':')
            kib = strtol(line + len + 1, NULL, 10);
    fclose(f);
    return kib;
}

/* Private pages and page tables of PARKED children blocked in read(), per child. */
static double process_memory(void)
{
    pid_t kids[PARKED];
    int gate[2];
    if (pipe(gate) < 0)
        die("pipe");
    for (int i = 0; i < PARKED; i++) {
        kids[i] = fork();
        if (kids[i] < 0)
            die("fork");
        if (kids[i] == 0) {
            char b;
            close(gate[1]);
            _exit(read(gate[0], &b, 1) < 0);
        }
    }
    usleep(100000); /* let the last children reach their read() */
    long kib = 0;
    for (int i = 0; i < PARKED; i++)
        kib += proc_kib(kids[i], "smaps_rollup", "Private_Clean") +
               proc_kib(kids[i], "smaps_rollup", "Private_Dirty") +
               proc_kib(kids[i], "status", "VmPTE");
    close(gate[1]); /* EOF: every child returns from read() and exits */
    for (int i = 0; i < PARKED; i++)
        waitpid(kids[i], NULL, 0);
    close(gate[0]);
    return (double)kib / PARKED;
}

/* ---- threads -------------------------------------------------------------------- */

static void *nothing(void *arg)
{
    return arg;
}

static double thread_create(void)
{
    double t0 = now_ns();
    for (int i = 0; i < CREATES; i++) {
        pthread_t t;
        if ((errno = pthread_create(&t, NULL, nothing, NULL)) != 0)
            die("pthread_create");
        pthread_join(t, NULL);
    }
    return (now_ns() - t0) / CREATES;
}

struct pipes {
    int in, out;
};

static void *bounce_thread(void *arg)
{
    struct pipes *p = arg;
    bounce(p->in, p->out, SWITCHES, 0);
    return NULL;
}

static double thread_switch(void)
{
    int ab[2], ba[2];
    pthread_t t;
    if (pipe(ab) < 0 || pipe(ba) < 0)
        die("pipe");
    struct pipes other = {ab[0], ba[1]};
    if ((errno = pthread_create(&t, NULL, bounce_thread, &other)) != 0)
        die("pthread_create");
    double t0 = now_ns();
    bounce(ba[0], ab[1], SWITCHES, 1);
    double ns = (now_ns() - t0) / SWITCHES / 2;
    pthread_join(t, NULL);
    close(ab[0]), close(ab[1]), close(ba[0]), close(ba[1]);
    return ns;
}

static long self_rss_kib(void)
{
    return proc_kib(getpid(), "status", "VmRSS");
}

static void *park(void *arg)
{
    char b;
    return (void *)(long)read(*(int *)arg, &b, 1);
}

/* VmRSS growth per thread, PARKED threads with default attributes blocked in read(). */
static double thread_memory(size_t *reserved_kib)
{
    pthread_t t[PARKED];
    pthread_attr_t attr;
    size_t stack;
    int gate[2];
    if (pipe(gate) < 0)
        die("pipe");
    pthread_attr_init(&attr);
    pthread_attr_getstacksize(&attr, &stack);
    *reserved_kib = stack / 1024;
    long before = self_rss_kib();
    for (int i = 0; i < PARKED; i++)
        if ((errno = pthread_create(&t[i], NULL, park, &gate[0])) != 0)
            die("pthread_create");
    usleep(100000);
    long after = self_rss_kib();
    close(gate[1]);
    for (int i = 0; i < PARKED; i++)
        pthread_join(t[i], NULL);
    close(gate[0]);
    pthread_attr_destroy(&attr);
    return (double)(after - before) / PARKED;
}

/* ---- coroutines ----------------------------------------------------------------- */

/* Yields until it has been resumed SWITCHES times, then ends. */
static void yield_back(void *arg)
{
    long *n = arg;
    while (++*n < SWITCHES)
        coro_yield();
}

static void once(void *arg)
{
    (void)arg;
}

static double coro_create_cost(unsigned keep)
{
    struct coro_pool pool;
    coro_pool_init(&pool, CORO_STACK_SIZE, keep);
    double t0 = now_ns();
    for (int i = 0; i < CREATES; i++) {
        struct coro *co = coro_create(&pool, once, NULL);
        if (!co)
            die("coro_create");
        coro_resume(co);
        coro_destroy(co);
    }
    double ns = (now_ns() - t0) / CREATES;
    coro_pool_drain(&pool);
    return ns;
}

static double coro_switch(void)
{
    struct coro_pool pool;
    long n = 0;
    coro_pool_init(&pool, CORO_STACK_SIZE, 1);
    struct coro *co = coro_create(&pool, yield_back, &n);
    if (!co)
        die("coro_create");
    double t0 = now_ns();
    for (int i = 0; i < SWITCHES; i++)
        coro_resume(co);
    double ns = (now_ns() - t0) / SWITCHES / 2;
    if (n != SWITCHES)
        die("coro_switch lost a resume");
    coro_destroy(co);
    coro_pool_drain(&pool);
    return ns;
}

static void yield_once(void *arg)
{
    char frame[512]; /* about what a handler's locals take */
    memset(frame, 1, sizeof frame);
    (void)arg;
    coro_yield();
}

static double coro_memory(void)
{
    struct coro_pool pool;
    struct coro *co[PARKED];
    coro_pool_init(&pool, CORO_STACK_SIZE, 0);
    long before = self_rss_kib();
    for (int i = 0; i < PARKED; i++) {
        if (!(co[i] = coro_create(&pool, yield_once, NULL)))
            die("coro_create");
        coro_resume(co[i]);
    }
    long after = self_rss_kib();
    for (int i = 0; i < PARKED; i++) {
        coro_resume(co[i]);
        coro_destroy(co[i]);
    }
    return (double)(after - before) / PARKED;
}

/* -------------------------------------------------------------------------------- */

typedef double measure_fn(void);

static double med(measure_fn *fn)
{
    double v[RUNS];
    for (int i = 0; i < RUNS; i++)
        v[i] = fn();
    return median(v, RUNS);
}

static double coro_fresh(void)
{
    return coro_create_cost(0);
}

static double coro_pooled(void)
{
    return coro_create_cost(1);
}

static size_t thread_reserved_kib;

static double thread_mem(void)
{
    return thread_memory(&thread_reserved_kib);
}

int main(void)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    if (sched_setaffinity(0, sizeof one, &one) < 0)
        die("sched_setaffinity");

    double pc = med(process_create), ps = med(process_switch), pm = med(process_memory);
    double tc = med(thread_create), ts = med(thread_switch), tm = med(thread_mem);
    double cf = med(coro_fresh), cp = med(coro_pooled), cs = med(coro_switch);
    double cm = med(coro_memory);

    printf("costs: medians of %d runs, pinned to one CPU\n\n", RUNS);
    printf("%-30s %14s %14s %14s\n", "", "process", "thread", "coroutine");
    printf("%-30s %14s %14s %14s\n", "", "(fork)", "(pthread)", "(common/coro)");
    printf("%-30s %11.1f us %11.1f us %11.2f us\n", "create + wait for its end", pc / 1e3,
           tc / 1e3, cf / 1e3);
    printf("%-30s %14s %14s %11.2f us\n", "  same, stack from the pool", "", "", cp / 1e3);
    printf("%-30s %11.2f us %11.2f us %11.1f ns\n", "switch, one way", ps / 1e3, ts / 1e3, cs);
    printf("%-30s %10.0f KiB %10.0f KiB %10.0f KiB\n", "memory, one parked", pm, tm, cm);
    printf("%-30s %14s %10zu KiB %10d KiB\n", "  stack reserved", "", thread_reserved_kib,
           CORO_STACK_SIZE / 1024);
    printf("\ncreate: fork+_exit+waitpid; pthread_create+join (default attributes);\n"
           "        coro_create+resume to its end+destroy (fresh: mmap+mprotect+munmap)\n"
           "switch: half a round trip; processes and threads pass a byte through two\n"
           "        pipes (so a write and a read each way), coroutines resume+yield\n"
           "memory: %d at once; processes blocked in read() (private pages + page\n"
           "        tables); threads blocked in read(), coroutines suspended (VmRSS\n"
           "        growth): stack pages touched, not reserved; kernel stacks not counted\n",
           PARKED);
    return 0;
}
