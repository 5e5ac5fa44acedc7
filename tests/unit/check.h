/*
 * check.h - the unit tests' whole framework: checks that count, and one closing line.
 *
 * Each CHECK* macro evaluates its arguments once, records a pass or a failure
 * (printing file:line, the expression and, where it helps, both values), and
 * yields true if it passed. It never returns or jumps on its own; a case that
 * cannot go on after a failed check says so itself:
 *
 *     if (!CHECK(fd >= 0))
 *         return;
 *
 * A test's main() runs its cases and ends with `return check_report();`, which
 * prints "N passed, M failed" as the last line (tests/run.sh sums those lines)
 * and gives the exit status: 0 only if nothing failed.
 */
#ifndef C10K_TEST_CHECK_H
#define C10K_TEST_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;
static const char *check_case_name = "";

/* Names the case that the next failures belong to (printed with them). */
static inline void check_case(const char *name)
{
    check_case_name = name;
}

static inline bool check_record(bool ok, const char *file, int line, const char *what)
{
    if (ok) {
        check_passed++;
    } else {
        check_failed++;
        fprintf(stderr, "FAIL %s:%d: %s: %s\n", file, line, check_case_name, what);
    }
    return ok;
}

static inline bool check_eq_int(long long got, long long want, const char *file, int line,
                                const char *got_expr, const char *want_expr)
{
    bool ok = got == want;
    if (!check_record(ok, file, line, got_expr))
        fprintf(stderr, "     got %lld (%s), want %lld (%s)\n", got, got_expr, want, want_expr);
    return ok;
}

/* Compares got[0, got_len) with the C string want; got may be NULL (a missing slice). */
static inline bool check_eq_mem(const char *got, size_t got_len, const char *want, const char *file,
                                int line, const char *got_expr)
{
    bool ok = got && got_len == strlen(want) && !memcmp(got, want, got_len);
    if (!check_record(ok, file, line, got_expr)) {
        if (got)
            fprintf(stderr, "     got \"%.*s\" (%zu bytes), want \"%s\"\n", (int)got_len, got,
                    got_len, want);
        else
            fprintf(stderr, "     got NULL, want \"%s\"\n", want);
    }
    return ok;
}

/* Compares the C string got (NULL allowed) with want. */
static inline bool check_eq_mem_str(const char *got, const char *want, const char *file, int line,
                                    const char *got_expr)
{
    return check_eq_mem(got, got ? strlen(got) : 0, want, file, line, got_expr);
}

/* Records whether cond holds. */
#define CHECK(cond) check_record((cond), __FILE__, __LINE__, #cond)

/* Records whether two integers are equal (compared as long long). */
#define CHECK_EQ_INT(got, want)                                                                    \
    check_eq_int((long long)(got), (long long)(want), __FILE__, __LINE__, #got, #want)

/* Records whether the C string got equals want. */
#define CHECK_STR(got, want) check_eq_mem_str((got), (want), __FILE__, __LINE__, #got)

/* Records whether the bytes got[0, len) equal the C string want. */
#define CHECK_MEM(got, len, want) check_eq_mem((got), (len), (want), __FILE__, __LINE__, #got)

/* Prints the closing line and returns the exit status. */
static inline int check_report(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    fflush(stdout);
    return check_failed == 0 ? 0 : 1;
}

#endif
