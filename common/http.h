/*
 * http.h - request parsing on http-parser: bytes in, struct http_request out, no I/O.
 *
 * The caller owns the buffer; every string in the request is a slice into it.
 * http_parse_request() first finds the end of the header block (remembering
 * how far it looked, so a slowly trickled request is not rescanned from the
 * start), then runs http-parser once over the complete block.
 */
#ifndef C10K_HTTP_H
#define C10K_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADER 8192 /* whole header block, request line included: else 431 */
#define HTTP_MAX_TARGET 4096 /* request target: else 414 */
#define HTTP_MAX_METHOD 16   /* longer than any method http-parser knows: 400 at once */

/* Results of http_parse_request() other than "n bytes consumed". */
#define HTTP_PARTIAL 0 /* no complete header block yet: read more */
/* A negative result is minus the HTTP status to answer before closing (-400, -414, -431). */

struct http_slice {
    const char *p;
    uint32_t len;
};

enum http_req_method { HTTP_REQ_GET, HTTP_REQ_HEAD, HTTP_REQ_OTHER };

struct http_request {
    enum http_req_method method;
    uint8_t version_minor; /* HTTP/1.x: only major version 1 is accepted */
    bool keep_alive;       /* after http-parser's HTTP/1.0 vs 1.1 rules */
    bool has_body;         /* Content-Length > 0 or Transfer-Encoding */
    uint8_t host_count;
    struct http_slice target; /* raw request target, still percent-encoded */
    /* Field values below are trimmed of leading and trailing whitespace (RFC 9112 5). */
    struct http_slice if_match;
    struct http_slice if_unmodified_since;
    struct http_slice if_none_match;
    struct http_slice if_modified_since;
    struct http_slice if_range;
    struct http_slice range;
};

/*
 * Parses the request at buf[0, len). *scan is where the search for the end of
 * the header block resumes: set it to 0 for a new request, keep it between
 * calls on the same one. Returns the number of bytes the request occupies,
 * HTTP_PARTIAL, or -status.
 */
int http_parse_request(const char *buf, size_t len, size_t *scan, struct http_request *req);

/* Whether a Host field value, already trimmed, is uri-host [ ":" port ] (RFC 9112 3.2,
 * RFC 3986 3.2.2) with a non-empty host (RFC 9110 4.2.1: an http URI's host is never empty). */
bool http_host_is_valid(const char *v, size_t len);

#endif
