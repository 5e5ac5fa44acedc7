/*
 * fuzz_request.c - libFuzzer target over the whole request path without
 * sockets: bytes -> http_parse_request() -> handler_prepare_response() ->
 * response plan, for every pipelined request in the input, then the plan's
 * invariants are checked. Build and run: make fuzz (FUZZ_SECS=60).
 */
#include <fcntl.h>
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

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static char out[CONN_OUT_CAP];
    if (root_fd < 0)
        make_root();

    /* An exact-size copy, so ASan sees any read past the input's end. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);

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
