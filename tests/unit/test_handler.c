/*
 * test_handler.c - the static-file handler: paths, ranges, types, and whole response plans.
 *
 * The plans are made against a temporary root built here (files, a directory
 * with and without index.html, a FIFO, symlinks in and out), from requests
 * parsed by http_parse_request(), as the servers make them. The open-file
 * cache keeps fds of the files it has seen, so the fd check allows exactly
 * those (fds into the temporary root) and otherwise wants no fd left over.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "files.h"
#include "handler.h"
#include "http.h"

#define OUT_CAP 2048                /* what conn.c gives the handler */
#define SMALL_TEXT "hello, world\n" /* small.txt: 13 bytes */
#define BIG_SIZE 100000             /* big.bin: over FILES_SMALL_MAX, so sent from its fd */
#define FILE_MTIME 784111777        /* every file's mtime: Sun, 06 Nov 1994 08:49:37 GMT */

static char root_path[64];
static int root_fd = -1;
static char long_path[400]; /* a path too long for the cache: opened uncached */

/* ---- the temporary root ------------------------------------------------------------------ */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void write_file(const char *rel, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root_path, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        die(path);
    struct timespec times[2] = {{FILE_MTIME, 0}, {FILE_MTIME, 0}};
    if (futimens(fd, times) < 0)
        die("futimens");
    close(fd);
}

static void make_dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root_path, rel);
    if (mkdir(path, 0755) < 0)
        die(path);
}

static void make_symlink(const char *target, const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root_path, rel);
    if (symlink(target, path) < 0)
        die(path);
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&t, NULL);
}

/* Returns just after the wall clock's second changes. */
static void wait_for_a_new_second(void)
{
    time_t start = time(NULL);
    while (time(NULL) == start)
        sleep_ms(1);
}

static unsigned char big_byte(size_t i)
{
    return (unsigned char)(i * 7 + i / 251);
}

static void root_create(void)
{
    strcpy(root_path, "/tmp/c10k-test-handler-XXXXXX");
    if (!mkdtemp(root_path))
        die("mkdtemp");

    write_file("index.html", "<h1>root</h1>\n", 14);
    write_file("small.txt", SMALL_TEXT, strlen(SMALL_TEXT));
    write_file("empty.txt", "", 0);
    write_file("a b.txt", "spaced\n", 7);
    write_file("style.css", "p{}\n", 4);

    unsigned char *big = malloc(BIG_SIZE);
    for (size_t i = 0; i < BIG_SIZE; i++)
        big[i] = big_byte(i);
    write_file("big.bin", big, BIG_SIZE);
    free(big);

    make_dir("dir");
    write_file("dir/index.html", "<h1>dir</h1>\n", 13);
    make_dir("noindex");
    write_file("noindex/other.txt", "x\n", 2);

    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", root_path);
    if (mkfifo(fifo, 0644) < 0)
        die("mkfifo");

    make_symlink("/etc/passwd", "out-file");
    make_symlink("/etc", "out-dir");
    make_symlink("../../../../../../etc/passwd", "out-relative");
    make_symlink("small.txt", "inside");

    /* "long/xxx...x/yyy...y.txt": over the cache's 256-byte path limit. */
    char a[201], b[101];
    memset(a, 'x', 200);
    a[200] = '\0';
    memset(b, 'y', 100);
    b[100] = '\0';
    make_dir("long");
    snprintf(long_path, sizeof long_path, "long/%s", a);
    make_dir(long_path);
    snprintf(long_path, sizeof long_path, "long/%s/%s.txt", a, b);
    write_file(long_path, SMALL_TEXT, strlen(SMALL_TEXT));

    root_fd = open(root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        die(root_path);
}

static void root_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root_path);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root_path);
}

/* ---- fds --------------------------------------------------------------------------------- */

#define MAX_FDS 1024

/* Marks open_fds[fd] for each open fd (but the one listing them); returns how many. */
static int list_fds(bool open_fds[MAX_FDS])
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    memset(open_fds, 0, MAX_FDS);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == dirfd(d) || fd >= MAX_FDS)
            continue;
        open_fds[fd] = true;
        n++;
    }
    closedir(d);
    return n;
}

static bool fd_is_under_root(int fd)
{
    char link[64], target[512];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0)
        return false;
    target[n] = '\0';
    size_t root_len = strlen(root_path);
    return !strncmp(target, root_path, root_len) && target[root_len] == '/';
}

/* ---- asking the handler ------------------------------------------------------------------ */

/*
 * The last answer. Each prepare() gives the previous plan back (handler_release)
 * before making the next; main() gives back the last one.
 */
static char request_text[16384]; /* the request's slices point here */
static char out[OUT_CAP];
static struct response res;
static bool res_held;
static size_t head_end; /* bytes of out up to and including the blank line; 0 if none */

static void check_common_headers(void);

/* Gives back the last plan, if one is held. */
static void release(void)
{
    if (res_held)
        handler_release(&res);
    res_held = false;
}

/*
 * Parses request_head (the final blank line is added) and plans its answer,
 * checking nothing. Returns the status, or -1 if the request did not parse.
 */
static int prepare(const char *request_head)
{
    release();
    snprintf(request_text, sizeof request_text, "%s\r\n\r\n", request_head);

    struct http_request req;
    size_t scan = 0, len = strlen(request_text);
    if (http_parse_request(request_text, len, &scan, &req) != (int)len)
        return -1;
    memset(out, 0, sizeof out);
    handler_prepare_response(root_fd, &req, out, sizeof out, &res);
    res_held = true;

    const char *blank = memmem(out, res.head_len, "\r\n\r\n", 4);
    head_end = blank ? (size_t)(blank - out) + 4 : 0;
    return res.status;
}

/* prepare(), then the checks every answer must pass. */
static int ask(const char *request_head)
{
    int status = prepare(request_head);
    if (!CHECK(status > 0)) {
        fprintf(stderr, "     request \"%s\" did not parse\n", request_head);
        return -1;
    }
    check_common_headers();
    return status;
}

/* The value of header name in the last answer's head, as a C string; NULL if absent. */
static const char *header(const char *name)
{
    static char value[256];
    size_t name_len = strlen(name);
    const char *p = memchr(out, '\n', head_end); /* skip the status line */
    while (p && (size_t)(p + 1 - out) < head_end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\r', head_end - (size_t)(line - out));
        if (!eol)
            break;
        if ((size_t)(eol - line) > name_len + 1 && !strncasecmp(line, name, name_len) &&
            line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (*v == ' ')
                v++;
            snprintf(value, sizeof value, "%.*s", (int)(eol - v), v);
            return value;
        }
        p = eol + 1;
    }
    return NULL;
}

/* How many lines of the last head start with "name:". */
static int header_count(const char *name)
{
    char needle[64];
    int n = 0;
    snprintf(needle, sizeof needle, "\r\n%s:", name);
    const char *p = out, *end = out + head_end;
    while ((p = memmem(p, (size_t)(end - p), needle, strlen(needle)))) {
        n++;
        p += strlen(needle);
    }
    return n;
}

/* The bytes in the head buffer after the blank line: an error's body. */
static size_t inline_body_len(void)
{
    return head_end ? res.head_len - head_end : 0;
}

/* What every answer must have, whatever its status. */
static void check_common_headers(void)
{
    char status_line[64];
    snprintf(status_line, sizeof status_line, "HTTP/1.1 %d ", res.status);
    CHECK(res.head_len > 0 && res.head_len <= OUT_CAP);
    CHECK(head_end > 0);
    CHECK(!strncmp(out, status_line, strlen(status_line)));
    const char *date = header("Date");
    CHECK(date && strlen(date) == HTTP_DATE_LEN);
    CHECK_STR(header("Server"), "c10k/" C10K_VERSION);
    CHECK_EQ_INT(header_count("Content-Length"), 1);
    /* "Connection: close" exactly when the connection will close. */
    const char *connection = header("Connection");
    CHECK(res.close == (connection && !strcmp(connection, "close")));
}

/* Checks the last answer is an error: text/plain, its length, its body, no file. */
static void check_error(int status, bool head_only)
{
    CHECK_EQ_INT(res.status, status);
    CHECK_STR(header("Content-Type"), "text/plain");
    const char *cl = header("Content-Length");
    CHECK(cl && atoi(cl) > 0);
    if (head_only)
        CHECK_EQ_INT(inline_body_len(), 0);
    else if (cl)
        CHECK_EQ_INT(inline_body_len(), atoi(cl));
    CHECK_EQ_INT(res.file_fd, -1);
    CHECK(res.body == NULL && res.body_len == 0);
}

/* The body the plan sends after the head (memory or file), malloc'd; *len is -1 on a short read. */
static char *plan_body(size_t *len)
{
    *len = res.body ? res.body_len : res.file_fd >= 0 ? (size_t)res.file_len : 0;
    char *b = malloc(*len + 1);
    if (res.body)
        memcpy(b, res.body, *len);
    else if (res.file_fd >= 0 && pread(res.file_fd, b, *len, res.file_off) != (ssize_t)*len)
        *len = (size_t)-1;
    return b;
}

/* Checks the plan sends exactly want[0, want_len) after the head. */
static void check_plan_body(const void *want, size_t want_len)
{
    size_t len;
    char *b = plan_body(&len);
    CHECK_EQ_INT(len, want_len);
    CHECK(len == want_len && !memcmp(b, want, len));
    CHECK_EQ_INT(inline_body_len(), 0);
    free(b);
}

static void check_no_plan(void)
{
    CHECK_EQ_INT(res.file_fd, -1);
    CHECK(res.body == NULL && res.body_len == 0);
    CHECK_EQ_INT(inline_body_len(), 0);
}

static char *big_bytes(size_t off, size_t len)
{
    char *b = malloc(len);
    for (size_t i = 0; i < len; i++)
        b[i] = (char)big_byte(off + i);
    return b;
}

/* ---- handler_normalize_path -------------------------------------------------------------- */

static void normalizes_to(const char *target, const char *want)
{
    char path[HTTP_MAX_TARGET + 2] = "untouched";
    int r = handler_normalize_path(target, strlen(target), path, sizeof path);
    if (!CHECK_EQ_INT(r, 0) || !CHECK_STR(path, want))
        fprintf(stderr, "     target \"%s\"\n", target);
}

static void normalize_rejects(const char *target)
{
    char path[HTTP_MAX_TARGET + 2];
    if (!CHECK_EQ_INT(handler_normalize_path(target, strlen(target), path, sizeof path), -400))
        fprintf(stderr, "     target \"%s\"\n", target);
}

static void normalize_merges_slashes_and_dots(void)
{
    normalizes_to("//////index.html", "index.html");
    normalizes_to("/", ".");
    normalizes_to("/.", ".");
    normalizes_to("/./", ".");
    normalizes_to("/a/./b/../c", "a/c");
    normalizes_to("/a/b/..", "a/");
    normalizes_to("/a/b/../..", ".");
    normalizes_to("/a//b///c/", "a/b/c/");
    normalizes_to("/..a/b..", "..a/b..");
}

/* A path ending in "/", "/." or "/.." names a directory: the slash stays, so that
 * opening a file through it fails (/small.txt/ is 404, as in nginx). */
static void normalize_keeps_a_trailing_slash(void)
{
    normalizes_to("/small.txt/", "small.txt/");
    normalizes_to("/small.txt//", "small.txt/");
    normalizes_to("/small.txt/.", "small.txt/");
    normalizes_to("/a/b/.", "a/b/");
    normalizes_to("/a/b/c/..", "a/b/");
    normalizes_to("/a/b/../", "a/");
    normalizes_to("/a/.b", "a/.b");
    normalizes_to("/a/..b", "a/..b");
    normalizes_to("/a/?q=/", "a/");
    normalizes_to("/a?q=/", "a");
    normalizes_to("/a%2F", "a/");
    normalizes_to("http://host/a/", "a/");
}

static void normalize_refuses_to_climb_above_the_root(void)
{
    normalize_rejects("/../x");
    normalize_rejects("/..");
    normalize_rejects("/%2e%2e/x");
    normalize_rejects("/%2E%2E/x");
    normalize_rejects("/.%2e/x");
    normalize_rejects("/a/../../x");
    normalize_rejects("/a%2F..%2F..%2Fx");
}

static void normalize_rejects_bad_escapes(void)
{
    normalize_rejects("/foo%");
    normalize_rejects("/foo%4");
    normalize_rejects("/%zz");
    normalize_rejects("/%4g");
    normalize_rejects("/%00x");
}

static void normalize_decodes_once(void)
{
    normalizes_to("/a%20b", "a b");
    normalizes_to("/%41%62c", "Abc");
    normalizes_to("/a%2Fb", "a/b");
    normalizes_to("/%2F", ".");
    normalizes_to("/%2F%2Fx", "x");
    normalizes_to("/%252e%252e/x", "%2e%2e/x"); /* once: %25 becomes "%", nothing more */
}

static void normalize_drops_query_and_fragment(void)
{
    normalizes_to("/x?a=1", "x");
    normalizes_to("/x?a=../../b", "x");
    normalizes_to("/x#frag", "x");
    normalizes_to("/d/x?q#f", "d/x");
    normalizes_to("/x%3Fy", "x?y"); /* an encoded "?" is part of the name */
}

static void normalize_takes_the_path_of_an_absolute_form(void)
{
    normalizes_to("http://host/x", "x");
    normalizes_to("HTTP://host:8080/a/b", "a/b");
    normalizes_to("https://host/y", "y");
    normalizes_to("http://host", ".");
    normalize_rejects("http://host/../x");
}

static void normalize_rejects_other_forms(void)
{
    normalize_rejects("*");
    normalize_rejects("");
    normalize_rejects("x");
    normalize_rejects("host:80");
}

static void normalize_respects_the_output_size(void)
{
    char path[8];
    memset(path, 'z', sizeof path);
    CHECK_EQ_INT(handler_normalize_path("/abcdefghij", 11, path, sizeof path), -400);
    CHECK_EQ_INT(handler_normalize_path("/abcdef", 7, path, sizeof path), 0);
    CHECK_STR(path, "abcdef");
    /* The trailing slash needs its byte too. */
    CHECK_EQ_INT(handler_normalize_path("/a/abcde/", 9, path, sizeof path), -400);
    CHECK_EQ_INT(handler_normalize_path("/a/abcd/", 8, path, sizeof path), 0);
    CHECK_STR(path, "a/abcd/");
}

/* ---- handler_parse_range ----------------------------------------------------------------- */

static void range_is(const char *v, uint64_t size, int want, uint64_t want_off, uint64_t want_n)
{
    uint64_t off = 12345, n = 12345;
    int r = handler_parse_range(v, strlen(v), size, &off, &n);
    bool ok = CHECK_EQ_INT(r, want);
    if (want == 1) {
        ok = CHECK_EQ_INT(off, want_off) && ok;
        ok = CHECK_EQ_INT(n, want_n) && ok;
    }
    if (!ok)
        fprintf(stderr, "     range \"%s\" on %llu bytes\n", v, (unsigned long long)size);
}

static void range_single_forms(void)
{
    range_is("bytes=0-4", 10, 1, 0, 5);
    range_is("bytes=2-2", 10, 1, 2, 1);
    range_is("bytes=9-9", 10, 1, 9, 1);
    range_is("bytes=5-", 10, 1, 5, 5);
    range_is("bytes=0-", 10, 1, 0, 10);
    range_is("bytes=-3", 10, 1, 7, 3);
    range_is("bytes=-10", 10, 1, 0, 10);
    range_is("Bytes=1-2", 10, 1, 1, 2); /* the unit is case-insensitive */
}

static void range_is_clamped_to_the_size(void)
{
    range_is("bytes=5-100", 10, 1, 5, 5);
    range_is("bytes=0-9999999", 10, 1, 0, 10);
    range_is("bytes=-20", 10, 1, 0, 10);
}

static void range_unsatisfiable_is_416(void)
{
    range_is("bytes=10-", 10, -416, 0, 0);
    range_is("bytes=10-20", 10, -416, 0, 0);
    range_is("bytes=-0", 10, -416, 0, 0);
    range_is("bytes=0-", 0, -416, 0, 0);
    range_is("bytes=-0", 0, -416, 0, 0);
}

/* RFC 9110 14.1.1: a non-zero suffix length is satisfiable, even on an empty file; the
 * answer is then the whole (empty) file, a 200, as nginx gives. */
static void range_suffix_of_an_empty_file_is_ignored(void)
{
    range_is("bytes=-5", 0, 0, 0, 0);
    range_is("bytes=-1", 0, 0, 0, 0);
}

static void range_multi_or_malformed_is_ignored(void)
{
    static const char *ignored[] = {
        "bytes=0-1,3-4", "bytes=0-1, 3-4", "bytes=",    "bytes",       "bytes=-",
        "bytes=x-1",     "bytes=1-x",      "bytes=5-2", "bytes=1",     "bytes=--1",
        "bytes=0-1 ",    "bytes= 0-1",     "items=0-1", "bytes=1-2-3", "",
    };
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        range_is(ignored[i], 10, 0, 0, 0);
}

static void range_overflowing_digits_are_ignored(void)
{
    range_is("bytes=99999999999999999999-", 10, 0, 0, 0);
    range_is("bytes=0-99999999999999999999", 10, 0, 0, 0);
    range_is("bytes=-99999999999999999999", 10, 0, 0, 0);
    range_is("bytes=18446744073709551616-", 10, 0, 0, 0);
}

/* ---- files_mime_type ------------------------------------------------------------------- */

static void mime_type_for_every_spec_extension(void)
{
    CHECK_STR(files_mime_type("a.html"), "text/html");
    CHECK_STR(files_mime_type("a.css"), "text/css");
    CHECK_STR(files_mime_type("a.js"), "text/javascript");
    CHECK_STR(files_mime_type("a.json"), "application/json");
    CHECK_STR(files_mime_type("a.txt"), "text/plain");
    CHECK_STR(files_mime_type("a.svg"), "image/svg+xml");
    CHECK_STR(files_mime_type("a.png"), "image/png");
    CHECK_STR(files_mime_type("a.jpg"), "image/jpeg");
    CHECK_STR(files_mime_type("a.gif"), "image/gif");
    CHECK_STR(files_mime_type("a.ico"), "image/x-icon");
    CHECK_STR(files_mime_type("a.wasm"), "application/wasm");
    CHECK_STR(files_mime_type("a.pdf"), "application/pdf");
    CHECK_STR(files_mime_type("a.woff2"), "font/woff2");
}

static void mime_type_unknown_or_missing_extension(void)
{
    CHECK_STR(files_mime_type("a.bin"), "application/octet-stream");
    CHECK_STR(files_mime_type("Makefile"), "application/octet-stream");
    CHECK_STR(files_mime_type("a.html.gz"), "application/octet-stream");
    CHECK_STR(files_mime_type("dir.html/file"), "application/octet-stream");
    CHECK_STR(files_mime_type("a."), "application/octet-stream");
    CHECK_STR(files_mime_type("a.woff"), "application/octet-stream");
    CHECK_STR(files_mime_type("."), "application/octet-stream");
}

static void mime_type_ignores_case(void)
{
    CHECK_STR(files_mime_type("INDEX.HTML"), "text/html");
    CHECK_STR(files_mime_type("d/App.Js"), "text/javascript");
    CHECK_STR(files_mime_type("photo.JPG"), "image/jpeg");
}

/* ---- handler_prepare_response: 200 ------------------------------------------------------- */

static void small_file_is_200_with_its_headers(void)
{
    char last_modified[HTTP_DATE_LEN + 1];
    clock_format_http_date(FILE_MTIME, last_modified);

    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h"), 200);
    CHECK(!strncmp(out, "HTTP/1.1 200 OK\r\n", 17));
    CHECK_STR(header("Content-Length"), "13");
    CHECK_STR(header("Content-Type"), "text/plain");
    CHECK_STR(header("Last-Modified"), last_modified);
    CHECK_STR(header("Accept-Ranges"), "bytes");
    const char *etag = header("ETag");
    CHECK(etag && strlen(etag) > 2 && etag[0] == '"' && etag[strlen(etag) - 1] == '"');
    CHECK(!res.close);
    CHECK(header("Connection") == NULL);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
}

static void big_file_is_a_file_plan(void)
{
    CHECK_EQ_INT(ask("GET /big.bin HTTP/1.1\r\nHost: h"), 200);
    CHECK_STR(header("Content-Length"), "100000");
    CHECK_STR(header("Content-Type"), "application/octet-stream");
    CHECK(res.file_fd >= 0);
    CHECK_EQ_INT(res.file_off, 0);
    CHECK_EQ_INT(res.file_len, BIG_SIZE);
    CHECK(res.body == NULL);
    char *want = big_bytes(0, BIG_SIZE);
    check_plan_body(want, BIG_SIZE);
    free(want);
}

static void etag_differs_between_files(void)
{
    char small_etag[64];
    ask("GET /small.txt HTTP/1.1\r\nHost: h");
    snprintf(small_etag, sizeof small_etag, "%s", header("ETag") ? header("ETag") : "");
    ask("GET /big.bin HTTP/1.1\r\nHost: h");
    CHECK(header("ETag") && strcmp(header("ETag"), small_etag) != 0);
}

static void empty_file_is_200_with_no_body(void)
{
    CHECK_EQ_INT(ask("GET /empty.txt HTTP/1.1\r\nHost: h"), 200);
    CHECK_STR(header("Content-Length"), "0");
    check_no_plan();
}

static void content_type_follows_the_extension(void)
{
    ask("GET /style.css HTTP/1.1\r\nHost: h");
    CHECK_STR(header("Content-Type"), "text/css");
    ask("GET /index.html HTTP/1.1\r\nHost: h");
    CHECK_STR(header("Content-Type"), "text/html");
}

static void encoded_name_is_served(void)
{
    CHECK_EQ_INT(ask("GET /a%20b.txt?x=1 HTTP/1.1\r\nHost: h"), 200);
    check_plan_body("spaced\n", 7);
}

static void directory_serves_its_index(void)
{
    CHECK_EQ_INT(ask("GET / HTTP/1.1\r\nHost: h"), 200);
    CHECK_STR(header("Content-Type"), "text/html");
    check_plan_body("<h1>root</h1>\n", 14);

    CHECK_EQ_INT(ask("GET /dir/ HTTP/1.1\r\nHost: h"), 200);
    CHECK_STR(header("Content-Type"), "text/html");
    CHECK_STR(header("Content-Length"), "13");
    check_plan_body("<h1>dir</h1>\n", 13);

    CHECK_EQ_INT(ask("GET /dir HTTP/1.1\r\nHost: h"), 200);
    CHECK_STR(header("Content-Type"), "text/html");
    check_plan_body("<h1>dir</h1>\n", 13);
}

static void uncached_long_path_is_served(void)
{
    char request[512];
    snprintf(request, sizeof request, "GET /%s HTTP/1.1\r\nHost: h", long_path);
    CHECK_EQ_INT(ask(request), 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
}

static void symlink_inside_the_root_is_served(void)
{
    CHECK_EQ_INT(ask("GET /inside HTTP/1.1\r\nHost: h"), 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
}

/* ---- 4xx for paths ----------------------------------------------------------------------- */

static void missing_file_is_404(void)
{
    CHECK_EQ_INT(ask("GET /missing.txt HTTP/1.1\r\nHost: h"), 404);
    check_error(404, false);
    CHECK(!res.close); /* a 404 keeps the connection */
    CHECK_EQ_INT(ask("GET /small.txt/x HTTP/1.1\r\nHost: h"), 404);
    check_error(404, false);
}

static void directory_without_index_is_404(void)
{
    CHECK_EQ_INT(ask("GET /noindex/ HTTP/1.1\r\nHost: h"), 404);
    check_error(404, false);
}

static void fifo_is_404_without_hanging(void)
{
    /* main() set an alarm: a handler that blocks opening the FIFO kills the test. */
    CHECK_EQ_INT(ask("GET /fifo HTTP/1.1\r\nHost: h"), 404);
    check_error(404, false);
}

static void symlinks_out_of_the_root_are_refused(void)
{
    static const char *targets[] = {"/out-file", "/out-dir", "/out-dir/passwd", "/out-relative",
                                    "/..\\..\\etc\\passwd"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char request[128];
        snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: h", targets[i]);
        int status = ask(request);
        if (!CHECK(status == 403 || status == 404))
            fprintf(stderr, "     target %s gave %d\n", targets[i], status);
        CHECK_EQ_INT(res.file_fd, -1);
        CHECK(res.body == NULL);
        check_error(status, false);
    }
}

static void dot_dot_targets_are_400(void)
{
    CHECK_EQ_INT(ask("GET /../etc/passwd HTTP/1.1\r\nHost: h"), 400);
    check_error(400, false);
    CHECK(res.close);
    CHECK_EQ_INT(ask("GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: h"), 400);
    check_error(400, false);
}

/* ---- methods and bodies ------------------------------------------------------------------ */

static void post_is_405_with_allow(void)
{
    CHECK_EQ_INT(ask("POST /small.txt HTTP/1.1\r\nHost: h"), 405);
    check_error(405, false);
    CHECK_STR(header("Allow"), "GET, HEAD");
    CHECK_EQ_INT(ask("DELETE /small.txt HTTP/1.1\r\nHost: h"), 405);
    CHECK_STR(header("Allow"), "GET, HEAD");
}

static void post_with_a_body_is_405_then_close(void)
{
    CHECK_EQ_INT(ask("POST /small.txt HTTP/1.1\r\nHost: h\r\nContent-Length: 5"), 405);
    check_error(405, false);
    CHECK(res.close); /* the body is never read: the stream cannot go on */
}

static void request_with_a_body_is_413_then_close(void)
{
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nContent-Length: 5"), 413);
    check_error(413, false);
    CHECK(res.close);
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"), 413);
    check_error(413, false);
    CHECK(res.close);
}

static void head_has_the_headers_of_get_and_no_body(void)
{
    static const char *names[] = {"Content-Length", "Content-Type",  "Last-Modified",
                                  "ETag",           "Accept-Ranges", "Server"};
    static const char *paths[] = {"/small.txt", "/big.bin"};
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        char get_values[6][128], request[128];
        snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: h", paths[p]);
        ask(request);
        for (size_t i = 0; i < 6; i++)
            snprintf(get_values[i], sizeof get_values[i], "%s",
                     header(names[i]) ? header(names[i]) : "-");

        snprintf(request, sizeof request, "HEAD %s HTTP/1.1\r\nHost: h", paths[p]);
        CHECK_EQ_INT(ask(request), 200);
        for (size_t i = 0; i < 6; i++)
            if (!CHECK_STR(header(names[i]), get_values[i]))
                fprintf(stderr, "     header %s of HEAD %s\n", names[i], paths[p]);
        check_no_plan();
    }
}

static void head_of_an_error_has_no_body(void)
{
    CHECK_EQ_INT(ask("HEAD /missing.txt HTTP/1.1\r\nHost: h"), 404);
    check_error(404, true);
}

/* ---- keep-alive -------------------------------------------------------------------------- */

static void connection_header_follows_keep_alive(void)
{
    ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nConnection: close");
    CHECK(res.close);
    CHECK_STR(header("Connection"), "close");
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));

    ask("GET /small.txt HTTP/1.0");
    CHECK(res.close);
    CHECK_STR(header("Connection"), "close");

    ask("GET /small.txt HTTP/1.0\r\nConnection: keep-alive");
    CHECK(!res.close);
    CHECK_STR(header("Connection"), "keep-alive");

    ask("GET /missing HTTP/1.0\r\nConnection: keep-alive");
    CHECK(!res.close);
    CHECK_STR(header("Connection"), "keep-alive");
}

/* ---- conditionals ------------------------------------------------------------------------ */

/* The ETag of small.txt, as the handler sends it. */
static void small_etag(char *etag, size_t cap)
{
    ask("GET /small.txt HTTP/1.1\r\nHost: h");
    snprintf(etag, cap, "%s", header("ETag") ? header("ETag") : "\"none\"");
}

static void check_304(void)
{
    CHECK_EQ_INT(res.status, 304);
    CHECK(header("ETag") != NULL);
    check_no_plan();
}

static void if_none_match_gives_304(void)
{
    char etag[64], request[256];
    small_etag(etag, sizeof etag);

    snprintf(request, sizeof request, "GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: %s",
             etag);
    CHECK_EQ_INT(ask(request), 304);
    check_304();
    CHECK_STR(header("ETag"), etag);

    snprintf(request, sizeof request,
             "GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"other\", %s , \"x\"", etag);
    CHECK_EQ_INT(ask(request), 304);

    snprintf(request, sizeof request, "GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: W/%s",
             etag);
    CHECK_EQ_INT(ask(request), 304);

    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: *"), 304);
    check_304();

    snprintf(request, sizeof request, "HEAD /small.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: %s",
             etag);
    CHECK_EQ_INT(ask(request), 304);
    check_no_plan();
}

static void if_none_match_mismatch_is_200(void)
{
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"nope\""), 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"nope\", W/\"no\""),
                 200);
}

static void if_modified_since_gives_304_unless_older(void)
{
    char date[HTTP_DATE_LEN + 1], request[256];

    clock_format_http_date(FILE_MTIME, date);
    snprintf(request, sizeof request, "GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: %s",
             date);
    CHECK_EQ_INT(ask(request), 304);
    check_304();

    clock_format_http_date(FILE_MTIME + 86400, date);
    snprintf(request, sizeof request, "GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: %s",
             date);
    CHECK_EQ_INT(ask(request), 304);

    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\n"
                     "If-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT"),
                 304);

    clock_format_http_date(FILE_MTIME - 1, date);
    snprintf(request, sizeof request, "GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: %s",
             date);
    CHECK_EQ_INT(ask(request), 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));

    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-Modified-Since: yesterday"), 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
}

static void if_none_match_wins_over_if_modified_since(void)
{
    char date[HTTP_DATE_LEN + 1], request[256];
    clock_format_http_date(FILE_MTIME, date);
    snprintf(request, sizeof request,
             "GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"nope\"\r\n"
             "If-Modified-Since: %s",
             date);
    CHECK_EQ_INT(ask(request), 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
}

/* ---- ranges ------------------------------------------------------------------------------ */

static void range_gives_206_from_memory(void)
{
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=0-4"), 206);
    CHECK(!strncmp(out, "HTTP/1.1 206 Partial Content\r\n", 30));
    CHECK_STR(header("Content-Range"), "bytes 0-4/13");
    CHECK_STR(header("Content-Length"), "5");
    CHECK_STR(header("Content-Type"), "text/plain");
    check_plan_body("hello", 5);

    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=-6"), 206);
    CHECK_STR(header("Content-Range"), "bytes 7-12/13");
    check_plan_body("world\n", 6);
}

static void range_gives_206_from_the_file(void)
{
    CHECK_EQ_INT(ask("GET /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=1000-"), 206);
    CHECK_STR(header("Content-Range"), "bytes 1000-99999/100000");
    CHECK_STR(header("Content-Length"), "99000");
    CHECK(res.file_fd >= 0);
    CHECK_EQ_INT(res.file_off, 1000);
    CHECK_EQ_INT(res.file_len, 99000);
    char *want = big_bytes(1000, 99000);
    check_plan_body(want, 99000);
    free(want);

    CHECK_EQ_INT(ask("GET /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=-100"), 206);
    CHECK_EQ_INT(res.file_off, BIG_SIZE - 100);
    CHECK_EQ_INT(res.file_len, 100);
    CHECK_STR(header("Content-Range"), "bytes 99900-99999/100000");

    CHECK_EQ_INT(ask("GET /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=50000-50009"), 206);
    CHECK_EQ_INT(res.file_off, 50000);
    CHECK_EQ_INT(res.file_len, 10);
    want = big_bytes(50000, 10);
    check_plan_body(want, 10);
    free(want);
}

static void head_with_range_has_no_body(void)
{
    CHECK_EQ_INT(ask("HEAD /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9"), 206);
    CHECK_STR(header("Content-Length"), "10");
    CHECK_STR(header("Content-Range"), "bytes 0-9/100000");
    check_no_plan();
}

static void unsatisfiable_range_is_416(void)
{
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=13-"), 416);
    check_error(416, false);
    CHECK_STR(header("Content-Range"), "bytes */13");

    CHECK_EQ_INT(ask("GET /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=-0"), 416);
    check_error(416, false);
    CHECK_STR(header("Content-Range"), "bytes */100000");

    CHECK_EQ_INT(ask("GET /empty.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=0-"), 416);
    CHECK_STR(header("Content-Range"), "bytes */0");

    CHECK_EQ_INT(ask("HEAD /small.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=100-200"), 416);
    check_error(416, true);
}

static void multi_or_malformed_range_is_200(void)
{
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1,3-4"), 200);
    CHECK(header("Content-Range") == NULL);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nRange: pages=1"), 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
}

static void not_modified_wins_over_range(void)
{
    char etag[64], request[256];
    small_etag(etag, sizeof etag);
    snprintf(request, sizeof request,
             "GET /small.txt HTTP/1.1\r\nHost: h\r\nIf-None-Match: %s\r\nRange: bytes=0-1", etag);
    CHECK_EQ_INT(ask(request), 304);
    check_304();
}

/* ---- the open-file cache ----------------------------------------------------------------- */

static void each_root_serves_its_own_files(void)
{
    /* The handler resolves beneath the root it is given, whatever it served before. */
    make_dir("other-root");
    write_file("other-root/small.txt", "other\n", 6);
    char path[512];
    snprintf(path, sizeof path, "%s/other-root", root_path);
    int other_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!CHECK(other_fd >= 0))
        return;

    /* Both requests in one second, when the cache trusts what it saw without a look. */
    wait_for_a_new_second();
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h"), 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
    int main_root = root_fd;
    root_fd = other_fd;
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h"), 200);
    check_plan_body("other\n", 6);
    CHECK_EQ_INT(ask("GET /big.bin HTTP/1.1\r\nHost: h"), 404);
    release();
    root_fd = main_root;
    close(other_fd);
}

static void cache_notices_changes_after_a_second(void)
{
    /* A replaced file and a symlink swapped to lead out are both seen anew. */
    write_file("changing.txt", "before\n", 7);
    make_symlink("small.txt", "swapped");
    CHECK_EQ_INT(ask("GET /changing.txt HTTP/1.1\r\nHost: h"), 200);
    check_plan_body("before\n", 7);
    CHECK_EQ_INT(ask("GET /swapped HTTP/1.1\r\nHost: h"), 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
    release();

    write_file("changing.txt", "after, longer\n", 14);
    char path[512];
    snprintf(path, sizeof path, "%s/swapped", root_path);
    unlink(path);
    make_symlink("/etc/passwd", "swapped");
    sleep_ms(1100);

    CHECK_EQ_INT(ask("GET /changing.txt HTTP/1.1\r\nHost: h"), 200);
    CHECK_STR(header("Content-Length"), "14");
    check_plan_body("after, longer\n", 14);
    int status = ask("GET /swapped HTTP/1.1\r\nHost: h");
    CHECK(status == 403 || status == 404);
    check_error(status, false);
}

/* ---- fds --------------------------------------------------------------------------------- */

static void repeated_requests_leak_no_fd(void)
{
    /* One of each kind of answer, including the uncached path and every refusal. */
    static const char *requests[] = {
        "GET /small.txt HTTP/1.1\r\nHost: h",
        "GET /big.bin HTTP/1.1\r\nHost: h",
        "HEAD /big.bin HTTP/1.1\r\nHost: h",
        "GET /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=10-20",
        "GET /big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=100000-",
        "GET /big.bin HTTP/1.1\r\nHost: h\r\nIf-None-Match: *",
        "GET /dir HTTP/1.1\r\nHost: h",
        "GET /noindex HTTP/1.1\r\nHost: h",
        "GET /fifo HTTP/1.1\r\nHost: h",
        "GET /out-file HTTP/1.1\r\nHost: h",
        "GET /out-dir/passwd HTTP/1.1\r\nHost: h",
        "GET /inside HTTP/1.1\r\nHost: h",
        "GET /missing HTTP/1.1\r\nHost: h",
        "POST /small.txt HTTP/1.1\r\nHost: h",
        "GET /small.txt HTTP/1.1\r\nHost: h\r\nContent-Length: 3",
        "GET /empty.txt HTTP/1.1\r\nHost: h",
    };
    static bool fds[MAX_FDS];
    size_t n = sizeof requests / sizeof requests[0];
    char long_request[512];
    snprintf(long_request, sizeof long_request, "GET /%s HTTP/1.1\r\nHost: h", long_path);

    for (size_t i = 0; i < n; i++) /* warm the cache */
        prepare(requests[i]);
    prepare(long_request);
    release();
    int warm = list_fds(fds);
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < n; i++)
            prepare(requests[i]);
        prepare(long_request);
    }
    release();
    int after = list_fds(fds);
    CHECK(warm > 0);
    CHECK_EQ_INT(after, warm);
}

/* ---- If-Range ----------------------------------------------------------------------------- */

static bool if_range_is(const char *v, time_t now)
{
    static const char etag[] = "\"5f-10\"";
    struct http_slice s = {v, (uint32_t)strlen(v)};
    return handler_if_range_matches(s, etag, strlen(etag), FILE_MTIME, now);
}

static void if_range_compares_strongly(void)
{
    char date[HTTP_DATE_LEN + 1];
    time_t later = FILE_MTIME + 60;
    CHECK(if_range_is("\"5f-10\"", later));
    CHECK(!if_range_is("W/\"5f-10\"", later)); /* weak never matches strongly */
    CHECK(!if_range_is("\"stale\"", later));
    CHECK(!if_range_is("\"5f-10\", \"x\"", later)); /* one entity tag, not a list */
    clock_format_http_date(FILE_MTIME, date);
    CHECK(if_range_is(date, later));
    CHECK(!if_range_is(date, FILE_MTIME)); /* modified within the Date's second: weak */
    clock_format_http_date(FILE_MTIME - 1, date);
    CHECK(!if_range_is(date, later));
    clock_format_http_date(FILE_MTIME + 1, date);
    CHECK(!if_range_is(date, later)); /* only the exact date */
    CHECK(!if_range_is("yesterday", later));
    CHECK(!if_range_is("", later));
}

/* A date may start with 'W' (Wednesday); only W/" starts a weak entity tag. */
static void if_range_date_on_a_wednesday_matches(void)
{
    char date[HTTP_DATE_LEN + 1];
    clock_format_http_date(FILE_MTIME, date);
    struct http_slice s = {date, HTTP_DATE_LEN};
    static const char etag[] = "\"5f-10\"";
    for (int day = 0; day < 7; day++) { /* whichever weekday FILE_MTIME falls on */
        time_t t = FILE_MTIME + day * 86400;
        clock_format_http_date(t, date);
        if (!CHECK(handler_if_range_matches(s, etag, strlen(etag), t, t + 60)))
            fprintf(stderr, "     If-Range: %s\n", date);
    }
}

/* ---- If-Match and If-Unmodified-Since ------------------------------------------------------ */

static int ask_with(const char *fields)
{
    char request[512];
    snprintf(request, sizeof request, "GET /small.txt HTTP/1.1\r\nHost: h\r\n%s", fields);
    return ask(request);
}

static void if_match_compares_strongly(void)
{
    char etag[64], fields[256];
    small_etag(etag, sizeof etag);

    CHECK_EQ_INT(ask_with("If-Match: \"x\""), 412);
    check_error(412, false);
    CHECK(!res.close); /* a 412 leaves the connection usable */
    CHECK_EQ_INT(ask("HEAD /small.txt HTTP/1.1\r\nHost: h\r\nIf-Match: \"x\""), 412);
    check_error(412, true);
    CHECK_EQ_INT(ask_with("If-Match: *"), 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
    snprintf(fields, sizeof fields, "If-Match: %s", etag);
    CHECK_EQ_INT(ask_with(fields), 200);
    snprintf(fields, sizeof fields, "If-Match: \"x\", %s", etag);
    CHECK_EQ_INT(ask_with(fields), 200);
    snprintf(fields, sizeof fields, "If-Match: W/%s", etag); /* weak never matches strongly */
    CHECK_EQ_INT(ask_with(fields), 412);
}

static void if_unmodified_since_before_last_modified_is_412(void)
{
    char date[HTTP_DATE_LEN + 1], fields[256];
    clock_format_http_date(FILE_MTIME - 1, date);
    snprintf(fields, sizeof fields, "Range: bytes=0-4\r\nIf-Unmodified-Since: %s", date);
    CHECK_EQ_INT(ask_with(fields), 412);
    snprintf(fields, sizeof fields, "If-Match: *\r\nIf-Unmodified-Since: %s", date);
    CHECK_EQ_INT(ask_with(fields), 200); /* with If-Match, If-Unmodified-Since is not read */
    CHECK_EQ_INT(ask_with("If-Unmodified-Since: not a date"), 200);
    clock_format_http_date(FILE_MTIME, date);
    snprintf(fields, sizeof fields, "Range: bytes=0-4\r\nIf-Unmodified-Since: %s", date);
    CHECK_EQ_INT(ask_with(fields), 206);
}

/* RFC 9110 13.2.2: If-Match, then If-Unmodified-Since, before If-None-Match and
 * If-Modified-Since. */
static void preconditions_are_evaluated_in_order(void)
{
    char etag[64], date[HTTP_DATE_LEN + 1], old[HTTP_DATE_LEN + 1], fields[256];
    small_etag(etag, sizeof etag);
    clock_format_http_date(FILE_MTIME, date);
    clock_format_http_date(FILE_MTIME - 1, old);
    snprintf(fields, sizeof fields, "If-Match: \"x\"\r\nIf-None-Match: %s", etag);
    CHECK_EQ_INT(ask_with(fields), 412);
    snprintf(fields, sizeof fields, "If-Unmodified-Since: %s\r\nIf-Modified-Since: %s", old, date);
    CHECK_EQ_INT(ask_with(fields), 412);
    snprintf(fields, sizeof fields, "If-Match: %s\r\nIf-None-Match: %s", etag, etag);
    CHECK_EQ_INT(ask_with(fields), 304);
}

static void if_range_mismatch_serves_the_whole_file(void)
{
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=0-4\r\n"
                     "If-Range: \"stale\""),
                 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
    CHECK_EQ_INT(ask("GET /small.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=0-4\r\n"
                     "If-Range: Sat, 01 Jan 2000 00:00:00 GMT"),
                 200);
    check_plan_body(SMALL_TEXT, strlen(SMALL_TEXT));
}

/* ---- a head that does not fit ------------------------------------------------------------- */

static void head_overflow_is_a_500_not_an_empty_head(void)
{
    static char small_out[200]; /* fits a 500, not a 200 with the file's headers */
    struct http_request req;
    static const char text[] = "GET /small.txt HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t scan = 0;
    if (!CHECK_EQ_INT(http_parse_request(text, strlen(text), &scan, &req), strlen(text)))
        return;
    struct response r;
    handler_prepare_response(root_fd, &req, small_out, sizeof small_out, &r);
    CHECK_EQ_INT(r.status, 500);
    CHECK(r.close);
    CHECK(r.head_len > 0 && r.head_len <= sizeof small_out);
    CHECK(!memcmp(small_out, "HTTP/1.1 500 ", 13));
    CHECK(r.file_fd < 0 && !r.body);
    handler_release(&r);
}

int main(void)
{
    static bool fds_at_start[MAX_FDS], fds_at_end[MAX_FDS];
    alarm(20); /* a hang (a FIFO opened for reading) must fail the test, not stall the suite */
    int open_at_start = list_fds(fds_at_start);
    root_create();

    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {
#define CASE(fn) {#fn, fn}
        CASE(normalize_merges_slashes_and_dots),
        CASE(normalize_keeps_a_trailing_slash),
        CASE(normalize_refuses_to_climb_above_the_root),
        CASE(normalize_rejects_bad_escapes),
        CASE(normalize_decodes_once),
        CASE(normalize_drops_query_and_fragment),
        CASE(normalize_takes_the_path_of_an_absolute_form),
        CASE(normalize_rejects_other_forms),
        CASE(normalize_respects_the_output_size),
        CASE(range_single_forms),
        CASE(range_is_clamped_to_the_size),
        CASE(range_unsatisfiable_is_416),
        CASE(range_suffix_of_an_empty_file_is_ignored),
        CASE(range_multi_or_malformed_is_ignored),
        CASE(range_overflowing_digits_are_ignored),
        CASE(mime_type_for_every_spec_extension),
        CASE(mime_type_unknown_or_missing_extension),
        CASE(mime_type_ignores_case),
        CASE(small_file_is_200_with_its_headers),
        CASE(big_file_is_a_file_plan),
        CASE(etag_differs_between_files),
        CASE(empty_file_is_200_with_no_body),
        CASE(content_type_follows_the_extension),
        CASE(encoded_name_is_served),
        CASE(directory_serves_its_index),
        CASE(uncached_long_path_is_served),
        CASE(symlink_inside_the_root_is_served),
        CASE(missing_file_is_404),
        CASE(directory_without_index_is_404),
        CASE(fifo_is_404_without_hanging),
        CASE(symlinks_out_of_the_root_are_refused),
        CASE(dot_dot_targets_are_400),
        CASE(post_is_405_with_allow),
        CASE(post_with_a_body_is_405_then_close),
        CASE(request_with_a_body_is_413_then_close),
        CASE(head_has_the_headers_of_get_and_no_body),
        CASE(head_of_an_error_has_no_body),
        CASE(connection_header_follows_keep_alive),
        CASE(if_none_match_gives_304),
        CASE(if_none_match_mismatch_is_200),
        CASE(if_modified_since_gives_304_unless_older),
        CASE(if_none_match_wins_over_if_modified_since),
        CASE(range_gives_206_from_memory),
        CASE(range_gives_206_from_the_file),
        CASE(head_with_range_has_no_body),
        CASE(unsatisfiable_range_is_416),
        CASE(multi_or_malformed_range_is_200),
        CASE(not_modified_wins_over_range),
        CASE(each_root_serves_its_own_files),
        CASE(cache_notices_changes_after_a_second),
        CASE(repeated_requests_leak_no_fd),
        CASE(if_range_compares_strongly),
        CASE(if_range_date_on_a_wednesday_matches),
        CASE(if_match_compares_strongly),
        CASE(if_unmodified_since_before_last_modified_is_412),
        CASE(preconditions_are_evaluated_in_order),
        CASE(if_range_mismatch_serves_the_whole_file),
        CASE(head_overflow_is_a_500_not_an_empty_head),
#undef CASE
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_case(cases[i].name);
        cases[i].run();
    }

    /* Every fd opened since the start is gone, but those the open-file cache keeps. */
    check_case("no_fd_is_left_but_the_cache's");
    release();
    close(root_fd);
    int open_at_end = list_fds(fds_at_end);
    int cached = 0, stray = 0;
    for (int fd = 0; fd < MAX_FDS; fd++) {
        if (!fds_at_end[fd] || fds_at_start[fd])
            continue;
        if (fd_is_under_root(fd)) {
            cached++;
        } else {
            stray++;
            char link[64], target[512] = "?";
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            ssize_t n = readlink(link, target, sizeof target - 1);
            target[n > 0 ? n : 1] = '\0';
            fprintf(stderr, "     stray fd %d -> %s\n", fd, target);
        }
    }
    CHECK_EQ_INT(stray, 0);
    CHECK(cached <= FILES_CACHE_SLOTS);
    CHECK_EQ_INT(open_at_end, open_at_start + cached);

    root_remove();
    return check_report();
}
