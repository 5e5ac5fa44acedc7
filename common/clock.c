/* clock.c - time for the event loops and the Date cache of SPEC section 3. */
#include "clock.h"

#include <string.h>

static const char day_names[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

uint64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

void clock_format_http_date(time_t t, char *out)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    /* Hand-formatted: strftime would honour the locale, and this runs per response. */
    memcpy(out, day_names[tm.tm_wday], 3);
    memcpy(out + 3, ", ", 2);
    put2(out + 5, tm.tm_mday);
    out[7] = ' ';
    memcpy(out + 8, month_names[tm.tm_mon], 3);
    out[11] = ' ';
    int year = tm.tm_year + 1900;
    put2(out + 12, year / 100 % 100);
    put2(out + 14, year % 100);
    out[16] = ' ';
    put2(out + 17, tm.tm_hour);
    out[19] = ':';
    put2(out + 20, tm.tm_min);
    out[22] = ':';
    put2(out + 23, tm.tm_sec);
    memcpy(out + 25, " GMT", 5);
}

const char *clock_http_date(void)
{
    /* Per thread, so bin/blocking's threads need no lock. */
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[HTTP_DATE_LEN + 1];
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != cached_sec) {
        clock_format_http_date(ts.tv_sec, cached);
        cached_sec = ts.tv_sec;
    }
    return cached;
}

static int parse_month(const char *s)
{
    for (int i = 0; i < 12; i++)
        if (!memcmp(s, month_names[i], 3))
            return i;
    return -1;
}

/* Reads exactly n digits; returns -1 if any is not a digit. */
static int parse_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int clock_parse_http_date(const char *s, size_t len, time_t *out)
{
    char buf[40];
    struct tm tm = {0};
    const char *p;

    if (len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';

    if (len == 29 && buf[3] == ',') {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        p = buf + 5;
        tm.tm_mday = parse_digits(p, 2);
        tm.tm_mon = parse_month(p + 3);
        tm.tm_year = parse_digits(p + 7, 4) - 1900;
        p += 12;
    } else if (len == 24 && buf[3] == ' ') {
        /* asctime: "Sun Nov  6 08:49:37 1994" */
        tm.tm_mon = parse_month(buf + 4);
        tm.tm_mday = buf[8] == ' ' ? parse_digits(buf + 9, 1) : parse_digits(buf + 8, 2);
        tm.tm_year = parse_digits(buf + 20, 4) - 1900;
        p = buf + 11;
    } else {
        /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
        const char *comma = strchr(buf, ',');
        if (!comma || strlen(comma) != 24)
            return -1;
        p = comma + 2;
        tm.tm_mday = parse_digits(p, 2);
        tm.tm_mon = parse_month(p + 3);
        int yy = parse_digits(p + 7, 2);
        tm.tm_year = yy < 0 ? -1 : (yy < 70 ? yy + 100 : yy);
        p += 10;
    }
    tm.tm_hour = parse_digits(p, 2);
    tm.tm_min = parse_digits(p + 3, 2);
    tm.tm_sec = parse_digits(p + 6, 2);
    if (tm.tm_mday < 1 || tm.tm_mon < 0 || tm.tm_year < 0 || tm.tm_hour < 0 || tm.tm_min < 0 ||
        tm.tm_sec < 0 || p[2] != ':' || p[5] != ':')
        return -1;
    *out = timegm(&tm);
    return 0;
}
