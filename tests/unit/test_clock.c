/* test_clock.c - HTTP dates: formatting, the three formats RFC 9110 accepts, the Date cache. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "clock.h"

/* RFC 9110 section 5.6.7's example, 784111777, in its three formats. */
#define IMF_FIXDATE "Sun, 06 Nov 1994 08:49:37 GMT"
#define RFC850_DATE "Sunday, 06-Nov-94 08:49:37 GMT"
#define ASCTIME_DATE "Sun Nov  6 08:49:37 1994"

static void format_is(time_t t, const char *want)
{
    char out[HTTP_DATE_LEN + 1];
    memset(out, 'x', sizeof out);
    clock_format_http_date(t, out);
    CHECK_STR(out, want); /* also checks it is NUL-terminated at HTTP_DATE_LEN */
}

/* Parses s; returns the time, or -2 (never a valid answer here) if it failed. */
static time_t parsed(const char *s)
{
    time_t t = -2;
    if (clock_parse_http_date(s, strlen(s), &t) != 0)
        return -2;
    return t;
}

static void format_known_timestamps(void)
{
    format_is(0, "Thu, 01 Jan 1970 00:00:00 GMT");
    format_is(784111777, IMF_FIXDATE);
    format_is(951782400, "Tue, 29 Feb 2000 00:00:00 GMT");  /* a leap day, century rule */
    format_is(1709251199, "Thu, 29 Feb 2024 23:59:59 GMT"); /* a leap day's last second */
    format_is(1709251200, "Fri, 01 Mar 2024 00:00:00 GMT");
    format_is(4102444799, "Thu, 31 Dec 2099 23:59:59 GMT");
}

static void parse_the_three_formats_of_rfc9110(void)
{
    CHECK_EQ_INT(parsed(IMF_FIXDATE), 784111777);
    CHECK_EQ_INT(parsed(RFC850_DATE), 784111777);
    CHECK_EQ_INT(parsed(ASCTIME_DATE), 784111777);
    CHECK_EQ_INT(parsed("Thu Feb 29 23:59:59 2024"), 1709251199); /* asctime, two-digit day */
}

/* RFC 9110 5.6.7: a two-digit year more than 50 years ahead is in the past century. */
static void rfc850_year_is_within_50_years(void)
{
    CHECK_EQ_INT(clock_rfc850_year(94, 2026), 1994);
    CHECK_EQ_INT(clock_rfc850_year(70, 2026), 2070);
    CHECK_EQ_INT(clock_rfc850_year(76, 2026), 2076); /* 50 years ahead: not more */
    CHECK_EQ_INT(clock_rfc850_year(77, 2026), 1977); /* 51 years ahead: the past */
    CHECK_EQ_INT(clock_rfc850_year(26, 2026), 2026);
    CHECK_EQ_INT(clock_rfc850_year(0, 2026), 2000);
    CHECK_EQ_INT(clock_rfc850_year(99, 2026), 1999);
    CHECK_EQ_INT(clock_rfc850_year(69, 1970), 1969); /* the window slides, it is no pivot */
    CHECK_EQ_INT(clock_rfc850_year(20, 1970), 2020);
    CHECK_EQ_INT(clock_rfc850_year(21, 2070), 2021); /* 2121 would be 51 years ahead */
    CHECK_EQ_INT(clock_rfc850_year(20, 2070), 2120); /* late in a century: the next one */
    CHECK_EQ_INT(clock_rfc850_year(19, 2099), 2119);
    CHECK_EQ_INT(clock_rfc850_year(50, 2000), 2050);
    CHECK_EQ_INT(clock_rfc850_year(51, 2000), 1951);
    /* Read against today: 71 was 1971 under the old fixed 1970 pivot; it is 2071 for any
     * year from 2021 to 2120. */
    CHECK_EQ_INT(parsed("Thursday, 01-Jan-71 00:00:00 GMT"), 3187296000);
}

static void parse_reads_only_len_bytes(void)
{
    /* The value is a slice of a request: what follows it is not part of it. */
    static const char text[] = IMF_FIXDATE "\r\nRange: bytes=0-1";
    time_t t = -2;
    CHECK_EQ_INT(clock_parse_http_date(text, strlen(IMF_FIXDATE), &t), 0);
    CHECK_EQ_INT(t, 784111777);
}

static void parse_rejects_garbage_and_truncation(void)
{
    static const char *bad[] = {
        "",
        "garbage",
        "Sun, 06 Nov 1994 08:49:37 GM",                          /* truncated IMF-fixdate */
        "Sun, 06 Nov 1994 08:49:37",                             /* no zone */
        "Sun, 06 Nov 1994",                                      /* no time */
        "Sun, 06 Xyz 1994 08:49:37 GMT",                         /* no such month */
        "Sun, 0x Nov 1994 08:49:37 GMT",                         /* day not digits */
        "Sun, 06 Nov 1994 08-49-37 GMT",                         /* wrong separators */
        "Sun, 06 Nov 19x4 08:49:37 GMT",                         /* year not digits */
        "Sunday, 06-Nov-94 08:49:37 GM",                         /* truncated RFC 850 */
        "Sunday, 06-Nov-9x 08:49:37 GMT",                        /* RFC 850 year not digits */
        "Sun Nov  6 08:49:37 199",                               /* truncated asctime */
        "Sun Nov  6 08:49:37 19x4",                              /* asctime year not digits */
        "Sun Nov  x 08:49:37 1994",                              /* asctime day not a digit */
        "Sun, 06 Nov 1994 08:49:37 GMT and then some more text", /* too long */
        "Sun, 99 Nov 2094 99:99:99 XYZ",                         /* every field out of range */
        "Xyz, 06 Nov 1994 08:49:37 GMT",                         /* no such weekday */
        "Sun, 06-Nov-1994 08:49:37 GMT",                         /* dashes in IMF-fixdate */
        "Sun, 06 Nov 1994 08:49:37 UTC",                         /* zone other than GMT */
        "Sun, 00 Nov 1994 08:49:37 GMT",                         /* day 0 */
        "Sun, 31 Nov 1994 08:49:37 GMT",                         /* day 31 of a 30-day month */
        "Tue, 29 Feb 2100 08:49:37 GMT",                         /* not a leap year */
        "Sun, 06 Nov 1994 24:00:00 GMT",                         /* hour 24 */
        "Sun, 06 Nov 1994 08:60:00 GMT",                         /* minute 60 */
        "Sun, 06 Nov 1994 08:49:61 GMT",                         /* second 61 */
        "Sun,_06 Nov 1994 08:49:37 GMT",                         /* wrong separator */
        "Sunday, 06-Nov-94 08:49:37 UTC",                        /* RFC 850, zone */
        "Sonday, 06-Nov-94 08:49:37 GMT",                        /* RFC 850, weekday */
        "Sunday, 06 Nov 94 08:49:37 GMT",                        /* RFC 850, spaces */
        "Xyz Nov  6 08:49:37 1994",                              /* asctime, weekday */
        "Sun Nov 31 08:49:37 1994",                              /* asctime, day */
        "Sun Nov  6 08:49:37_1994",                              /* asctime, separator */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        time_t t = 12345;
        int r = clock_parse_http_date(bad[i], strlen(bad[i]), &t);
        if (!CHECK_EQ_INT(r, -1))
            fprintf(stderr, "     input \"%s\"\n", bad[i]);
        CHECK_EQ_INT(t, 12345); /* a failed parse leaves *out alone */
    }
}

static void parse_accepts_edges_of_the_ranges(void)
{
    CHECK_EQ_INT(parsed("Thu, 29 Feb 2024 23:59:59 GMT"), 1709251199); /* leap day */
    CHECK_EQ_INT(parsed("Sat, 31 Dec 2016 23:59:60 GMT"), 1483228800); /* leap second */
    CHECK_EQ_INT(parsed("Tue, 29 Feb 2000 00:00:00 GMT"), 951782400);  /* century leap year */
}

static void format_clamps_what_imf_fixdate_cannot_say(void)
{
    /* Before 1970, and past year 9999 (where gmtime_r fails with EOVERFLOW for 2^62). */
    format_is(-1, "Thu, 01 Jan 1970 00:00:00 GMT");
    format_is(-((time_t)1 << 62), "Thu, 01 Jan 1970 00:00:00 GMT");
    format_is(CLOCK_HTTP_DATE_MAX, "Fri, 31 Dec 9999 23:59:59 GMT");
    format_is(CLOCK_HTTP_DATE_MAX + 1, "Fri, 31 Dec 9999 23:59:59 GMT");
    format_is((time_t)1 << 62, "Fri, 31 Dec 9999 23:59:59 GMT");
}

static void last_modified_is_between_the_epoch_and_now(void)
{
    time_t now = 1700000000;
    CHECK_EQ_INT(clock_last_modified(784111777, now), 784111777);
    CHECK_EQ_INT(clock_last_modified(now, now), now);
    CHECK_EQ_INT(clock_last_modified(now + 1, now), now); /* RFC 9110 8.8.2.1 */
    CHECK_EQ_INT(clock_last_modified((time_t)1 << 62, now), now);
    CHECK_EQ_INT(clock_last_modified(-1, now), 0);
    CHECK_EQ_INT(clock_last_modified(-((time_t)1 << 62), now), 0);
}

static void format_then_parse_round_trips(void)
{
    static const time_t samples[] = {0,          1,          59,        86399,
                                     86400,      784111777,  951782400, 1709251199,
                                     1234567890, 2147483647, 4102444799};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char out[HTTP_DATE_LEN + 1];
        clock_format_http_date(samples[i], out);
        CHECK_EQ_INT(parsed(out), samples[i]);
    }
}

static void http_date_is_now(void)
{
    const char *date = clock_http_date();
    CHECK_EQ_INT(strlen(date), HTTP_DATE_LEN);
    time_t t = parsed(date);
    time_t now = time(NULL);
    CHECK(t != -2);
    CHECK(llabs((long long)(t - now)) <= 2);
}

static void now_ms_is_monotonic(void)
{
    uint64_t a = clock_now_ms();
    struct timespec ten_ms = {0, 10 * 1000 * 1000};
    nanosleep(&ten_ms, NULL);
    uint64_t b = clock_now_ms();
    CHECK(b >= a);
    CHECK(b - a < 1000);
}

int main(void)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {
#define CASE(fn) {#fn, fn}
        // clang-format off
        CASE(format_known_timestamps),
        CASE(parse_the_three_formats_of_rfc9110),
        CASE(rfc850_year_is_within_50_years),
        CASE(parse_reads_only_len_bytes),
        CASE(parse_rejects_garbage_and_truncation),
        CASE(parse_accepts_edges_of_the_ranges),
        CASE(format_clamps_what_imf_fixdate_cannot_say),
        CASE(last_modified_is_between_the_epoch_and_now),
        CASE(format_then_parse_round_trips),
        CASE(http_date_is_now),
        CASE(now_ms_is_monotonic),
    // clang-format on
#undef CASE
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_case(cases[i].name);
        cases[i].run();
    }
    return check_report();
}
