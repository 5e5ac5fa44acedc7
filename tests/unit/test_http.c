/*
 * test_http.c - http_parse_request(): lengths, partial input, limits, and what it rejects.
 *
 * Every input is parsed where it ends right before a PROT_NONE page
 * (picohttpparser's trick), so a read one byte past the end crashes the test
 * instead of passing by luck.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "http.h"

#define ARENA_SIZE (64 * 1024) /* readable bytes before the guard page */

static char *arena_end; /* first byte of the PROT_NONE page */

static void guard_init(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *base =
        mmap(NULL, ARENA_SIZE + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED || mprotect(base + ARENA_SIZE, page, PROT_NONE) < 0) {
        perror("guard page");
        exit(1);
    }
    arena_end = base + ARENA_SIZE;
}

/* Copies len bytes so that they end at the guard page; returns where they start. */
static const char *place(const void *bytes, size_t len)
{
    if (len > ARENA_SIZE) {
        fprintf(stderr, "input of %zu bytes does not fit the arena\n", len);
        exit(1);
    }
    char *p = arena_end - len;
    memcpy(p, bytes, len);
    return p;
}

/* Parses bytes as a fresh request placed against the guard page. */
static int parse_bytes(const void *bytes, size_t len, struct http_request *req)
{
    size_t scan = 0;
    return http_parse_request(place(bytes, len), len, &scan, req);
}

static int parse(const char *text, struct http_request *req)
{
    return parse_bytes(text, strlen(text), req);
}

/* A growable string for building large requests. */
struct text {
    char *p;
    size_t len;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    t->p = realloc(t->p, t->len + n + 1);
    if (!t->p)
        abort();
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void text_str(struct text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

static void text_repeat(struct text *t, char ch, size_t n)
{
    for (size_t i = 0; i < n; i++)
        text_add(t, &ch, 1);
}

/* "GET /" and target_len - 1 letters (a target of target_len bytes), then " HTTP/1.1". */
static void text_request_line(struct text *t, size_t target_len)
{
    text_str(t, "GET /");
    text_repeat(t, 'a', target_len - 1);
    text_str(t, " HTTP/1.1\r\n");
}

/* ---- complete, partial, pipelined -------------------------------------------------------- */

static void complete_request_returns_its_length(void)
{
    static const char text[] = "GET /index.html HTTP/1.1\r\nHost: example.com\r\n"
                               "User-Agent: t\r\n\r\n";
    struct http_request req;
    CHECK_EQ_INT(parse(text, &req), strlen(text));
    CHECK_EQ_INT(req.method, HTTP_REQ_GET);
    CHECK_EQ_INT(req.version_minor, 1);
    CHECK_EQ_INT(req.host_count, 1);
    CHECK(req.keep_alive);
    CHECK(!req.has_body);
    CHECK_MEM(req.target.p, req.target.len, "/index.html");
    CHECK(req.if_none_match.p == NULL);
    CHECK(req.if_modified_since.p == NULL);
    CHECK(req.range.p == NULL);
}

static void every_proper_prefix_is_partial(void)
{
    static const char text[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t len = strlen(text);
    size_t first_not_partial = 0;
    for (size_t k = 0; k < len; k++) {
        struct http_request req;
        if (parse_bytes(text, k, &req) != HTTP_PARTIAL && !first_not_partial)
            first_not_partial = k;
    }
    CHECK_EQ_INT(first_not_partial, 0);
}

static void trickled_request_is_not_rescanned_from_the_start(void)
{
    static const char text[] = "GET /slow HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-A: b\r\n\r\n";
    size_t len = strlen(text);
    size_t scan = 0, prev_scan = 0, max_lag = 0;
    size_t first_not_partial = 0, first_backwards = 0;
    struct http_request req;

    for (size_t k = 1; k < len; k++) { /* one more byte per call, as a slowloris sends */
        int r = http_parse_request(place(text, k), k, &scan, &req);
        if (r != HTTP_PARTIAL && !first_not_partial)
            first_not_partial = k;
        if ((scan < prev_scan || scan > k) && !first_backwards)
            first_backwards = k;
        if (k - scan > max_lag)
            max_lag = k - scan;
        prev_scan = scan;
    }
    CHECK_EQ_INT(first_not_partial, 0);
    CHECK_EQ_INT(first_backwards, 0);
    /* The search resumes at most at an unfinished "\n\r", never further back. */
    CHECK(max_lag <= 2);
    CHECK(scan >= len - 3);
    CHECK_EQ_INT(http_parse_request(place(text, len), len, &scan, &req), len);
    CHECK_MEM(req.target.p, req.target.len, "/slow");
}

static void pipelined_requests_are_taken_one_at_a_time(void)
{
    static const char first[] = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char second[] = "HEAD /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    char both[sizeof first + sizeof second];
    size_t n1 = strlen(first), n2 = strlen(second);
    memcpy(both, first, n1);
    memcpy(both + n1, second, n2);

    struct http_request req;
    size_t scan = 0;
    const char *buf = place(both, n1 + n2);
    CHECK_EQ_INT(http_parse_request(buf, n1 + n2, &scan, &req), n1);
    CHECK_MEM(req.target.p, req.target.len, "/one");
    CHECK_EQ_INT(req.method, HTTP_REQ_GET);
    CHECK(req.keep_alive);

    scan = 0;
    CHECK_EQ_INT(http_parse_request(buf + n1, n2, &scan, &req), n2);
    CHECK_MEM(req.target.p, req.target.len, "/two");
    CHECK_EQ_INT(req.method, HTTP_REQ_HEAD);
    CHECK(!req.keep_alive);
}

static void pipelined_request_followed_by_a_partial_one(void)
{
    static const char text[] = "GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /tw";
    size_t n1 = strlen("GET /one HTTP/1.1\r\nHost: h\r\n\r\n");
    size_t len = strlen(text);
    struct http_request req;
    size_t scan = 0;
    const char *buf = place(text, len);
    CHECK_EQ_INT(http_parse_request(buf, len, &scan, &req), n1);
    scan = 0;
    CHECK_EQ_INT(http_parse_request(buf + n1, len - n1, &scan, &req), HTTP_PARTIAL);
}

static void bare_lf_line_endings_are_accepted(void)
{
    static const char bare[] = "GET /lf HTTP/1.1\nHost: h\nRange: bytes=0-1\n\n";
    static const char mixed[] = "GET /mixed HTTP/1.1\r\nHost: h\n\r\n";
    struct http_request req;
    CHECK_EQ_INT(parse(bare, &req), strlen(bare));
    CHECK_MEM(req.target.p, req.target.len, "/lf");
    CHECK_MEM(req.range.p, req.range.len, "bytes=0-1");
    CHECK_EQ_INT(parse(mixed, &req), strlen(mixed));
    CHECK_MEM(req.target.p, req.target.len, "/mixed");
}

/* ---- limits ------------------------------------------------------------------------------ */

/* A request whose header block is exactly block_len bytes, complete or not. */
static void text_block_of(struct text *t, size_t block_len, bool complete)
{
    text_str(t, "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ");
    size_t tail = strlen("\r\n\r\n");
    text_repeat(t, 'p', block_len - t->len - tail);
    if (complete)
        text_str(t, "\r\n\r\n");
    else
        text_str(t, "\r\nX-");
}

static void header_block_of_8192_bytes_is_accepted(void)
{
    struct text t = {0};
    struct http_request req;
    text_block_of(&t, HTTP_MAX_HEADER, true);
    CHECK_EQ_INT(t.len, HTTP_MAX_HEADER);
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), HTTP_MAX_HEADER);
    free(t.p);
}

static void complete_header_block_over_8192_is_431(void)
{
    struct text t = {0};
    struct http_request req;
    text_block_of(&t, HTTP_MAX_HEADER + 1, true);
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), -431);
    free(t.p);
}

static void incomplete_header_block_over_8192_is_431(void)
{
    struct text t = {0};
    struct http_request req;
    text_block_of(&t, HTTP_MAX_HEADER - 1, false);
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), HTTP_PARTIAL);
    text_repeat(&t, 'x', 1);
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), -431);
    text_repeat(&t, 'x', 5000);
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), -431);
    free(t.p);
}

static void target_of_4096_bytes_is_accepted(void)
{
    struct text t = {0};
    struct http_request req;
    text_request_line(&t, HTTP_MAX_TARGET);
    text_str(&t, "Host: h\r\n\r\n");
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), t.len);
    CHECK_EQ_INT(req.target.len, HTTP_MAX_TARGET);
    free(t.p);
}

static void complete_request_with_target_over_4096_is_414(void)
{
    struct text t = {0};
    struct http_request req;
    text_request_line(&t, HTTP_MAX_TARGET + 1);
    text_str(&t, "Host: h\r\n\r\n");
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), -414);
    free(t.p);
}

static void incomplete_request_line_over_the_limits_is_414(void)
{
    struct text t = {0};
    struct http_request req;
    text_str(&t, "GET /");
    text_repeat(&t, 'a', HTTP_MAX_HEADER + 100); /* no line end at all yet */
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), -414);
    free(t.p);
}

static void long_target_then_headers_past_8192_is_414(void)
{
    struct text t = {0};
    struct http_request req;
    text_request_line(&t, 5000);
    text_str(&t, "Host: h\r\nX-Pad: ");
    text_repeat(&t, 'p', 4000); /* past 8192, block not finished */
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), -414);
    text_str(&t, "\r\n\r\n"); /* and finished */
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), -414);
    free(t.p);
}

static void target_at_the_limit_in_an_oversized_block_is_431(void)
{
    /* Only the header block is over its limit: the target (4096) is not. */
    struct text t = {0};
    struct http_request req;
    text_request_line(&t, HTTP_MAX_TARGET);
    text_str(&t, "Host: h\r\nX-Pad: ");
    text_repeat(&t, 'p', 4500);
    text_str(&t, "\r\n\r\n");
    CHECK(t.len > HTTP_MAX_HEADER);
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), -431);
    free(t.p);
}

/* ---- bytes, versions, methods that are refused ------------------------------------------- */

static void nul_and_control_bytes_are_400(void)
{
    static const char nul_in_target[] = "GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char nul_partial[] = "GET /a\0";
    static const char soh_in_value[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n";
    static const char del_in_value[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fz\r\n\r\n";
    static const char esc_in_name[] = "GET / HTTP/1.1\r\nHost: h\r\nX\x1b: a\r\n\r\n";
    static const char tab_in_value[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\tb\r\n\r\n";
    struct http_request req;
    CHECK_EQ_INT(parse_bytes(nul_in_target, sizeof nul_in_target - 1, &req), -400);
    CHECK_EQ_INT(parse_bytes(nul_partial, sizeof nul_partial - 1, &req), -400);
    CHECK_EQ_INT(parse(soh_in_value, &req), -400);
    CHECK_EQ_INT(parse(del_in_value, &req), -400);
    CHECK_EQ_INT(parse(esc_in_name, &req), -400);
    CHECK_EQ_INT(parse(tab_in_value, &req), strlen(tab_in_value)); /* a tab is whitespace */
}

static void other_http_versions_are_400(void)
{
    struct http_request req;
    CHECK_EQ_INT(parse("GET / HTTP/2.0\r\nHost: h\r\n\r\n", &req), -400);
    CHECK_EQ_INT(parse("GET / HTTP/0.9\r\nHost: h\r\n\r\n", &req), -400);
    CHECK_EQ_INT(parse("GET /\r\n\r\n", &req), -400); /* an HTTP/0.9 simple request */
    CHECK_EQ_INT(parse("GET / HTTX/1.1\r\nHost: h\r\n\r\n", &req), -400);
    CHECK_EQ_INT(parse("GET / HXXP/1.1\r\nHost: h\r\n\r\n", &req), -400);
    CHECK_EQ_INT(parse("GET / XTTP/1.1\r\nHost: h\r\n\r\n", &req), -400);
}

static void unknown_method_token_is_400(void)
{
    struct http_request req;
    CHECK_EQ_INT(parse("FROG / HTTP/1.1\r\nHost: h\r\n\r\n", &req), -400);
    CHECK_EQ_INT(parse("garbage\r\n\r\n", &req), -400);
}

static void methods_are_classified(void)
{
    struct http_request req;
    CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    CHECK_EQ_INT(req.method, HTTP_REQ_GET);
    CHECK(parse("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    CHECK_EQ_INT(req.method, HTTP_REQ_HEAD);
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    CHECK_EQ_INT(req.method, HTTP_REQ_OTHER);
    CHECK(parse("DELETE / HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    CHECK_EQ_INT(req.method, HTTP_REQ_OTHER);
}

/* ---- Host -------------------------------------------------------------------------------- */

static void http11_without_host_is_400(void)
{
    struct http_request req;
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", &req), -400);
}

static void duplicate_host_is_400(void)
{
    struct http_request req;
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &req), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", &req), -400);
}

static void many_host_headers_are_400(void)
{
    /* 257 Host lines: a counter that wraps would see just one. */
    struct text t = {0};
    struct http_request req;
    text_str(&t, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 257; i++)
        text_str(&t, "Host: a\r\n");
    text_str(&t, "\r\n");
    CHECK(t.len < HTTP_MAX_HEADER);
    CHECK_EQ_INT(parse_bytes(t.p, t.len, &req), -400);
    free(t.p);
}

static void http10_without_host_is_accepted(void)
{
    static const char text[] = "GET /old HTTP/1.0\r\n\r\n";
    struct http_request req;
    CHECK_EQ_INT(parse(text, &req), strlen(text));
    CHECK_EQ_INT(req.version_minor, 0);
    CHECK_EQ_INT(req.host_count, 0);
    CHECK_MEM(req.target.p, req.target.len, "/old");
}

/* ---- bodies ------------------------------------------------------------------------------ */

static int parse_with_header(const char *header_line, struct http_request *req)
{
    char text[512];
    snprintf(text, sizeof text, "POST / HTTP/1.1\r\nHost: h\r\n%s\r\n\r\n", header_line);
    return parse(text, req);
}

static void malformed_content_length_is_400(void)
{
    struct http_request req;
    CHECK_EQ_INT(parse_with_header("Content-Length: +5", &req), -400);
    CHECK_EQ_INT(parse_with_header("Content-Length: ", &req), -400);
    CHECK_EQ_INT(parse_with_header("Content-Length: -1", &req), -400);
    CHECK_EQ_INT(parse_with_header("Content-Length: 5x", &req), -400);
    CHECK_EQ_INT(parse_with_header("Content-Length: 99999999999999999999999", &req), -400);
    CHECK_EQ_INT(parse_with_header("Content-Length: 5\r\nContent-Length: 5", &req), -400);
    CHECK_EQ_INT(parse_with_header("Content-Length: 0\r\nContent-Length: 0", &req), -400);
    CHECK_EQ_INT(parse_with_header("Content-Length: 5\r\nTransfer-Encoding: chunked", &req), -400);
    CHECK_EQ_INT(parse_with_header("Transfer-Encoding: chunked\r\nContent-Length: 0", &req), -400);
}

static void whitespace_before_a_colon_is_400(void)
{
    /* RFC 9112 section 5.1: a server MUST reject it, or "Content-Length : 5" smuggles a body. */
    struct http_request req;
    CHECK_EQ_INT(parse_with_header("Content-Length : 5", &req), -400);
    CHECK_EQ_INT(parse_with_header("Transfer-Encoding : chunked", &req), -400);
    CHECK_EQ_INT(parse_with_header("X-Other : v", &req), -400);
}

static void content_length_zero_has_no_body(void)
{
    static const char text[] = "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
    struct http_request req;
    CHECK_EQ_INT(parse(text, &req), strlen(text));
    CHECK(!req.has_body);
}

static void content_length_five_has_a_body(void)
{
    static const char head[] = "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
    static const char text[] = "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    struct http_request req;
    CHECK_EQ_INT(parse(text, &req), strlen(head)); /* the head only: a body is never read */
    CHECK(req.has_body);
    CHECK_EQ_INT(req.method, HTTP_REQ_OTHER);
}

static void transfer_encoding_has_a_body(void)
{
    static const char text[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct http_request req;
    CHECK_EQ_INT(parse(text, &req), strlen(text));
    CHECK(req.has_body);
}

/* ---- keep-alive -------------------------------------------------------------------------- */

static void keep_alive_follows_version_and_connection(void)
{
    struct http_request req;
    CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &req) > 0);
    CHECK(req.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", &req) > 0);
    CHECK(!req.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nconnection: Close\r\n\r\n", &req) > 0);
    CHECK(!req.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\n\r\n", &req) > 0);
    CHECK(!req.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &req) > 0);
    CHECK(req.keep_alive);
    CHECK_EQ_INT(req.version_minor, 0);
}

/* ---- header slices ----------------------------------------------------------------------- */

static void conditional_and_range_headers_are_slices_of_the_input(void)
{
    static const char text[] = "GET /r HTTP/1.1\r\n"
                               "Host: h\r\n"
                               "If-None-Match: \"abc\", W/\"def\"\r\n"
                               "if-modified-since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                               "RANGE: bytes=10-20\r\n"
                               "X-Other: bytes=0-0\r\n"
                               "\r\n";
    size_t len = strlen(text);
    struct http_request req;
    size_t scan = 0;
    const char *buf = place(text, len);
    CHECK_EQ_INT(http_parse_request(buf, len, &scan, &req), len);
    CHECK_MEM(req.if_none_match.p, req.if_none_match.len, "\"abc\", W/\"def\"");
    CHECK_MEM(req.if_modified_since.p, req.if_modified_since.len, "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK_MEM(req.range.p, req.range.len, "bytes=10-20");
    /* Slices, not copies: they point into the caller's buffer. */
    CHECK(req.range.p > buf && req.range.p + req.range.len < buf + len);
    CHECK(req.target.p == buf + 4);
}

/* ---- line ends: a bare CR is 400, a lone LF ends a line as CRLF would ---------------------- */

static const char sweep_head[] = "GET /a HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n"
                                 "If-Range: \"e\"\r\n\r\n";

static void bare_cr_anywhere_in_a_head_is_400(void)
{
    size_t len = strlen(sweep_head);
    char buf[128];
    struct http_request req;
    for (size_t i = 0; i < len; i++) { /* a CR inserted before byte i */
        memcpy(buf, sweep_head, i);
        buf[i] = '\r';
        memcpy(buf + i + 1, sweep_head + i, len - i);
        if (!CHECK_EQ_INT(parse_bytes(buf, len + 1, &req), -400))
            fprintf(stderr, "     CR inserted at %zu\n", i);
    }
    for (size_t i = 0; i < len; i++) { /* byte i replaced by a CR */
        if (sweep_head[i] == '\r')
            continue;
        memcpy(buf, sweep_head, len);
        buf[i] = '\r';
        if (!CHECK_EQ_INT(parse_bytes(buf, len, &req), -400))
            fprintf(stderr, "     byte %zu replaced by CR\n", i);
    }
}

static bool slices_equal(struct http_slice a, struct http_slice b)
{
    return a.len == b.len && (a.len == 0 || !memcmp(a.p, b.p, a.len));
}

/* Whatever a lone LF does at any place, a CRLF there does the same: no header can hide. */
static void lone_lf_anywhere_reads_as_crlf(void)
{
    size_t len = strlen(sweep_head);
    char lf[128], crlf[128];
    for (size_t i = 0; i <= len; i++) {
        if (i > 0 && sweep_head[i - 1] == '\r' && sweep_head[i] == '\n')
            continue; /* between CR and LF a CRLF would leave a bare CR */
        memcpy(lf, sweep_head, i);
        lf[i] = '\n';
        memcpy(lf + i + 1, sweep_head + i, len - i);
        memcpy(crlf, sweep_head, i);
        memcpy(crlf + i, "\r\n", 2);
        memcpy(crlf + i + 2, sweep_head + i, len - i);

        struct http_request a, b;
        char copy[128];
        int ra = parse_bytes(lf, len + 1, &a);
        memcpy(copy, arena_end - (len + 1), len + 1); /* keep a's slices valid */
        int rb = parse_bytes(crlf, len + 2, &b);
        bool same = ra > 0 && i < len ? rb == ra + 1 : rb == ra; /* at len: the next request */
        if (ra > 0 && rb > 0) {
            /* a's slices point into the arena, which b overwrote: rebase them on the copy. */
            const char *base = arena_end - (len + 1);
            struct http_slice *sa[] = {&a.target, &a.range, &a.if_range};
            for (size_t k = 0; k < 3; k++)
                if (sa[k]->p)
                    sa[k]->p = copy + (sa[k]->p - base);
            same = same && a.host_count == b.host_count && a.method == b.method &&
                   slices_equal(a.target, b.target) && slices_equal(a.range, b.range) &&
                   slices_equal(a.if_range, b.if_range);
        }
        if (!CHECK(same))
            fprintf(stderr, "     LF at %zu: %d, CRLF: %d\n", i, ra, rb);
    }
}

static void obs_fold_and_leading_whitespace_are_400(void)
{
    struct http_request req;
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: h\r\n Content-Length: 5\r\n\r\n", &req), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\nHost: h\n\tX: y\n\n", &req), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\n Host: h\r\n\r\n", &req), -400);
}

static void invalid_method_bytes_are_400_before_the_line_ends(void)
{
    struct http_request req;
    CHECK_EQ_INT(parse("G(T /", &req), -400);
    CHECK_EQ_INT(parse("\x16\x03\x01", &req), -400);
    CHECK_EQ_INT(parse("ABCDEFGHIJKLMNOPQRSTUVWXYZ", &req), -400); /* longer than any method */
    CHECK_EQ_INT(parse(" GET / HTTP/1.1", &req), -400);
    CHECK_EQ_INT(parse("GET /", &req), HTTP_PARTIAL);
    CHECK_EQ_INT(parse("\r\nGE", &req), HTTP_PARTIAL);
    CHECK_EQ_INT(parse("M-SEARCH * HT", &req), HTTP_PARTIAL);
}

/* ---- Host -------------------------------------------------------------------------------- */

static void host_syntax(void)
{
    static const char *good[] = {"h",     "example.com", "example.com:8080", "127.0.0.1:80",
                                 "[::1]", "[::1]:8080",  "[v1.x]",           "a%41b",
                                 "x:",    "a-b_c~d"};
    static const char *bad[] = {"a b",     "a/b",     "[::1", "x:notaport", "a\tb", "[]",
                                "a%4",     "a%zz",    "a@b",  "[::1]x",     "a?b",  "a#b",
                                "[::1]:x", "h:80:80", "a\"b", "a<b>",       "",     ":80"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!CHECK(http_host_is_valid(good[i], strlen(good[i]))))
            fprintf(stderr, "     \"%s\" rejected\n", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!CHECK(!http_host_is_valid(bad[i], strlen(bad[i]))))
            fprintf(stderr, "     \"%s\" accepted\n", bad[i]);
    struct http_request req;
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", &req), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.0\r\nHost: x:y\r\n\r\n", &req), -400);
    CHECK(parse("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", &req) > 0);
    /* RFC 9110 4.2.1: no http URI has an empty host, whatever the version. */
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n", &req), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nHost:   \r\n\r\n", &req), -400);
    CHECK_EQ_INT(parse("GET / HTTP/1.0\r\nHost: \r\n\r\n", &req), -400);
    CHECK(parse("GET / HTTP/1.1\r\nHost: h \t\r\n\r\n", &req) > 0);
}

/* RFC 9112 5: the whitespace around a field value is not part of it, for every field. */
static void field_values_are_trimmed(void)
{
    static const char text[] = "GET /r HTTP/1.1\r\n"
                               "Host: h \r\n"
                               "If-Match: \"a\" \t\r\n"
                               "If-Unmodified-Since:  Sun, 06 Nov 1994 08:49:37 GMT \r\n"
                               "If-None-Match:\t\"b\"\t\r\n"
                               "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT  \r\n"
                               "If-Range: \"c\" \r\n"
                               "Range: bytes=0-4 \r\n"
                               "Content-Length: 0 \r\n"
                               "\r\n";
    size_t len = strlen(text);
    struct http_request req;
    size_t scan = 0;
    CHECK_EQ_INT(http_parse_request(place(text, len), len, &scan, &req), len);
    CHECK_MEM(req.if_match.p, req.if_match.len, "\"a\"");
    CHECK_MEM(req.if_unmodified_since.p, req.if_unmodified_since.len,
              "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK_MEM(req.if_none_match.p, req.if_none_match.len, "\"b\"");
    CHECK_MEM(req.if_modified_since.p, req.if_modified_since.len, "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK_MEM(req.if_range.p, req.if_range.len, "\"c\"");
    CHECK_MEM(req.range.p, req.range.len, "bytes=0-4");
    CHECK(!req.has_body);
}

int main(void)
{
    guard_init();

    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {
#define CASE(fn) {#fn, fn}
        CASE(complete_request_returns_its_length),
        CASE(every_proper_prefix_is_partial),
        CASE(trickled_request_is_not_rescanned_from_the_start),
        CASE(pipelined_requests_are_taken_one_at_a_time),
        CASE(pipelined_request_followed_by_a_partial_one),
        CASE(bare_lf_line_endings_are_accepted),
        CASE(header_block_of_8192_bytes_is_accepted),
        CASE(complete_header_block_over_8192_is_431),
        CASE(incomplete_header_block_over_8192_is_431),
        CASE(target_of_4096_bytes_is_accepted),
        CASE(complete_request_with_target_over_4096_is_414),
        CASE(incomplete_request_line_over_the_limits_is_414),
        CASE(long_target_then_headers_past_8192_is_414),
        CASE(target_at_the_limit_in_an_oversized_block_is_431),
        CASE(nul_and_control_bytes_are_400),
        CASE(other_http_versions_are_400),
        CASE(unknown_method_token_is_400),
        CASE(methods_are_classified),
        CASE(http11_without_host_is_400),
        CASE(duplicate_host_is_400),
        CASE(many_host_headers_are_400),
        CASE(http10_without_host_is_accepted),
        CASE(malformed_content_length_is_400),
        CASE(whitespace_before_a_colon_is_400),
        CASE(content_length_zero_has_no_body),
        CASE(content_length_five_has_a_body),
        CASE(transfer_encoding_has_a_body),
        CASE(keep_alive_follows_version_and_connection),
        CASE(conditional_and_range_headers_are_slices_of_the_input),
        CASE(bare_cr_anywhere_in_a_head_is_400),
        CASE(lone_lf_anywhere_reads_as_crlf),
        CASE(obs_fold_and_leading_whitespace_are_400),
        CASE(invalid_method_bytes_are_400_before_the_line_ends),
        CASE(host_syntax),
        CASE(field_values_are_trimmed),
#undef CASE
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_case(cases[i].name);
        cases[i].run();
    }
    return check_report();
}
