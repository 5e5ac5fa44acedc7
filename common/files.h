/*
 * files.h - the open-file cache shared by every model.
 *
 * A hot static file is opened, checked and described once, not per request:
 * the cache keeps its fd, its size and mtime, the header lines that depend
 * only on the file (Content-Type, Last-Modified, ETag), and for a small file
 * its whole contents, so that head and body leave in one send. Every hit
 * fstats the cached fd and compares it (a file rewritten in place keeps its
 * inode); the path itself is resolved again beneath the root at most once a
 * second, and an entry whose path no longer opens is dropped (its fd closed).
 */
#ifndef C10K_FILES_H
#define C10K_FILES_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define FILES_CACHE_SLOTS 128       /* fds the cache may hold open */
#define FILES_SMALL_MAX (32 * 1024) /* files up to this size are kept in memory */
#define FILES_HEADERS_MAX 192       /* the file's own header lines, below */
#define FILES_ETAG_MAX 56           /* "mtime-size-ctime_ns" in hex, quoted, NUL */

struct file_entry;

struct file_info {
    int fd;
    uint64_t size;
    time_t mtime;        /* as sent in Last-Modified: see clock_last_modified() */
    const char *data;    /* the whole file when small, else NULL */
    const char *headers; /* "Content-Type: ...\r\nLast-Modified: ...\r\nETag: ...\r\n" */
    uint32_t headers_len;
    const char *etag;
    uint32_t etag_len;
    struct file_entry *entry; /* what files_release() gives back */
};

/* Opens path (already normalised, relative) beneath root_fd; a directory means
 * its index.html. Returns 0, or -status (-403, -404, -503, -500). A file the
 * cache cannot hold is opened uncached: then fi->headers and fi->etag point
 * into per-thread buffers, good only until this thread's next files_open():
 * copy them at once (the handler copies them into the response head). */
int files_open(int root_fd, const char *path, struct file_info *fi);

/* The Content-Type for a path's extension. */
const char *files_mime_type(const char *path);

/* Gives the file back; fi->fd and fi->data are not to be used afterwards. */
void files_release(struct file_info *fi);

#endif
