/*
 * test_beneath.c - the component walk confines exactly as openat2(RESOLVE_BENEATH)
 * does: for each path in a tree of files, directories and symlinks (inside, out,
 * absolute, dangling, looping, chains), the walk opens the same file or fails with
 * the same errno as the table says, and as openat2 does where the kernel has it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "beneath.h"
#include "check.h"

#define FLAGS (O_RDONLY | O_NONBLOCK | O_NOCTTY)

struct path_case {
    const char *path;
    int err;            /* 0: opens */
    const char *target; /* when it opens: the file it must be, relative to the root */
};

static const struct path_case cases[] = {
    {"small.txt", 0, "small.txt"},
    {".", 0, "."},
    {"sub", 0, "sub"},
    {"sub/", 0, "sub"},
    {"sub//file.txt", 0, "sub/file.txt"},
    {"./sub/./file.txt", 0, "sub/file.txt"},
    {"sub/..", 0, "."},
    {"sub/../small.txt", 0, "small.txt"},
    {"inside.txt", 0, "small.txt"},          /* -> small.txt */
    {"dirlink/file.txt", 0, "sub/file.txt"}, /* -> sub */
    {"dirlink/", 0, "sub"},
    {"sub/uplink", 0, "small.txt"},             /* -> ../small.txt, stays beneath */
    {"sub/rootlink/small.txt", 0, "small.txt"}, /* -> .. */
    {"chain40", 0, "small.txt"},                /* 40 links, the kernel's limit */
    {"fifo", 0, "fifo"},
    {"../small.txt", EXDEV, NULL},
    {"..", EXDEV, NULL},
    {"sub/../../small.txt", EXDEV, NULL},
    {"/etc/passwd", EXDEV, NULL},
    {"escape", EXDEV, NULL},            /* -> /etc/passwd */
    {"escapedir/passwd", EXDEV, NULL},  /* -> /etc */
    {"up", EXDEV, NULL},                /* -> ../outside.txt */
    {"sub/rootlink/../x", EXDEV, NULL}, /* -> .., then above the root */
    {"chain41", ELOOP, NULL},
    {"loop", ELOOP, NULL},      /* -> loop */
    {"dangling", ENOENT, NULL}, /* -> nothing */
    {"missing.txt", ENOENT, NULL},
    {"", ENOENT, NULL},
    {"small.txt/x", ENOTDIR, NULL},
    {"inside.txt/", ENOTDIR, NULL},
};

static int make_tree(char *base)
{
    static const char *const links[][2] = {
        {"small.txt", "root/inside.txt"},    {"sub", "root/dirlink"},
        {"../small.txt", "root/sub/uplink"}, {"..", "root/sub/rootlink"},
        {"/etc/passwd", "root/escape"},      {"/etc", "root/escapedir"},
        {"../outside.txt", "root/up"},       {"loop", "root/loop"},
        {"nothing", "root/dangling"},
    };
    char path[PATH_MAX];
    if (!mkdtemp(base) || chdir(base) < 0)
        return -1;
    if (mkdir("root", 0755) < 0 || mkdir("root/sub", 0755) < 0)
        return -1;
    int fds[] = {open("root/small.txt", O_CREAT | O_WRONLY, 0644),
                 open("root/sub/file.txt", O_CREAT | O_WRONLY, 0644),
                 open("outside.txt", O_CREAT | O_WRONLY, 0644)};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (fds[i] < 0)
            return -1;
        close(fds[i]);
    }
    if (mkfifo("root/fifo", 0644) < 0)
        return -1;
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
        if (symlink(links[i][0], links[i][1]) < 0)
            return -1;
    /* chainN -> chainN-1 ... chain1 -> small.txt: N links to follow. */
    for (int i = 1; i <= 41; i++) {
        char to[32];
        snprintf(to, sizeof to, i == 1 ? "small.txt" : "chain%d", i - 1);
        snprintf(path, sizeof path, "root/chain%d", i);
        if (symlink(to, path) < 0)
            return -1;
    }
    return 0;
}

static bool same_file(int fd, int root_fd, const char *target)
{
    struct stat got, want;
    return fstat(fd, &got) == 0 && fstatat(root_fd, target, &want, 0) == 0 &&
           got.st_dev == want.st_dev && got.st_ino == want.st_ino;
}

/* Checks one way of opening, with flags, against the table. */
static void check_case_with(int (*open_fn)(int, const char *, int), const char *how, int flags,
                            int root_fd, const struct path_case *c)
{
    char name[128];
    snprintf(name, sizeof name, "%s%s \"%s\"", how, flags & O_PATH ? " O_PATH" : "", c->path);
    check_case(name);
    errno = 0;
    int fd = open_fn(root_fd, c->path, flags);
    int err = fd < 0 ? errno : 0;
    CHECK_EQ_INT(err, c->err);
    if (fd >= 0) {
        CHECK(c->target && same_file(fd, root_fd, c->target));
        close(fd);
    }
}

static int kernel_openat2(int root_fd, const char *path, int flags)
{
    struct open_how how = {.flags = (unsigned)flags | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    return (int)syscall(SYS_openat2, root_fd, path, &how, sizeof how);
}

/* A path DEEP directories deep: past the walk's inline stack of 64, which must grow. */
#define DEEP 100
static int make_deep(int root_fd, char *path, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < DEEP; i++) {
        if (n + 3 >= cap)
            return -1;
        memcpy(path + n, i ? "/d" : "d", i ? 3 : 2);
        n += i ? 2 : 1;
        if (mkdirat(root_fd, path, 0755) < 0)
            return -1;
    }
    return 0;
}

int main(void)
{
    char base[] = "/tmp/test_beneath.XXXXXX";
    char deep[2 * DEEP + 1];
    check_case("setup");
    if (!CHECK(make_tree(base) == 0))
        return check_report();
    int root_fd = open("root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!CHECK(root_fd >= 0) || !CHECK(make_deep(root_fd, deep, sizeof deep) == 0))
        return check_report();

    bool have_openat2 = !(kernel_openat2(root_fd, ".", FLAGS) < 0 && errno == ENOSYS);
    /* O_PATH too: files.c opens with it first, and O_PATH | O_NOFOLLOW opens a
     * symlink itself instead of failing with ELOOP. */
    static const int flag_sets[] = {FLAGS, O_PATH};
    for (size_t f = 0; f < sizeof flag_sets / sizeof flag_sets[0]; f++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            check_case_with(beneath_open_walk, "walk", flag_sets[f], root_fd, &cases[i]);
            if (have_openat2)
                check_case_with(kernel_openat2, "openat2", flag_sets[f], root_fd, &cases[i]);
        }
    if (!have_openat2)
        printf("note: no openat2 here, the table alone checks the walk\n");

    /* The walk has no depth limit of its own, as openat2 has none. */
    check_case("walk and openat2 100 directories deep");
    int fd = beneath_open_walk(root_fd, deep, FLAGS);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    if (have_openat2) {
        fd = kernel_openat2(root_fd, deep, FLAGS);
        CHECK(fd >= 0);
        if (fd >= 0)
            close(fd);
    }

    /* The environment variable makes beneath_open() walk: the walk holds sub's fd
     * while it opens file.txt, so the file gets the second lowest free fd number,
     * where openat2 would give the lowest. */
    check_case("C10K_FORCE_BENEATH_FALLBACK=1");
    setenv("C10K_FORCE_BENEATH_FALLBACK", "1", 1);
    int lowest = dup(0);
    if (CHECK(lowest >= 0))
        close(lowest);
    fd = beneath_open(root_fd, "sub/file.txt", FLAGS);
    CHECK_EQ_INT(fd, lowest + 1);
    if (fd >= 0)
        close(fd);
    close(root_fd);

    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", base);
    return check_report();
}
