/*
 * beneath.c - openat2(RESOLVE_BENEATH), and the same confinement without it.
 *
 * The walk keeps a stack of directory fds from the root down to where it is, so
 * ".." goes back to the directory it came from (never above the root) without
 * asking the file system, and a rename elsewhere cannot move it out. Each
 * component is opened with O_NOFOLLOW: a symlink is read, refused if absolute,
 * and its target spliced in front of what is left, resolved from the link's own
 * directory, as the kernel does. What openat2 does beyond this (refusing a
 * concurrent rename that races a ".." with EAGAIN) the stack makes unnecessary.
 */
#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BENEATH_LINKS_MAX 40 /* the kernel's MAXSYMLINKS */
#define WALK_DIRS_INLINE 64  /* directories held without allocating; deeper grows dirs */

/* No depth limit of its own, as openat2 has none: PATH_MAX bounds each path and
 * each symlink's target, BENEATH_LINKS_MAX how many are spliced in. */
struct walk {
    int *dirs; /* dirs[0] is the caller's root, never closed here */
    int depth;
    int cap; /* entries in dirs */
    int inline_dirs[WALK_DIRS_INLINE];
    char rest[PATH_MAX]; /* what is left to resolve */
};

static pthread_once_t mode_once = PTHREAD_ONCE_INIT;
static atomic_bool use_walk;

static void mode_init(void)
{
    const char *force = getenv("C10K_FORCE_BENEATH_FALLBACK");
    if (force && strcmp(force, "1") == 0)
        atomic_store(&use_walk, true);
}

static void walk_init(struct walk *w, int root_fd)
{
    w->dirs = w->inline_dirs;
    w->cap = WALK_DIRS_INLINE;
    w->depth = 0;
    w->dirs[0] = root_fd;
}

static int walk_push(struct walk *w, int fd)
{
    if (w->depth + 1 == w->cap) { /* only paths deeper than WALK_DIRS_INLINE get here */
        int cap = w->cap * 2;
        int *dirs = w->dirs == w->inline_dirs ? malloc(sizeof *dirs * (size_t)cap)
                                              : realloc(w->dirs, sizeof *dirs * (size_t)cap);
        if (!dirs) {
            close(fd);
            errno = ENOMEM;
            return -1;
        }
        if (w->dirs == w->inline_dirs)
            memcpy(dirs, w->inline_dirs, sizeof w->inline_dirs);
        w->dirs = dirs;
        w->cap = cap;
    }
    w->dirs[++w->depth] = fd;
    return 0;
}

static void walk_release(struct walk *w)
{
    int err = errno;
    for (; w->depth > 0; w->depth--)
        close(w->dirs[w->depth]);
    if (w->dirs != w->inline_dirs)
        free(w->dirs);
    errno = err;
}

/* Replaces the component just read (a symlink whose target is in link) by its
 * target: rest becomes link followed by tail. */
static int walk_splice(struct walk *w, const char *link, ssize_t link_len, const char *tail)
{
    if (link_len == 0) {
        errno = ENOENT;
        return -1;
    }
    if (link[0] == '/') {
        errno = EXDEV;
        return -1;
    }
    size_t tail_len = strlen(tail);
    if ((size_t)link_len + tail_len >= sizeof w->rest) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memmove(w->rest + link_len, tail, tail_len + 1);
    memcpy(w->rest, link, (size_t)link_len);
    return 0;
}

/* Reads the symlink name at at_fd into link and splices it into rest: 1, or -1. */
static int walk_follow(struct walk *w, int at_fd, const char *name, const char *tail, char *link)
{
    ssize_t n = readlinkat(at_fd, name, link, PATH_MAX);
    if (n < 0)
        return -1;
    if (n == PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return walk_splice(w, link, n, tail) < 0 ? -1 : 1;
}

/* Steps into the directory or symlink called name below the current directory.
 * Returns 1 if it was a symlink (spliced into rest), 0 for a directory, -1. */
static int walk_through(struct walk *w, const char *name, const char *tail, char *link)
{
    int fd = openat(w->dirs[w->depth], name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0)
        goto fail;
    if (S_ISDIR(st.st_mode))
        return walk_push(w, fd);
    if (!S_ISLNK(st.st_mode)) {
        errno = ENOTDIR;
        goto fail;
    }
    int r = walk_follow(w, fd, "", tail, link);
    close(fd);
    return r;
fail:
    close(fd);
    return -1;
}

/* Opens the last component, called name, with the caller's flags, not following
 * it. Returns 0 with *fd open, 1 if it was a symlink (spliced into rest), -1. */
static int walk_last(struct walk *w, const char *name, int flags, char *link, int *fd)
{
    int dir_fd = w->dirs[w->depth];
    *fd = openat(dir_fd, name, flags | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0) /* ELOOP under O_NOFOLLOW: it is a symlink */
        return errno == ELOOP ? walk_follow(w, dir_fd, name, "", link) : -1;
    if (!(flags & O_PATH))
        return 0;
    /* O_PATH | O_NOFOLLOW opens a symlink itself rather than failing. */
    struct stat st;
    int r = fstat(*fd, &st) < 0 ? -1 : S_ISLNK(st.st_mode) ? walk_follow(w, *fd, "", "", link) : 0;
    if (r != 0) {
        close(*fd);
        *fd = -1;
    }
    return r;
}

int beneath_open_walk(int root_fd, const char *path, int flags)
{
    struct walk w;
    char link[PATH_MAX];
    char name[NAME_MAX + 1];
    int links = 0, fd = -1;

    if (path[0] == '\0') {
        errno = ENOENT;
        return -1;
    }
    if (path[0] == '/') {
        errno = EXDEV;
        return -1;
    }
    if (strlen(path) >= sizeof w.rest) {
        errno = ENAMETOOLONG;
        return -1;
    }
    walk_init(&w, root_fd);
    strcpy(w.rest, path);
    const char *p = w.rest;
    for (;;) {
        while (*p == '/')
            p++;
        if (*p == '\0') { /* the path ends in a directory (or a slash after one) */
            fd = openat(w.dirs[w.depth], ".", flags | O_CLOEXEC);
            break;
        }
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        if (len > NAME_MAX) {
            errno = ENAMETOOLONG;
            break;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        if (strcmp(name, ".") == 0) {
            p = end;
            continue;
        }
        if (strcmp(name, "..") == 0) {
            if (w.depth == 0) {
                errno = EXDEV;
                break;
            }
            close(w.dirs[w.depth--]);
            p = end;
            continue;
        }
        int r;
        if (*end == '\0') { /* the last component, with the caller's flags */
            r = walk_last(&w, name, flags, link, &fd);
            if (r == 0)
                break;
        } else {
            r = walk_through(&w, name, end, link);
        }
        if (r < 0)
            break;
        if (r == 0) {
            p = end;
            continue;
        }
        if (++links > BENEATH_LINKS_MAX) {
            errno = ELOOP;
            break;
        }
        p = w.rest;
    }
    walk_release(&w);
    return fd;
}

int beneath_open(int root_fd, const char *path, int flags)
{
    pthread_once(&mode_once, mode_init);
    if (!atomic_load_explicit(&use_walk, memory_order_relaxed)) {
        struct open_how how = {
            .flags = (unsigned)flags | O_CLOEXEC,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof how);
        if (fd >= 0 || errno != ENOSYS)
            return fd;
        /* No openat2 here (the kernel or valgrind): walk from now on. */
        atomic_store(&use_walk, true);
    }
    return beneath_open_walk(root_fd, path, flags);
}
