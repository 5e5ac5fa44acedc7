/* http.c - the one HTTP/1.x request parser glue, on http-parser. */
#include "http.h"

#include <ctype.h>
#include <http_parser.h>
#include <string.h>
#include <strings.h>

enum header_kind {
    H_OTHER,
    H_HOST,
    H_CONTENT_LENGTH,
    H_TRANSFER_ENCODING,
    H_IF_MATCH,
    H_IF_UNMODIFIED_SINCE,
    H_IF_NONE_MATCH,
    H_IF_MODIFIED_SINCE,
    H_IF_RANGE,
    H_RANGE,
};

struct parse_ctx {
    struct http_request *req;
    enum header_kind header;
    int content_lengths;
    bool bad_content_length;
    bool nonzero_content_length;
    bool transfer_encoding;
    bool bad_host;
};

static bool slice_is(const char *p, size_t len, const char *name)
{
    return strlen(name) == len && !strncasecmp(p, name, len);
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;
    ctx->req->target = (struct http_slice){at, (uint32_t)len};
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;
    /* RFC 9112 5.1: whitespace before the colon must be rejected (the lenient
     * parser lets "Content-Length : 5" through, which smuggles a body). */
    if (memchr(at, ' ', len) || memchr(at, '\t', len))
        return -1;
    if (slice_is(at, len, "host"))
        ctx->header = H_HOST;
    else if (slice_is(at, len, "content-length"))
        ctx->header = H_CONTENT_LENGTH;
    else if (slice_is(at, len, "transfer-encoding"))
        ctx->header = H_TRANSFER_ENCODING;
    else if (slice_is(at, len, "if-match"))
        ctx->header = H_IF_MATCH;
    else if (slice_is(at, len, "if-unmodified-since"))
        ctx->header = H_IF_UNMODIFIED_SINCE;
    else if (slice_is(at, len, "if-none-match"))
        ctx->header = H_IF_NONE_MATCH;
    else if (slice_is(at, len, "if-modified-since"))
        ctx->header = H_IF_MODIFIED_SINCE;
    else if (slice_is(at, len, "if-range"))
        ctx->header = H_IF_RANGE;
    else if (slice_is(at, len, "range"))
        ctx->header = H_RANGE;
    else
        ctx->header = H_OTHER;
    return 0;
}

static bool is_unreserved_or_sub_delim(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("-._~!$&'()*+,;=", ch));
}

bool http_host_is_valid(const char *v, size_t len)
{
    size_t i = 0;
    if (len == 0 || v[0] == ':') /* no host: nginx answers 400 too */
        return false;
    if (v[0] == '[') { /* IP-literal: IPv6address or IPvFuture, not resolved here */
        for (i = 1; i < len && v[i] != ']'; i++)
            if (!is_unreserved_or_sub_delim((unsigned char)v[i]) && v[i] != ':')
                return false;
        if (i == len || i == 1)
            return false;
        i++;
    } else { /* reg-name, which IPv4address is a case of */
        for (; i < len && v[i] != ':'; i++) {
            if (v[i] == '%') {
                if (i + 2 >= len || !isxdigit((unsigned char)v[i + 1]) ||
                    !isxdigit((unsigned char)v[i + 2]))
                    return false;
                i += 2;
            } else if (!is_unreserved_or_sub_delim((unsigned char)v[i])) {
                return false;
            }
        }
    }
    if (i < len && v[i++] != ':')
        return false;
    for (; i < len; i++) /* port = *DIGIT */
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;
    struct http_request *req = ctx->req;

    /* RFC 9112 5: the field value excludes the OWS around it. Trimmed here, once, so no
     * header's own parsing has to remember (a trailing space must not turn a valid
     * Range or date into an ignored one, nor a Content-Length into a 400). */
    while (len > 0 && (at[len - 1] == ' ' || at[len - 1] == '\t'))
        len--;
    while (len > 0 && (at[0] == ' ' || at[0] == '\t')) {
        at++;
        len--;
    }
    struct http_slice v = {at, (uint32_t)len};

    switch (ctx->header) {
    case H_HOST:
        if (req->host_count < UINT8_MAX) /* saturate: 256 Hosts must not wrap to "one" */
            req->host_count++;
        if (!http_host_is_valid(at, len))
            ctx->bad_host = true;
        break;
    case H_CONTENT_LENGTH:
        /* http-parser is lenient here; a smuggling-safe server is not. */
        ctx->content_lengths++;
        if (len == 0 || len > 18)
            ctx->bad_content_length = true;
        for (size_t i = 0; i < len; i++) {
            if (at[i] < '0' || at[i] > '9')
                ctx->bad_content_length = true;
            else if (at[i] != '0')
                ctx->nonzero_content_length = true;
        }
        break;
    case H_TRANSFER_ENCODING: ctx->transfer_encoding = true; break;
    case H_IF_MATCH: req->if_match = v; break;
    case H_IF_UNMODIFIED_SINCE: req->if_unmodified_since = v; break;
    case H_IF_NONE_MATCH: req->if_none_match = v; break;
    case H_IF_MODIFIED_SINCE: req->if_modified_since = v; break;
    case H_IF_RANGE: req->if_range = v; break;
    case H_RANGE: req->range = v; break;
    case H_OTHER: break;
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct parse_ctx *ctx = p->data;
    struct http_request *req = ctx->req;

    req->method = p->method == HTTP_GET    ? HTTP_REQ_GET
                  : p->method == HTTP_HEAD ? HTTP_REQ_HEAD
                                           : HTTP_REQ_OTHER;
    req->version_minor = (uint8_t)(p->http_minor > 1 ? 1 : p->http_minor);
    req->keep_alive = http_should_keep_alive(p);
    req->has_body = ctx->nonzero_content_length || ctx->transfer_encoding;
    /* Stop here: a body is never read, the handler answers 413 instead. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

/* tchar of RFC 9110 5.6.2: what a method token is made of. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/*
 * Whether the start of the request line already proves it invalid: a method
 * byte that is not a tchar, or a method longer than any http-parser knows.
 * Answering 400 now spares garbage the wait for the idle timeout.
 */
static bool method_is_invalid(const unsigned char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n')) /* empty lines before it are ignored */
        i++;
    size_t start = i;
    for (; i < len && buf[i] != ' '; i++)
        if (!is_tchar(buf[i]) || i - start >= HTTP_MAX_METHOD)
            return true;
    return i < len && i == start;
}

/*
 * Looks for the blank line that ends the header block, from *scan on.
 * Returns the block's length, 0 if it is not complete, or -400 for a byte
 * that has no place in a request head.
 *
 * Line ends: CRLF, or a lone LF (RFC 9112 2.2 lets a recipient accept one, and
 * http-parser then agrees with us on where every line ends). A CR not followed
 * by LF is rejected (RFC 9112 2.2): the lenient http-parser would take any byte
 * after it as the LF and end the head early or swallow a header, which smuggles.
 * A line that starts with SP or HTAB (obs-fold, or whitespace before the first
 * header) is rejected too (RFC 9112 5.2, 2.2), so no header can hide in another.
 */
static int find_header_end(const unsigned char *buf, size_t len, size_t *scan)
{
    size_t i = *scan;
    for (; i < len; i++) {
        unsigned char ch = buf[i];
        if (ch == '\r') {
            if (i + 1 >= len)
                break;
            if (buf[i + 1] != '\n')
                return -400;
        } else if (ch == '\n') {
            if (i + 1 >= len)
                break;
            if (buf[i + 1] == '\n')
                return (int)(i + 2);
            if (buf[i + 1] == ' ' || buf[i + 1] == '\t')
                return -400;
            if (buf[i + 1] == '\r') {
                if (i + 2 >= len)
                    break;
                if (buf[i + 2] == '\n')
                    return (int)(i + 3);
                return -400;
            }
        } else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            return -400;
        }
    }
    *scan = i; /* resume at the unfinished line end, not at the start */
    return 0;
}

/* Which limit an oversized header block broke: the request target's, or the block's. */
static int over_limit_status(const char *buf, size_t len)
{
    const char *end = buf + len;
    const char *lf = memchr(buf, '\n', len);
    const char *target = memchr(buf, ' ', (size_t)((lf ? lf : end) - buf));
    if (!target)
        return -431;
    target++;
    const char *stop = target;
    while (stop < end && *stop != ' ' && *stop != '\r' && *stop != '\n')
        stop++;
    return (size_t)(stop - target) > HTTP_MAX_TARGET ? -414 : -431;
}

/* The lenient http-parser checks only the 'H' of "HTTP/": check the rest. */
static bool version_is_http(const struct http_request *req, const char *end)
{
    const char *p = req->target.p + req->target.len;
    while (p < end && *p == ' ')
        p++;
    return end - p >= 5 && !memcmp(p, "HTTP/", 5);
}

int http_parse_request(const char *buf, size_t len, size_t *scan, struct http_request *req)
{
    int end = find_header_end((const unsigned char *)buf, len, scan);
    if (end < 0)
        return end;
    if (end == 0 && method_is_invalid((const unsigned char *)buf, len))
        return -400;
    if (end == 0)
        return len >= HTTP_MAX_HEADER ? over_limit_status(buf, len) : HTTP_PARTIAL;
    if ((size_t)end > HTTP_MAX_HEADER)
        return over_limit_status(buf, (size_t)end);

    memset(req, 0, sizeof *req);
    struct parse_ctx ctx = {.req = req};
    http_parser parser;
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = &ctx;

    size_t used = http_parser_execute(&parser, &settings, buf, (size_t)end);
    enum http_errno err = HTTP_PARSER_ERRNO(&parser);
    if (err != HPE_PAUSED && err != HPE_OK)
        return -400;
    if (err == HPE_OK && used != (size_t)end)
        return -400;
    if (err == HPE_OK) /* the block ended before the headers did */
        return -400;
    if (req->target.len > HTTP_MAX_TARGET)
        return -414;
    if (!req->target.p || !version_is_http(req, buf + end))
        return -400;
    if (parser.http_major != 1 || ctx.bad_content_length || ctx.content_lengths > 1 ||
        (ctx.content_lengths && ctx.transfer_encoding))
        return -400;
    if (req->version_minor >= 1 && req->host_count != 1)
        return -400;
    if (req->host_count > 1 || ctx.bad_host)
        return -400;
    return end;
}
