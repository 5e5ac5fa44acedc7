/*
 * handler.c - SPEC section 3 in one place: paths, files, conditionals, ranges, headers.
 *
 * Confinement is done twice on purpose: the path is normalised lexically
 * here (so ".." can never climb above the root), and files.c opens it with
 * openat2's RESOLVE_BENEATH, so the kernel refuses any symlink that leads out.
 */
#include "handler.h"

#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "files.h"

/* ---- response head builder ------------------------------------------------ */

struct head {
    char *p;
    size_t len, cap;
};

static void head_put(struct head *h, const char *s, size_t n)
{
    if (h->len + n <= h->cap)
        memcpy(h->p + h->len, s, n);
    h->len += n; /* an overflow is caught once, in head_finish() */
}

static void head_str(struct head *h, const char *s)
{
    head_put(h, s, strlen(s));
}

static void head_u64(struct head *h, uint64_t v)
{
    char tmp[20];
    int i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    head_put(h, tmp + i, sizeof tmp - (size_t)i);
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "200 OK";
    case 206: return "206 Partial Content";
    case 304: return "304 Not Modified";
    case 400: return "400 Bad Request";
    case 403: return "403 Forbidden";
    case 404: return "404 Not Found";
    case 405: return "405 Method Not Allowed";
    case 412: return "412 Precondition Failed";
    case 413: return "413 Content Too Large";
    case 414: return "414 URI Too Long";
    case 416: return "416 Range Not Satisfiable";
    case 431: return "431 Request Header Fields Too Large";
    case 503: return "503 Service Unavailable";
    default: return "500 Internal Server Error";
    }
}

static void head_start(struct head *h, int status)
{
    head_str(h, "HTTP/1.1 ");
    head_str(h, status_text(status));
    head_str(h, "\r\nDate: ");
    head_put(h, clock_http_date(), HTTP_DATE_LEN);
    head_str(h, "\r\nServer: c10k/" C10K_VERSION "\r\n");
}

static void head_connection(struct head *h, const struct response *res, bool http10_keep_alive)
{
    if (res->close)
        head_str(h, "Connection: close\r\n");
    else if (http10_keep_alive)
        head_str(h, "Connection: keep-alive\r\n");
    head_str(h, "\r\n");
}

/* ---- errors --------------------------------------------------------------- */

static void prepare_error(int status, bool head_only, bool close, bool http10_keep_alive, char *out,
                          size_t cap, struct response *res);

/*
 * Sets res->head_len, or, if the head did not fit in the caller's buffer,
 * replaces the plan with a 500 (then close): a head cut short must never go
 * out. HANDLER_HEAD_MAX (asserted against the buffer size in conn.h) makes
 * this unreachable; it stays as the one place that would notice.
 */
static bool head_finish(struct head *h, struct response *res)
{
    if (h->len <= h->cap) {
        res->head_len = (uint32_t)h->len;
        return true;
    }
    if (res->status == 500) { /* not even the 500 fits: send nothing, just close */
        res->head_len = 0;
        return false;
    }
    prepare_error(500, false, true, false, h->p, h->cap, res);
    return false;
}

static bool status_closes(int status)
{
    /* After these the rest of the stream cannot be trusted to be a request. */
    return status == 400 || status == 413 || status == 414 || status == 431 || status >= 500;
}

static void prepare_error(int status, bool head_only, bool close, bool http10_keep_alive, char *out,
                          size_t cap, struct response *res)
{
    struct head h = {out, 0, cap};
    const char *text = status_text(status);
    size_t body_len = strlen(text) + 1;

    *res =
        (struct response){.status = (uint16_t)status, .close = close, .file_fd = -1, .file.fd = -1};
    head_start(&h, status);
    head_str(&h, "Content-Type: text/plain\r\nContent-Length: ");
    head_u64(&h, body_len);
    head_str(&h, "\r\n");
    if (status == 405)
        head_str(&h, "Allow: GET, HEAD\r\n");
    head_connection(&h, res, http10_keep_alive);
    if (!head_only) {
        head_str(&h, text);
        head_str(&h, "\n");
    }
    head_finish(&h, res);
}

void handler_prepare_error(int status, bool head_only, char *out, size_t cap, struct response *res)
{
    prepare_error(status, head_only, true, false, out, cap, res);
}

void handler_release(struct response *res)
{
    if (res->file.fd >= 0 || res->file.entry)
        files_release(&res->file);
    res->file_fd = -1;
    res->body = NULL;
}

/* ---- paths ---------------------------------------------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int handler_normalize_path(const char *t, size_t len, char *out, size_t cap)
{
    char dec[HTTP_MAX_TARGET + 1];
    size_t n = 0, i = 0, o = 0;

    /* An absolute-form target ("http://host/path") names its path after the host. */
    if (len > 7 && !strncasecmp(t, "http://", 7)) {
        for (i = 7; i < len && t[i] != '/'; i++)
            ;
    } else if (len > 8 && !strncasecmp(t, "https://", 8)) {
        for (i = 8; i < len && t[i] != '/'; i++)
            ;
    } else if (len == 0 || t[0] != '/') {
        return -400;
    }

    for (; i < len && t[i] != '?' && t[i] != '#'; i++) {
        char ch = t[i];
        if (ch == '%') {
            int hi = i + 2 < len ? hex_value(t[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(t[i + 2]) : -1;
            if (lo < 0)
                return -400;
            ch = (char)(hi << 4 | lo);
            i += 2;
            if (ch == '\0')
                return -400;
        }
        if (n == sizeof dec)
            return -400;
        dec[n++] = ch;
    }

    /* Walk the segments: skip "" and ".", let ".." drop the last one kept. A path
     * that ends in "/", "/." or "/.." names a directory: it keeps a trailing "/",
     * so that opening a file through it fails (ENOTDIR), as in nginx and open(2). */
    bool dir_only = n > 0 && dec[n - 1] == '/';
    for (size_t s = 0; s < n;) {
        size_t e = s;
        while (e < n && dec[e] != '/')
            e++;
        size_t seg = e - s;
        if (e == n)
            dir_only = dir_only || (seg == 1 && dec[s] == '.') ||
                       (seg == 2 && dec[s] == '.' && dec[s + 1] == '.');
        if (seg == 2 && dec[s] == '.' && dec[s + 1] == '.') {
            if (o == 0)
                return -400;
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else if (seg > 0 && !(seg == 1 && dec[s] == '.')) {
            if (o + 1 + seg + 1 > cap)
                return -400;
            if (o > 0)
                out[o++] = '/';
            memcpy(out + o, dec + s, seg);
            o += seg;
        }
        s = e + 1;
    }
    if (o == 0) {
        out[o++] = '.';
    } else if (dir_only) {
        if (o + 2 > cap)
            return -400;
        out[o++] = '/';
    }
    out[o] = '\0';
    return 0;
}

/* ---- conditionals and ranges ---------------------------------------------- */

/*
 * Whether an If-Match or If-None-Match list names etag, or is "*". Strong
 * comparison (If-Match, RFC 9110 8.8.3.2) matches only two strong tags that are
 * the same; weak comparison (If-None-Match) ignores the W/ of either.
 */
static bool etag_list_matches(struct http_slice v, const char *etag, size_t etag_len, bool strong)
{
    bool etag_weak = etag_len >= 2 && etag[0] == 'W' && etag[1] == '/';
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        size_t s = i;
        while (i < v.len && v.p[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t'))
            e--;
        if (e - s == 1 && v.p[s] == '*')
            return true;
        bool weak = e - s >= 2 && v.p[s] == 'W' && v.p[s + 1] == '/';
        if (strong && (weak || etag_weak))
            continue;
        if (weak)
            s += 2;
        const char *mine = etag_weak ? etag + 2 : etag;
        size_t mine_len = etag_weak ? etag_len - 2 : etag_len;
        if (e - s == mine_len && !memcmp(v.p + s, mine, mine_len))
            return true;
    }
    return false;
}

/*
 * RFC 9110 13.2.2: the preconditions in their order, for a GET or HEAD of an
 * existing file. Returns 412, 304, or 0 to go on (If-Range, the fifth step,
 * belongs to the Range code). A date that is no valid HTTP-date is ignored
 * (13.1.3, 13.1.4); If-Unmodified-Since counts only without If-Match, and
 * If-Modified-Since only without If-None-Match.
 */
static int precondition_status(const struct http_request *req, const struct file_info *fi)
{
    time_t t;
    if (req->if_match.p) {
        if (!etag_list_matches(req->if_match, fi->etag, fi->etag_len, true))
            return 412;
    } else if (req->if_unmodified_since.p &&
               clock_parse_http_date(req->if_unmodified_since.p, req->if_unmodified_since.len,
                                     &t) == 0 &&
               fi->mtime > t) {
        return 412;
    }
    if (req->if_none_match.p)
        return etag_list_matches(req->if_none_match, fi->etag, fi->etag_len, false) ? 304 : 0;
    if (req->if_modified_since.p &&
        clock_parse_http_date(req->if_modified_since.p, req->if_modified_since.len, &t) == 0 &&
        fi->mtime <= t)
        return 304;
    return 0;
}

/*
 * Whether If-Range lets the Range apply (RFC 9110 13.1.5): an entity tag must
 * match the current one by strong comparison (a weak one never does); a date
 * must be exactly the Last-Modified, and that must be a strong validator: at
 * least a second before the Date sent now (RFC 9110 8.8.2.2).
 */
bool handler_if_range_matches(struct http_slice v, const char *etag, size_t etag_len,
                              time_t last_modified, time_t now)
{
    /* An entity tag is "..." or W/"...": a date may begin with 'W' too (Wed). */
    if ((v.len > 0 && v.p[0] == '"') || (v.len > 2 && !memcmp(v.p, "W/\"", 3)))
        return v.len == etag_len && !memcmp(v.p, etag, etag_len) && etag[0] == '"';
    time_t t;
    return clock_parse_http_date(v.p, v.len, &t) == 0 && t == last_modified && last_modified < now;
}

/* Parses decimal digits at v[*i]; -1 if there are none or they overflow. */
static int64_t range_number(const char *v, size_t len, size_t *i)
{
    int64_t n = 0;
    size_t start = *i;
    for (; *i < len && v[*i] >= '0' && v[*i] <= '9'; (*i)++) {
        if (n > (INT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (v[*i] - '0');
    }
    return *i > start ? n : -1;
}

int handler_parse_range(const char *v, size_t len, uint64_t size, uint64_t *off, uint64_t *n)
{
    size_t i = 6;
    int64_t first = -1, last = -1;

    if (len < 7 || strncasecmp(v, "bytes=", 6) != 0 || memchr(v, ',', len))
        return 0;      /* not a single byte range: serve the whole file */
    if (v[i] == '-') { /* "-n": the last n bytes */
        i++;
        int64_t suffix = range_number(v, len, &i);
        if (suffix < 0 || i != len)
            return 0;
        if (suffix == 0)
            return -416;
        if (size == 0) /* satisfiable (RFC 9110 14.1.1) but empty: the whole, empty, file */
            return 0;
        *n = (uint64_t)suffix < size ? (uint64_t)suffix : size;
        *off = size - *n;
        return 1;
    }
    first = range_number(v, len, &i);
    if (first < 0 || i >= len || v[i] != '-')
        return 0;
    i++;
    if (i < len) {
        last = range_number(v, len, &i);
        if (last < 0 || i != len || last < first)
            return 0;
    }
    if ((uint64_t)first >= size)
        return -416;
    if (last < 0 || (uint64_t)last >= size)
        last = (int64_t)size - 1;
    *off = (uint64_t)first;
    *n = (uint64_t)(last - first) + 1;
    return 1;
}

/* ---- the handler ------------------------------------------------------------ */

static void prepare_416(uint64_t size, bool head_only, bool close, bool http10_keep_alive,
                        char *out, size_t cap, struct response *res)
{
    /* Unlike other errors, 416 names the size the client may ask for. */
    static const char body[] = "416 Range Not Satisfiable\n";
    struct head h = {out, 0, cap};
    *res = (struct response){.status = 416, .close = close, .file_fd = -1, .file.fd = -1};
    head_start(&h, 416);
    head_str(&h, "Content-Type: text/plain\r\nContent-Length: ");
    head_u64(&h, sizeof body - 1);
    head_str(&h, "\r\nContent-Range: bytes */");
    head_u64(&h, size);
    head_str(&h, "\r\n");
    head_connection(&h, res, http10_keep_alive);
    if (!head_only)
        head_str(&h, body);
    head_finish(&h, res);
}

void handler_prepare_response(int root_fd, const struct http_request *req, char *out, size_t cap,
                              struct response *res)
{
    bool head_only = req->method == HTTP_REQ_HEAD;
    bool keep_alive = req->keep_alive;
    bool http10_keep_alive = keep_alive && req->version_minor == 0;
    char path[HTTP_MAX_TARGET + 2];
    struct file_info fi;
    int status = 200;

    if (req->method == HTTP_REQ_OTHER) {
        /* The body, if any, is never read, so the stream must end after the answer. */
        prepare_error(405, false, !keep_alive || req->has_body, http10_keep_alive, out, cap, res);
        return;
    }
    if (req->has_body) {
        prepare_error(413, head_only, true, false, out, cap, res);
        return;
    }
    int err = handler_normalize_path(req->target.p, req->target.len, path, sizeof path);
    if (err < 0) {
        prepare_error(-err, head_only, true, false, out, cap, res);
        return;
    }
    err = files_open(root_fd, path, &fi);
    if (err < 0) {
        prepare_error(-err, head_only, !keep_alive || status_closes(-err), http10_keep_alive, out,
                      cap, res);
        return;
    }

    uint64_t off = 0, len = fi.size;
    int precondition = precondition_status(req, &fi);
    if (precondition == 412) {
        prepare_error(412, head_only, !keep_alive, http10_keep_alive, out, cap, res);
        files_release(&fi);
        return;
    }
    if (precondition == 304) {
        status = 304;
    } else if (req->range.p &&
               (!req->if_range.p || handler_if_range_matches(req->if_range, fi.etag, fi.etag_len,
                                                             fi.mtime, time(NULL)))) {
        int r = handler_parse_range(req->range.p, req->range.len, fi.size, &off, &len);
        if (r < 0) {
            prepare_416(fi.size, head_only, !keep_alive, http10_keep_alive, out, cap, res);
            files_release(&fi);
            return;
        }
        if (r > 0)
            status = 206;
    }

    struct head h = {out, 0, cap};
    *res = (struct response){
        .status = (uint16_t)status, .close = !keep_alive, .file_fd = -1, .file.fd = -1};
    head_start(&h, status);
    head_str(&h, "Content-Length: ");
    head_u64(&h, status == 304 ? fi.size : len);
    head_str(&h, "\r\n");
    if (status == 206) {
        head_str(&h, "Content-Range: bytes ");
        head_u64(&h, off);
        head_str(&h, "-");
        head_u64(&h, off + len - 1);
        head_str(&h, "/");
        head_u64(&h, fi.size);
        head_str(&h, "\r\n");
    }
    head_put(&h, fi.headers, fi.headers_len);
    head_str(&h, "Accept-Ranges: bytes\r\n");
    head_connection(&h, res, http10_keep_alive);
    if (!head_finish(&h, res) || status == 304 || head_only || len == 0) {
        files_release(&fi);
        return;
    }
    res->file = fi; /* held until handler_release(): the body is sent from it */
    if (fi.data) {  /* small and cached: the body goes out from memory, with the head */
        res->body = fi.data + off;
        res->body_len = (uint32_t)len;
    } else {
        res->file_fd = fi.fd;
        res->file_off = (off_t)off;
        res->file_len = len;
    }
}
