/* loadgen_results.h - what a loadgen run measures: the latency histogram and the counters,
 * printed as one JSON line, written to a file, and merged from several files (loadgen --merge).
 * No I/O but stdio; see loadgen.c for what each figure means.
 */
#ifndef LOADGEN_RESULTS_H
#define LOADGEN_RESULTS_H

#include <stdbool.h>
#include <stdint.h>

/* Log-linear, like HdrHistogram, in nanoseconds: each power of two is cut into 128 equal
 * buckets and a value is reported as its bucket's midpoint, so the relative error is at most
 * 1/256; values below 256 ns are exact, values past 2^40 ns (18 min) are clamped. */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_BITS 40
#define HIST_BUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t total;
    uint64_t max_ns;
    uint64_t sum_ns; /* for the mean */
};

enum counter {
    C_REQUESTS,       /* answers, any status, to the requests due inside the window */
    C_WINDOW_ANSWERS, /* answers that arrived inside the window, whenever due */
    C_SENT,
    C_UNSENT,
    C_LATE,
    C_CONN_WAITS,
    C_RECONNECTS,
    C_IDLE_CLOSED,
    C_S1XX,
    C_S2XX,
    C_S3XX,
    C_S4XX,
    C_S5XX,
    C_E_CONNECT,
    C_E_READ,
    C_E_WRITE,
    C_E_TIMEOUT,
    C_E_CLOSED,
    C_E_PARSE,
    C_SETUP_FAILED,
    C_SETUP_CLOSED,
    C_PRIMED,        /* connections that carried one unmeasured request before the schedule */
    C_HALF1_ANSWERS, /* answers arriving in the first half of the window */
    C_HALF2_ANSWERS, /* ... and in the second */
    C_HALF1_SUM_NS,  /* latencies of the window's answers, summed by the half they were due in */
    C_HALF2_SUM_NS,
    C_HALF1_N,
    C_HALF2_N,
    C_LATE_IN_BATCH, /* late sends made while a batch of events was still being handled */
    C_BIG_BATCHES,   /* batches of BIG_BATCH events or more, in the window */
    C_COUNT
};

struct results {
    uint64_t n[C_COUNT];
    double offered_rps;
    double duration_s;
    double client_cpu; /* fraction of one core */
    int64_t max_lag_ns;
    uint64_t conns;
    uint64_t instances;
    bool client_bound;
    struct hist hist;     /* latency from the due time; unsent requests at (window end - due) */
    struct hist lateness; /* per measured send: how long after it was due with a connection free */
};

unsigned hist_index(uint64_t v);
void hist_record(struct hist *h, uint64_t v);
/* The value at or below which pct percent of the samples lie (0 if there are none). */
uint64_t hist_percentile(const struct hist *h, double pct);

/* The window's first half against its second (see loadgen_results.c for the bounds). */
struct steady {
    double mean_ms[2];
    bool ok;
};
struct steady results_steady(const struct results *r);

void results_print_summary(const struct results *r);
/* The last line of stdout: one JSON object. */
void results_print_json(const struct results *r);
/* The --hist-out file; returns 0 or -1. */
int results_write(const struct results *r, const char *path);
/* Adds one --hist-out file into sum; returns 0, or -1 if it is not one. */
int results_merge_file(struct results *sum, const char *path);

#endif
