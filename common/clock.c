/* clock.c - time for the event loops and the Date cache of SPEC section 3. */
#include "clock.h"

#include <stdbool.h>
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
    /* Clamped first, so gmtime_r cannot fail (glibc's EOVERFLOW leaves tm unset) and the
     * year fits IMF-fixdate's four digits. */
    if (t < 0)
        t = 0;
    if (t > CLOCK_HTTP_DATE_MAX)
        t = CLOCK_HTTP_DATE_MAX;
    if (!gmtime_r(&t, &tm)) {
        memcpy(out, "Thu, 01 Jan 1970 00:00:00 GMT", HTTP_DATE_LEN + 1);
        return;
    }
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

time_t clock_last_modified(time_t mtime, time_t now)
{
    if (mtime > now) /* RFC 9110 8.8.2.1: never later than the Date sent with it */
        mtime = now;
    return mtime < 0 ? 0 : mtime; /* before 1970: the epoch, as a file cannot be older */
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

static bool is_day_name(const char *s)
{
    for (int i = 0; i < 7; i++)
        if (!memcmp(s, day_names[i], 3))
            return true;
    return false;
}

static bool is_long_day_name(const char *s, size_t len)
{
    static const char *const names[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday"};
    for (int i = 0; i < 7; i++)
        if (strlen(names[i]) == len && !memcmp(s, names[i], len))
            return true;
    return false;
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

/* "hh:mm:ss" into tm; false if malformed or out of range (60 is a leap second). */
static bool parse_time_of_day(const char *p, struct tm *tm)
{
    tm->tm_hour = parse_digits(p, 2);
    tm->tm_min = parse_digits(p + 3, 2);
    tm->tm_sec = parse_digits(p + 6, 2);
    return p[2] == ':' && p[5] == ':' && tm->tm_hour >= 0 && tm->tm_hour <= 23 && tm->tm_min >= 0 &&
           tm->tm_min <= 59 && tm->tm_sec >= 0 && tm->tm_sec <= 60;
}

static bool date_in_range(const struct tm *tm, int year)
{
    static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 0 || tm->tm_mon < 0 || tm->tm_mday < 1 || tm->tm_mday > days[tm->tm_mon])
        return false;
    return tm->tm_mon != 1 || tm->tm_mday <= 28 || leap;
}

int clock_rfc850_year(int yy, int now_year)
{
    int year = now_year - now_year % 100 + yy;
    if (year > now_year + 50)
        year -= 100;
    else if (year <= now_year - 50)
        year += 100;
    return year;
}

static int current_year(void)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts); /* a vDSO read, and only for RFC 850 dates */
    time_t now = ts.tv_sec;
    return gmtime_r(&now, &tm) ? tm.tm_year + 1900 : 1970;
}

int clock_parse_http_date(const char *s, size_t len, time_t *out)
{
    struct tm tm = {0};
    int year;

    if (len == 29 && s[3] == ',') {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        if (!is_day_name(s) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
            memcmp(s + 25, " GMT", 4) || !parse_time_of_day(s + 17, &tm))
            return -1;
        tm.tm_mday = parse_digits(s + 5, 2);
        tm.tm_mon = parse_month(s + 8);
        year = parse_digits(s + 12, 4);
    } else if (len == 24 && s[3] == ' ') {
        /* asctime: "Sun Nov  6 08:49:37 1994" */
        if (!is_day_name(s) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' ||
            !parse_time_of_day(s + 11, &tm))
            return -1;
        tm.tm_mon = parse_month(s + 4);
        tm.tm_mday = s[8] == ' ' ? parse_digits(s + 9, 1) : parse_digits(s + 8, 2);
        year = parse_digits(s + 20, 4);
    } else {
        /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
        const char *comma = memchr(s, ',', len);
        if (!comma || (size_t)(s + len - comma) != 24 || !is_long_day_name(s, (size_t)(comma - s)))
            return -1;
        const char *p = comma + 2;
        if (comma[1] != ' ' || p[2] != '-' || p[6] != '-' || p[9] != ' ' ||
            memcmp(p + 18, " GMT", 4) || !parse_time_of_day(p + 10, &tm))
            return -1;
        tm.tm_mday = parse_digits(p, 2);
        tm.tm_mon = parse_month(p + 3);
        int yy = parse_digits(p + 7, 2);
        year = yy < 0 ? -1 : clock_rfc850_year(yy, current_year());
    }
    if (!date_in_range(&tm, year))
        return -1;
    tm.tm_year = year - 1900;
    *out = timegm(&tm);
    return 0;
}
