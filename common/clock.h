/* clock.h - monotonic milliseconds for deadlines and the cached HTTP Date. */
#ifndef C10K_CLOCK_H
#define C10K_CLOCK_H

#include <stdint.h>
#include <time.h>

#define HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* Milliseconds on a coarse monotonic clock (a vDSO read, no syscall). */
uint64_t clock_now_ms(void);

/* Today's Date header value; formatted at most once a second per thread. */
const char *clock_http_date(void);

/* Writes t as an IMF-fixdate into out (HTTP_DATE_LEN + 1 bytes). */
void clock_format_http_date(time_t t, char *out);

/* Parses an IMF-fixdate, RFC 850 or asctime date; returns -1 if it is none. */
int clock_parse_http_date(const char *s, size_t len, time_t *out);

#endif
