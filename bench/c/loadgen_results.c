/* loadgen_results.c - the latency histogram and the counters of a loadgen run: percentiles,
 * the JSON line, the --hist-out file and --merge (see loadgen.c for what each figure means).
 */
#include "loadgen_results.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names in the JSON line and the histogram file, in enum order. */
static const char *const counter_name[C_COUNT] = {
    "requests",      "window_answers",
    "sent",          "unsent",
    "late_sends",    "conn_waits",
    "reconnects",    "idle_closed",
    "1xx",           "2xx",
    "3xx",           "4xx",
    "5xx",           "connect",
    "read",          "write",
    "timeout",       "closed",
    "parse",         "setup_connect_failed",
    "setup_closed",  "primed",
    "half1_answers", "half2_answers",
    "half1_sum_ns",  "half2_sum_ns",
    "half1_n",       "half2_n",
    "late_in_batch", "big_batches",
};

/* Values below 2 * HIST_SUB map to themselves; above, 128 buckets per power of two. */
unsigned hist_index(uint64_t v)
{
    if (v >= (1ull << HIST_MAX_BITS))
        v = (1ull << HIST_MAX_BITS) - 1;
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
    return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

static uint64_t hist_bucket_mid(unsigned idx)
{
    if (idx < 2 * HIST_SUB)
        return idx;
    unsigned shift = idx / HIST_SUB - 1;
    uint64_t low = (uint64_t)(HIST_SUB + idx % HIST_SUB) << shift;
    return low + (1ull << shift) / 2;
}

void hist_record(struct hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->total++;
    h->sum_ns += v;
    if (v > h->max_ns)
        h->max_ns = v;
}

/* The value at or below which pct percent of the samples lie (0 if there are none). */
uint64_t hist_percentile(const struct hist *h, double pct)
{
    if (h->total == 0)
        return 0;
    if (pct >= 100)
        return h->max_ns;
    uint64_t rank = (uint64_t)ceil(pct / 100.0 * (double)h->total);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_mid(i);
            return v > h->max_ns ? h->max_ns : v;
        }
    }
    return h->max_ns;
}

static uint64_t errors_total(const struct results *r)
{
    uint64_t sum = 0;
    for (int i = C_E_CONNECT; i <= C_E_PARSE; i++)
        sum += r->n[i];
    return sum;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* The window's two halves compared: steady when the second half's answers are within
 * STEADY_ANSWERS of the first's (plus 2 sqrt(n), the noise of Poisson arrivals and the
 * +-1 of a few) and its mean latency at most STEADY_LATENCY times the
 * first's plus STEADY_SLACK_MS (a server past its knee falls further behind as it goes). */
#define STEADY_ANSWERS 0.05
#define STEADY_LATENCY 2.0
#define STEADY_SLACK_MS 1.0

struct steady results_steady(const struct results *r)
{
    struct steady st = {.ok = true};
    const uint64_t n[2] = {r->n[C_HALF1_N], r->n[C_HALF2_N]};
    const uint64_t sum[2] = {r->n[C_HALF1_SUM_NS], r->n[C_HALF2_SUM_NS]};
    for (int i = 0; i < 2; i++)
        st.mean_ms[i] = n[i] ? ms(sum[i] / n[i]) : 0.0;
    double a = (double)r->n[C_HALF1_ANSWERS], b = (double)r->n[C_HALF2_ANSWERS];
    double most = a > b ? a : b;
    if (fabs(a - b) > STEADY_ANSWERS * most + 2 * sqrt(a + b))
        st.ok = false;
    if (st.mean_ms[1] > STEADY_LATENCY * st.mean_ms[0] + STEADY_SLACK_MS)
        st.ok = false;
    return st;
}

void results_print_json(const struct results *r)
{
    const struct hist *h = &r->hist;
    double sent = (double)r->n[C_SENT];
    printf(
        "{\"offered_rps\":%.1f,\"achieved_rps\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
        "\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,\"mean_ms\":%.3f,\"errors\":%" PRIu64 ","
        "\"behind_ms\":%.3f,\"client_cpu\":%.3f,\"client_bound\":%s,\"conns\":%" PRIu64 ","
        "\"duration_s\":%.3f,\"late_fraction\":%.5f,\"instances\":%" PRIu64,
        r->offered_rps, (double)r->n[C_WINDOW_ANSWERS] / r->duration_s, ms(hist_percentile(h, 50)),
        ms(hist_percentile(h, 90)), ms(hist_percentile(h, 99)), ms(hist_percentile(h, 99.9)),
        ms(h->max_ns), h->total ? ms(h->sum_ns / h->total) : 0.0, errors_total(r),
        ms((uint64_t)r->max_lag_ns), r->client_cpu, r->client_bound ? "true" : "false", r->conns,
        r->duration_s, sent > 0 ? (double)r->n[C_LATE] / sent : 0.0, r->instances);
    for (int i = C_REQUESTS; i <= C_IDLE_CLOSED; i++)
        printf(",\"%s\":%" PRIu64, counter_name[i], r->n[i]);
    printf(",\"setup_connect_failed\":%" PRIu64 ",\"setup_closed\":%" PRIu64 ",\"primed\":%" PRIu64,
           r->n[C_SETUP_FAILED], r->n[C_SETUP_CLOSED], r->n[C_PRIMED]);
    printf(",\"late_p99_ms\":%.3f,\"late_p999_ms\":%.3f,\"late_in_batch\":%" PRIu64
           ",\"big_batches\":%" PRIu64,
           ms(hist_percentile(&r->lateness, 99)), ms(hist_percentile(&r->lateness, 99.9)),
           r->n[C_LATE_IN_BATCH], r->n[C_BIG_BATCHES]);
    struct steady st = results_steady(r);
    printf(",\"steady\":{\"answers\":[%" PRIu64 ",%" PRIu64 "],\"mean_ms\":[%.3f,%.3f],"
           "\"ok\":%s}",
           r->n[C_HALF1_ANSWERS], r->n[C_HALF2_ANSWERS], st.mean_ms[0], st.mean_ms[1],
           st.ok ? "true" : "false");
    printf(",\"statuses\":{");
    for (int i = C_S1XX; i <= C_S5XX; i++)
        printf("%s\"%s\":%" PRIu64, i == C_S1XX ? "" : ",", counter_name[i], r->n[i]);
    printf("},\"errors_by_kind\":{");
    for (int i = C_E_CONNECT; i <= C_E_PARSE; i++)
        printf("%s\"%s\":%" PRIu64, i == C_E_CONNECT ? "" : ",", counter_name[i], r->n[i]);
    printf("}}\n");
}

void results_print_summary(const struct results *r)
{
    const struct hist *h = &r->hist;
    printf("loadgen: %.0f req/s offered, %.0f achieved over %.2f s on %" PRIu64
           " connections; %" PRIu64 " errors, %" PRIu64 " unsent\n",
           r->offered_rps, (double)r->n[C_WINDOW_ANSWERS] / r->duration_s, r->duration_s, r->conns,
           errors_total(r), r->n[C_UNSENT]);
    printf("latency ms (from scheduled time): p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  "
           "max %.3f\n",
           ms(hist_percentile(h, 50)), ms(hist_percentile(h, 90)), ms(hist_percentile(h, 99)),
           ms(hist_percentile(h, 99.9)), ms(h->max_ns));
    printf("client: %.0f%% of a core, %" PRIu64 " late sends, behind by up to %.3f ms, %" PRIu64
           " waited for a connection, lateness p99.9 %.3f ms%s\n",
           100 * r->client_cpu, r->n[C_LATE], ms((uint64_t)r->max_lag_ns), r->n[C_CONN_WAITS],
           ms(hist_percentile(&r->lateness, 99.9)),
           r->client_bound ? "; CLIENT-BOUND: this run measured the client" : "");
    struct steady st = results_steady(r);
    printf("steady state: %" PRIu64 " then %" PRIu64 " answers, mean latency %.3f then %.3f ms "
           "over the window's two halves%s\n",
           r->n[C_HALF1_ANSWERS], r->n[C_HALF2_ANSWERS], st.mean_ms[0], st.mean_ms[1],
           st.ok ? "" : "; NOT STEADY");
}

/* The histogram file: "key value" lines, then "bucket INDEX COUNT" for each non-empty one. */
int results_write(const struct results *r, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "loadgen-histogram 1 sub_bits %d unit ns\n", HIST_SUB_BITS);
    fprintf(f, "offered_rps %.6f\nduration_s %.6f\nclient_cpu %.6f\nmax_lag_ns %" PRId64 "\n",
            r->offered_rps, r->duration_s, r->client_cpu, r->max_lag_ns);
    fprintf(f, "conns %" PRIu64 "\ninstances %" PRIu64 "\nclient_bound %d\nmax_ns %" PRIu64 "\n",
            r->conns, r->instances, r->client_bound, r->hist.max_ns);
    fprintf(f, "sum_ns %" PRIu64 "\n", r->hist.sum_ns);
    for (int i = 0; i < C_COUNT; i++)
        fprintf(f, "%s %" PRIu64 "\n", counter_name[i], r->n[i]);
    fprintf(f, "late_max_ns %" PRIu64 "\n", r->lateness.max_ns);
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        if (r->hist.count[i])
            fprintf(f, "bucket %u %" PRIu64 "\n", i, r->hist.count[i]);
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        if (r->lateness.count[i])
            fprintf(f, "late_bucket %u %" PRIu64 "\n", i, r->lateness.count[i]);
    return fclose(f) == 0 ? 0 : -1;
}

/* Adds one histogram file into sum (see the header for what is summed and what is maxed). */
int results_merge_file(struct results *sum, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char key[64];
    int sub_bits = -1, rc = -1;
    if (fscanf(f, "loadgen-histogram 1 sub_bits %d unit ns", &sub_bits) != 1 ||
        sub_bits != HIST_SUB_BITS)
        goto out;
    while (fscanf(f, "%63s", key) == 1) {
        double v;
        uint64_t u, idx;
        bool late = !strcmp(key, "late_bucket");
        if (late || !strcmp(key, "bucket")) {
            struct hist *h = late ? &sum->lateness : &sum->hist;
            if (fscanf(f, "%" SCNu64 " %" SCNu64, &idx, &u) != 2 || idx >= HIST_BUCKETS)
                goto out;
            h->count[idx] += u;
            h->total += u;
            continue;
        }
        char value[64];
        if (fscanf(f, "%63s", value) != 1)
            goto out;
        v = strtod(value, NULL);
        u = strtoull(value, NULL, 10); /* counts stay exact past 2^53 */
        if (!strcmp(key, "offered_rps"))
            sum->offered_rps += v;
        else if (!strcmp(key, "duration_s"))
            sum->duration_s = fmax(sum->duration_s, v);
        else if (!strcmp(key, "client_cpu"))
            sum->client_cpu = fmax(sum->client_cpu, v);
        else if (!strcmp(key, "max_lag_ns"))
            sum->max_lag_ns = sum->max_lag_ns > (int64_t)v ? sum->max_lag_ns : (int64_t)v;
        else if (!strcmp(key, "conns"))
            sum->conns += u;
        else if (!strcmp(key, "instances"))
            sum->instances += u;
        else if (!strcmp(key, "client_bound"))
            sum->client_bound = sum->client_bound || u;
        else if (!strcmp(key, "sum_ns"))
            sum->hist.sum_ns += u;
        else if (!strcmp(key, "max_ns"))
            sum->hist.max_ns = sum->hist.max_ns > u ? sum->hist.max_ns : u;
        else if (!strcmp(key, "late_max_ns"))
            sum->lateness.max_ns = sum->lateness.max_ns > u ? sum->lateness.max_ns : u;
        else
            for (int i = 0; i < C_COUNT; i++)
                if (!strcmp(key, counter_name[i]))
                    sum->n[i] += u;
    }
    rc = feof(f) ? 0 : -1;
out:
    fclose(f);
    return rc;
}
