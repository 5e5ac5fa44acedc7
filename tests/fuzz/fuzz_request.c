/*
 * fuzz_request.c - libFuzzer target over the whole request path without
 * sockets: bytes -> http_parse_request() -> handler_prepare_response() ->
 * response plan, for every pipelined request in the input, then the plan's
 * invariants are checked. Line ends get their own check: a head accepted by
 * the parser holds no bare CR, and with every lone LF made a CRLF it parses to
 * the same request (so no header can hide behind a lone LF); on its first
 * input the target also sweeps a CR and an LF through every position of a
 * head. Build and run: make fuzz (FUZZ_SECS=60).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "handler.h"
#include "http.h"

static int root_fd = -1;

/* A small root with the shapes the handler distinguishes: file, dir, index, link out. */
static void make_root(void)
{
    char dir[] = "/tmp/c10k-fuzz-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char path[256];
    snprintf(path, sizeof path, "%s/index.html", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs("<html>hello</html>\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/sub", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/a.txt", dir);
    f = fopen(path, "w");
    if (!f)
        abort();
    for (int i = 0; i < 5000; i++)
        fputc('a' + i % 26, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/out", dir);
    if (symlink("/etc", path) < 0)
        abort();
    root_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        abort();
}

static bool slice_same(struct http_slice a, struct http_slice b)
{
    if (!a.p || !b.p)
        return !a.p && !b.p;
    return a.len == b.len && !memcmp(a.p, b.p, a.len);
}

/* The line-end invariants for the first request in buf[0, len); aborts if one fails. */
static void check_line_ends(const char *buf, size_t len)
{
    size_t scan = 0;
    struct http_request req;
    int r = http_parse_request(buf, len, &scan, &req);
    for (int i = 0; i + 1 < r; i++) /* no bare CR in an accepted head */
        if (buf[i] == '\r' && buf[i + 1] != '\n')
            abort();
    if (r > 0 && buf[r - 1] == '\r')
        abort();

    size_t lone = 0, limit = r > 0 ? (size_t)r : len;
    for (size_t i = 0; i < limit; i++)
        lone += buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r');
    if (lone == 0 || (r <= 0 && r != -400 && r != HTTP_PARTIAL) ||
        limit + lone > HTTP_MAX_HEADER) /* the CRs alone would make it too long */
        return;
    /* Every lone LF in the head (or the whole input if none ended) made a CRLF. */
    char *crlf = malloc(len + lone);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (i < limit && buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
            crlf[n++] = '\r';
        crlf[n++] = buf[i];
    }
    size_t scan2 = 0;
    struct http_request req2;
    int r2 = http_parse_request(crlf, n, &scan2, &req2);
    if (r > 0) {
        if (r2 != r + (int)lone || req.host_count != req2.host_count || req.method != req2.method ||
            req.has_body != req2.has_body || !slice_same(req.target, req2.target) ||
            !slice_same(req.range, req2.range) || !slice_same(req.if_range, req2.if_range))
            abort();
    } else if (r == -400 && r2 > 0) {
        abort(); /* rejected with lone LFs, accepted with CRLFs: they do not agree */
    }
    free(crlf);
}

/* A CR, then an LF, inserted at every position of a head, through the invariants. */
static void sweep_line_ends(void)
{
    static const char head[] = "GET /sub/a.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n"
                               "If-Range: \"e\"\r\nContent-Length: 0\r\n\r\n";
    size_t len = sizeof head - 1;
    char buf[sizeof head + 1];
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i <= len; i++) {
            memcpy(buf, head, i);
            buf[i] = k ? '\n' : '\r';
            memcpy(buf + i + 1, head + i, len - i);
            check_line_ends(buf, len + 1);
        }
    }
}

/* libFuzzer's entry point, which its runtime calls and no header of ours declares. */
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static char out[CONN_OUT_CAP];
    if (root_fd < 0) {
        make_root();
        sweep_line_ends();
    }

    /* An exact-size copy, so ASan sees any read past the input's end. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);

    check_line_ends(buf, size);
    size_t off = 0;
    while (off < size) {
        size_t scan = 0;
        struct http_request req;
        struct response res;
        int r = http_parse_request(buf + off, size - off, &scan, &req);
        if (r == HTTP_PARTIAL)
            break;
        if (r < 0) {
            if (r != -400 && r != -414 && r != -431)
                abort();
            handler_prepare_error(-r, false, out, sizeof out, &res);
        } else {
            if ((size_t)r > size - off || req.target.p < buf + off ||
                req.target.p + req.target.len > buf + off + (size_t)r)
                abort();
            handler_prepare_response(root_fd, &req, out, sizeof out, &res);
        }
        /* The plan's invariants: a head was written, and a body is one thing or none. */
        if (res.head_len == 0 || res.head_len > sizeof out || memcmp(out, "HTTP/1.1 ", 9) != 0)
            abort();
        if (res.body && res.file_fd >= 0)
            abort();
        if (res.file_fd >= 0 && res.file_len == 0)
            abort();
        handler_release(&res);
        if (r < 0)
            break;
        off += (size_t)r;
    }
    free(buf);
    return 0;
}
