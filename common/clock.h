/* clock.h - monotonic milliseconds for deadlines and the cached HTTP Date. */
#ifndef C10K_CLOCK_H
#define C10K_CLOCK_H

#include <stdint.h>
#include <time.h>

#define HTTP_DATE_LEN 29                 /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define CLOCK_HTTP_DATE_MAX 253402300799 /* 9999-12-31 23:59:59: IMF-fixdate's last second */

/* Milliseconds on a coarse monotonic clock (a vDSO read, no syscall). */
uint64_t clock_now_ms(void);

/* Today's Date header value; formatted at most once a second per thread. */
const char *clock_http_date(void);

/* Writes t as an IMF-fixdate into out (HTTP_DATE_LEN + 1 bytes); a t before 1970 or
 * after CLOCK_HTTP_DATE_MAX is written as that bound. */
void clock_format_http_date(time_t t, char *out);

/* The Last-Modified to send for a file's mtime when the Date is now: never later
 * than now (RFC 9110 8.8.2.1), never before 1970 (the epoch instead). */
time_t clock_last_modified(time_t mtime, time_t now);

/* The year an RFC 850 date's two digits yy (0-99) mean when this year is now_year
 * (RFC 9110 5.6.7): the one within 50 years of now_year, a year more than 50 years
 * ahead being read as a century earlier. */
int clock_rfc850_year(int yy, int now_year);

/* Parses an IMF-fixdate, RFC 850 or asctime date (RFC 9110 5.6.7), fields and
 * weekday names checked; returns -1 if it is none, and the caller ignores it. */
int clock_parse_http_date(const char *s, size_t len, time_t *out);

#endif
