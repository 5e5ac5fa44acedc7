/*
 * handler.h - the one static-file handler: a parsed request in, a response plan out.
 *
 * The plan is the header bytes (with a short body for errors), written into
 * the caller's buffer, plus an optional file range to send after them. The
 * handler opens files but never touches a socket, so every I/O model can
 * carry the plan out in its own way (sendfile, splice, aio_read+aio_write).
 */
#ifndef C10K_HANDLER_H
#define C10K_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "files.h"
#include "http.h"

/* The largest response head the handler writes: its own lines (status, Date,
 * Server, Content-Length, Content-Range, Accept-Ranges, Connection) plus the
 * file's (files.h). A caller's buffer of this size never overflows. */
#define HANDLER_HEAD_MAX (384 + FILES_HEADERS_MAX)

struct response {
    uint16_t status;
    bool close;        /* the connection closes once this response is out */
    uint32_t head_len; /* header bytes (plus any error body) in the caller's buffer */
    const char *body;  /* a body in memory (a small cached file), sent after the head */
    uint32_t body_len;
    int file_fd; /* else a file range to send after the head; -1 if none */
    off_t file_off;
    uint64_t file_len;
    struct file_info file; /* the file the body comes from, held until handler_release() */
};

/* Plans the answer to req, resolving its path under root_fd. out has cap bytes. */
void handler_prepare_response(int root_fd, const struct http_request *req, char *out, size_t cap,
                              struct response *res);

/* Plans an error answer (then close), e.g. for a request the parser rejected. */
void handler_prepare_error(int status, bool head_only, char *out, size_t cap, struct response *res);

/* Gives back the plan's file, if any. */
void handler_release(struct response *res);

/*
 * Pieces exposed for the unit tests.
 */

/* Decodes the target's path once, drops the query, removes "." and "..".
 * Writes a path relative to the root ("." for the root itself) into out.
 * Returns 0, or -400 for a bad escape, a NUL, or ".." above the root. */
int handler_normalize_path(const char *target, size_t len, char *out, size_t cap);

/* Parses a single "bytes=" range against size. Returns 1 with *off and *n set,
 * 0 to ignore the header (multi-range, malformed, or a suffix of an empty file:
 * satisfiable, but there is nothing to send but the whole), -416 if unsatisfiable. */
int handler_parse_range(const char *v, size_t len, uint64_t size, uint64_t *off, uint64_t *n);

/* Whether If-Range's value v lets a Range apply to a file with this ETag and
 * Last-Modified when the Date is now. */
bool handler_if_range_matches(struct http_slice v, const char *etag, size_t etag_len,
                              time_t last_modified, time_t now);

#endif
