/*
 * beneath.h - opening a path confined beneath a directory, with or without openat2.
 *
 * beneath_open() is openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS). Where the
 * kernel lacks openat2 (Linux < 5.6; valgrind 3.19, which answers ENOSYS to syscall
 * 437) it walks the path one component at a time instead, with the same verdicts:
 * ".." above the root and absolute symlinks fail with EXDEV, a symlink that stays
 * beneath the root is followed, more than 40 of them fail with ELOOP; like
 * openat2, it has no depth limit of its own (PATH_MAX bounds each path).
 *
 * C10K_FORCE_BENEATH_FALLBACK=1 in the environment (read once) makes every call
 * take the walk; the tests use it to run the confinement cases against it.
 * Both return an fd, or -1 with errno set.
 */
#ifndef C10K_BENEATH_H
#define C10K_BENEATH_H

/* Opens path (relative) beneath root_fd with open(2) flags (O_PATH too, not O_CREAT);
 * symlinks are followed while they stay beneath root_fd. */
int beneath_open(int root_fd, const char *path, int flags);

/* The component walk alone, whatever the kernel offers (for the tests). */
int beneath_open_walk(int root_fd, const char *path, int flags);

#endif
