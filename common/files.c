/*
 * files.c - opening files safely beneath the root, and the open-file cache.
 *
 * Confinement: every open goes through openat2(RESOLVE_BENEATH), so the
 * kernel refuses ".." above the root and any symlink that leads out of it
 * (or, without openat2, through the equally strict walk in beneath.c).
 *
 * The cache is a small direct-mapped table of reference-counted entries
 * behind one mutex (uncontended in the single-threaded models; bin/blocking's
 * threads share it). An entry replaced or evicted while a response still
 * uses it lives on until its last files_release().
 */
#include "files.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "clock.h"

#define FILES_PATH_MAX 256 /* longer paths are served uncached */

/* Longest headers line set: the longest Content-Type, a date, the longest ETag. */
_Static_assert(sizeof "Content-Type: application/octet-stream\r\nLast-Modified: \r\nETag: \r\n" +
                       HTTP_DATE_LEN + FILES_ETAG_MAX <=
                   FILES_HEADERS_MAX,
               "FILES_HEADERS_MAX too small for the file's header lines");

struct file_entry {
    char path[FILES_PATH_MAX];
    uint64_t hash;
    int root_fd;    /* the root the path was resolved beneath */
    int refs;       /* responses using it, plus one while it is in the table */
    time_t checked; /* last second it was found unchanged */
    dev_t dev;
    ino_t ino;
    struct timespec mtim;
    struct timespec ctim; /* moves on every write and every utime: mtime alone can be restored */
    struct file_info info;
    char headers[FILES_HEADERS_MAX];
    char etag[FILES_ETAG_MAX];
    char data[]; /* info.size bytes when the file is small */
};

struct files_cache {
    pthread_mutex_t lock;
    struct file_entry *slots[FILES_CACHE_SLOTS];
};

/* One per process, like the fds it holds: the table is shared by every thread. */
static struct files_cache cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int open_beneath(int dir_fd, const char *path)
{
    /* O_NONBLOCK: opening a FIFO must not hang the server. */
    return beneath_open(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
}

static int errno_status(int err)
{
    switch (err) {
    case EACCES:
    case EPERM:
    case EXDEV: /* a symlink that leads out of the root */ return -403;
    case EMFILE:
    case ENFILE: return -503;
    default: return -404;
    }
}

/* Names a directory's index.html: path (relative, "." for the root) and "/index.html". */
static int index_path(const char *path, char *out, size_t cap)
{
    size_t len = strlen(path);
    bool slash = len > 0 && path[len - 1] == '/';
    int n = strcmp(path, ".") == 0 ? snprintf(out, cap, "index.html")
                                   : snprintf(out, cap, "%s%sindex.html", path, slash ? "" : "/");
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/*
 * Opens path beneath the root, a directory meaning its index.html: fd or -status.
 * It looks first with O_PATH, which needs no permission on the file itself and
 * opens nothing (no FIFO, no device), so a directory that may be searched but not
 * read (mode 0711) still leads to its index. The index is resolved beneath the
 * root, not beneath the directory, so a symlink in it that stays inside the root
 * is followed (sub/index.html -> ../page.html), as for any other file.
 */
static int open_regular(int root_fd, const char *path, struct stat *st, bool *is_index)
{
    char index[PATH_MAX];
    int fd = beneath_open(root_fd, path, O_PATH);
    if (fd < 0)
        return errno_status(errno);
    int r = fstat(fd, st);
    close(fd);
    if (r < 0)
        return -500;
    *is_index = S_ISDIR(st->st_mode);
    if (*is_index) {
        if (index_path(path, index, sizeof index) < 0)
            return -404;
        path = index;
    } else if (!S_ISREG(st->st_mode)) {
        return -404;
    }
    fd = open_beneath(root_fd, path);
    if (fd < 0)
        return errno_status(errno);
    if (fstat(fd, st) < 0) {
        close(fd);
        return -500;
    }
    if (!S_ISREG(st->st_mode)) { /* an index that is not a file, or a path swapped since */
        close(fd);
        return -404;
    }
    return fd;
}

static uint64_t path_hash(const char *p)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

const char *files_mime_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html"},        {"htm", "text/html"},         {"css", "text/css"},
        {"js", "text/javascript"},    {"json", "application/json"}, {"txt", "text/plain"},
        {"svg", "image/svg+xml"},     {"png", "image/png"},         {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},       {"gif", "image/gif"},         {"ico", "image/x-icon"},
        {"wasm", "application/wasm"}, {"pdf", "application/pdf"},   {"woff2", "font/woff2"},
    };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcasecmp(dot + 1, types[i].ext))
                return types[i].type;
    return "application/octet-stream";
}

/*
 * Describes an open file: the header lines and ETag that depend only on it.
 * The ETag carries the ctime too, so a rewrite that restores the mtime still
 * changes it (If-None-Match and If-Range compare it).
 */
static void describe(struct file_info *fi, const struct stat *st, bool is_index, const char *path,
                     char *headers, char *etag)
{
    char modified[HTTP_DATE_LEN + 1];
    fi->size = (uint64_t)st->st_size;
    fi->mtime = clock_last_modified(st->st_mtime, time(NULL));
    clock_format_http_date(fi->mtime, modified);
    uint64_t ctime_ns = (uint64_t)st->st_ctim.tv_sec * 1000000000u + (uint64_t)st->st_ctim.tv_nsec;
    fi->etag_len = (uint32_t)snprintf(
        etag, FILES_ETAG_MAX, "\"%llx-%llx-%llx\"", (unsigned long long)st->st_mtime,
        (unsigned long long)st->st_size, (unsigned long long)ctime_ns);
    fi->etag = etag;
    int n = snprintf(headers, FILES_HEADERS_MAX,
                     "Content-Type: %s\r\nLast-Modified: %s\r\nETag: %s\r\n",
                     is_index ? "text/html" : files_mime_type(path), modified, etag);
    fi->headers_len = (uint32_t)(n < FILES_HEADERS_MAX ? n : 0);
    fi->headers = headers;
}

/* Reads a small file whole; -1 if it changed size under us. */
static int read_whole(int fd, char *buf, uint64_t size)
{
    uint64_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (uint64_t)r;
    }
    return 0;
}

static struct file_entry *entry_create(int root_fd, const char *path, uint64_t hash, int fd,
                                       const struct stat *st, bool is_index)
{
    bool small = (uint64_t)st->st_size <= FILES_SMALL_MAX;
    struct file_entry *e = malloc(sizeof *e + (small ? (size_t)st->st_size : 0));
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "%s", path);
    e->hash = hash;
    e->root_fd = root_fd;
    e->refs = 1;
    e->checked = time(NULL);
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->mtim = st->st_mtim;
    e->ctim = st->st_ctim;
    e->info.fd = fd;
    e->info.entry = e;
    describe(&e->info, st, is_index, path, e->headers, e->etag);
    if (small) {
        if (read_whole(fd, e->data, (uint64_t)st->st_size) < 0) {
            free(e);
            return NULL;
        }
        e->info.data = e->data;
    }
    return e;
}

static void entry_put(struct file_entry *e)
{
    if (--e->refs == 0) {
        close(e->info.fd);
        free(e);
    }
}

static bool same_file(const struct file_entry *e, const struct stat *st)
{
    return e->dev == st->st_dev && e->ino == st->st_ino && e->info.size == (uint64_t)st->st_size &&
           e->mtim.tv_sec == st->st_mtim.tv_sec && e->mtim.tv_nsec == st->st_mtim.tv_nsec &&
           e->ctim.tv_sec == st->st_ctim.tv_sec && e->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

/* The cache key: the same path resolved beneath the same root. */
static bool entry_is(const struct file_entry *e, uint64_t hash, int root_fd, const char *path)
{
    return e && e->hash == hash && e->root_fd == root_fd && !strcmp(e->path, path);
}

/*
 * Describes an already open file without caching it: fi owns fd (entry stays
 * NULL). fi->headers and fi->etag then point into this thread's buffers, valid
 * only until the thread's next uncached open (see files.h).
 */
static void describe_uncached(int fd, const struct stat *st, bool is_index, const char *path,
                              struct file_info *fi)
{
    static _Thread_local char headers[FILES_HEADERS_MAX], etag[FILES_ETAG_MAX];
    *fi = (struct file_info){.fd = fd};
    describe(fi, st, is_index, path, headers, etag);
}

/*
 * The fast path: the entry for path, resolved this second, if its file is still
 * what the entry describes. The path is resolved again once a second, but the
 * open fd is checked on every hit (one fstat): a file rewritten in place keeps
 * its inode, and its new bytes must not go out under the old ETag and length
 * (RFC 9110 8.8.3, 13.1.5) for the rest of the second.
 */
static bool cached_unchanged(uint64_t hash, int root_fd, const char *path, time_t now,
                             struct file_info *fi)
{
    struct file_entry **slot = &cache.slots[hash % FILES_CACHE_SLOTS];
    pthread_mutex_lock(&cache.lock);
    struct file_entry *e = *slot;
    if (!entry_is(e, hash, root_fd, path) || e->checked != now) {
        pthread_mutex_unlock(&cache.lock);
        return false;
    }
    e->refs++; /* held across the fstat, which is not made under the lock */
    pthread_mutex_unlock(&cache.lock);

    struct stat st;
    if (fstat(e->info.fd, &st) == 0 && same_file(e, &st)) {
        *fi = e->info;
        return true;
    }
    pthread_mutex_lock(&cache.lock);
    entry_put(e);
    pthread_mutex_unlock(&cache.lock);
    return false;
}

/* Drops path's entry from its slot; a response still using it keeps it until released. */
static void evict(struct file_entry **slot, uint64_t hash, int root_fd, const char *path)
{
    pthread_mutex_lock(&cache.lock);
    if (entry_is(*slot, hash, root_fd, path)) {
        entry_put(*slot);
        *slot = NULL;
    }
    pthread_mutex_unlock(&cache.lock);
}

int files_open(int root_fd, const char *path, struct file_info *fi)
{
    struct stat st;
    bool is_index;
    uint64_t hash = path_hash(path);
    struct file_entry **slot = &cache.slots[hash % FILES_CACHE_SLOTS];
    time_t now = time(NULL);
    bool cacheable = strlen(path) < FILES_PATH_MAX;

    if (cacheable && cached_unchanged(hash, root_fd, path, now, fi))
        return 0;

    /* A miss, a change, or a second has passed: resolve the path again, beneath the
     * root, so a replaced file or a symlink swapped to point outside is noticed. */
    int fd = open_regular(root_fd, path, &st, &is_index);
    if (fd < 0) {
        if (cacheable) /* gone or refused: its entry must not keep the file open */
            evict(slot, hash, root_fd, path);
        return fd;
    }
    if (!cacheable) {
        describe_uncached(fd, &st, is_index, path, fi);
        return 0;
    }

    pthread_mutex_lock(&cache.lock);
    struct file_entry *e = *slot;
    if (entry_is(e, hash, root_fd, path) && same_file(e, &st)) {
        e->checked = now;
        e->refs++;
        *fi = e->info;
        pthread_mutex_unlock(&cache.lock);
        close(fd);
        return 0;
    }
    pthread_mutex_unlock(&cache.lock);

    /* Built outside the lock: reading a small file whole must not stall other threads. */
    struct file_entry *fresh = entry_create(root_fd, path, hash, fd, &st, is_index);
    if (!fresh) {
        describe_uncached(fd, &st, is_index, path, fi);
        return 0;
    }
    pthread_mutex_lock(&cache.lock);
    if (*slot)
        entry_put(*slot); /* evicted: freed now, or by the last response using it */
    *slot = fresh;
    fresh->refs++;
    *fi = fresh->info;
    pthread_mutex_unlock(&cache.lock);
    return 0;
}
void files_release(struct file_info *fi)
{
    if (fi->entry) {
        pthread_mutex_lock(&cache.lock);
        entry_put(fi->entry);
        pthread_mutex_unlock(&cache.lock);
    } else if (fi->fd >= 0) {
        close(fi->fd);
    }
    fi->fd = -1;
    fi->entry = NULL;
    fi->data = NULL;
}
