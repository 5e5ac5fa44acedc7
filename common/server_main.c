/*
 * server_main.c - the whole main() of a server binary: parse the command line, catch
 * the stop signals, raise the fd limit, listen, give up root, run the model (in one
 * process or --workers N), report. Below it: server.c, what the model calls while it
 * serves, and workers.c, the processes of --workers.
 */
#include "server.h"

#include "files.h"
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096
/* fds not given to connections: listener, root, the file cache, files being sent */
#define FDS_KEPT_BACK (32 + FILES_CACHE_SLOTS)

/* Atomic, not volatile sig_atomic_t: the handler runs on whichever thread took the signal
 * while other threads (bin/actor's workers, bin/blocking's) read the flag, and a lock-free
 * atomic is both async-signal-safe and free of a data race (C11 7.14.1.1, 5.1.2.3). */
static atomic_int stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    atomic_store_explicit(&stop_requested, 1, memory_order_relaxed);
}

bool server_stopping(void)
{
    return atomic_load_explicit(&stop_requested, memory_order_relaxed) != 0;
}

static int install_signals(void)
{
    struct sigaction sa = {.sa_handler = on_stop_signal};
    /* No SA_RESTART: a blocked accept/epoll_wait must return EINTR and see the flag.
     * SIGHUP stops too: there is no configuration to reload (nginx's use of it), and a
     * hangup must not kill a --workers parent outright and leave its workers serving. */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0 ||
        sigaction(SIGHUP, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = SIG_IGN; /* a peer that vanished mid-write must cost only that write */
    return sigaction(SIGPIPE, &sa, NULL);
}

static int raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            return -1;
    }
    /* The table is indexed by fd; past a million the limit is not a real plan. */
    return rl.rlim_cur > 1048576 ? 1048576 : (int)rl.rlim_cur;
}

/*
 * Started as root, serve as --user (default nobody), as nginx's workers do: a
 * file that only root may read must give 403, not its contents. Called once the
 * listeners are bound (a port below 1024 needs root), RLIMIT_NOFILE raised and
 * the root opened, before any request or fork, so every process and thread of
 * the server runs as that user. --user root keeps root, on purpose. Not root,
 * --user may only name the user it already is. Returns 0, or -1 with the reason
 * printed on one line.
 */
static int drop_privileges(const struct server *s)
{
    const char *name = s->cfg.user ? s->cfg.user : "nobody";
    uid_t euid = geteuid();
    if (euid != 0 && !s->cfg.user)
        return 0;
    errno = 0;
    struct passwd *pw = getpwnam(name); /* single-threaded here: the static result is safe */
    if (!pw) {
        bool missing = errno == 0 || errno == ENOENT || errno == ESRCH;
        fprintf(stderr, "%s: cannot serve as user %s: %s\n", s->model, name,
                missing ? "no such user" : strerror(errno));
        return -1;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (euid != 0 || uid == 0) {
        if (uid == euid)
            return 0;
        fprintf(stderr, "%s: cannot serve as user %s: only root can change users\n", s->model,
                name);
        return -1;
    }
    /* Groups first: once the uid is dropped, they can no longer be changed. */
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        fprintf(stderr, "%s: cannot serve as user %s: %s\n", s->model, name, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0 || getuid() != uid || geteuid() != uid || getegid() != gid) {
        fprintf(stderr, "%s: cannot serve as user %s: root could be regained\n", s->model, name);
        return -1;
    }
    return 0;
}

/* Binds and listens; returns the nonblocking fd and sets *port, or -1. With reuseport,
 * several sockets may listen on the same port (SO_REUSEPORT, Linux 3.9). */
static int listen_on(const char *addr, int *port, bool reuseport)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai;
    char service[8];
    int fd = -1, one = 1;

    snprintf(service, sizeof service, "%d", *port);
    int gai = getaddrinfo(addr, service, &hints, &ai);
    if (gai != 0) {
        errno = EINVAL;
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    /* Accepted sockets inherit TCP_NODELAY from the listener: no setsockopt each. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
        goto fail;

    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        goto fail;
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(ai);
    return fd;
fail:;
    int err = errno;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    errno = err;
    return -1;
}

int server_main(int argc, char **argv, const char *model, size_t conn_size, server_run_fn run)
{
    return server_main_workers(argc, argv, model, conn_size, run, SERVER_WORKERS_REUSEPORT, 1);
}

/* The n listeners of --workers: one socket n times, or n sockets on one port. */
static int listen_all(struct server *s, enum server_workers how, int *listeners, int n, int *port)
{
    bool own = how == SERVER_WORKERS_REUSEPORT && n > 1;
    for (int i = 0; i < n; i++) {
        if (i > 0 && !own) {
            listeners[i] = listeners[0];
            continue;
        }
        listeners[i] = listen_on(s->cfg.addr, port, own); /* *port is 0 only the first time */
        if (listeners[i] < 0) {
            int err = errno;
            while (i-- > 0)
                close(listeners[i]);
            errno = err;
            return -1;
        }
    }
    return 0;
}

int server_main_workers(int argc, char **argv, const char *model, size_t conn_size,
                        server_run_fn run, enum server_workers how, int default_workers)
{
    struct server s = {.model = model,
                       .listen_fd = -1,
                       .reserve_fd = -1,
                       .conn_size = conn_size,
                       .env.root_fd = -1,
                       .worker = -1};
    int listeners[WORKERS_MAX];
    bool in_worker = false;
    int rc = 1;

    switch (cli_parse(argc, argv, model, &s.cfg)) {
    case CLI_EXIT: return 0;
    case CLI_USAGE: return 2;
    case CLI_RUN: break;
    }
    if (!s.cfg.workers)
        s.cfg.workers = default_workers;
    int processes = how == SERVER_WORKERS_THREADS ? 1 : s.cfg.workers;
    if (install_signals() < 0) {
        fprintf(stderr, "%s: cannot install signal handlers: %s\n", model, strerror(errno));
        return 1;
    }
    s.max_fds = raise_nofile();
    if (s.max_fds < 64) {
        fprintf(stderr, "%s: too few file descriptors (RLIMIT_NOFILE %d, need 64)\n", model,
                s.max_fds);
        return 1;
    }
    /* Under a small RLIMIT_NOFILE, keep back half rather than leave no room at all:
     * the file cache then meets EMFILE sooner and serves uncached. */
    int kept = FDS_KEPT_BACK < s.max_fds / 2 ? FDS_KEPT_BACK : s.max_fds / 2;
    s.max_conns = s.cfg.max_conns;
    if (s.max_conns > s.max_fds - kept)
        s.max_conns = s.max_fds - kept;
    s.env.idle_timeout_ms = (uint32_t)s.cfg.idle_timeout_s * 1000;
    deadline_list_init(&s.env.idle);

    s.env.root_fd = open(s.cfg.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s.env.root_fd < 0) {
        fprintf(stderr, "%s: cannot use root %s: %s\n", model, s.cfg.root, strerror(errno));
        goto out;
    }
    s.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    s.conns = calloc((size_t)s.max_fds, conn_size);
    if (s.reserve_fd < 0 || !s.conns) {
        fprintf(stderr, "%s: cannot allocate the connection table: %s\n", model, strerror(errno));
        goto out;
    }
    if (how == SERVER_WORKERS_SHARED && processes > 1) {
        s.all_nconns = mmap(NULL, sizeof *s.all_nconns, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (s.all_nconns == MAP_FAILED) {
            s.all_nconns = NULL;
            fprintf(stderr, "%s: cannot share the connection count: %s\n", model, strerror(errno));
            goto out;
        }
    }
    int port = s.cfg.port;
    if (listen_all(&s, how, listeners, processes, &port) < 0) {
        fprintf(stderr, "%s: cannot listen on %s:%d: %s\n", model, s.cfg.addr, s.cfg.port,
                strerror(errno));
        goto out;
    }
    s.listen_fd = listeners[0];
    if (drop_privileges(&s) < 0) {
        for (int i = 1; i < processes; i++)
            if (listeners[i] != listeners[0])
                close(listeners[i]);
        goto out;
    }
    /* Printed once every listener listens: a connection made now is queued, whichever
     * worker the kernel gives it to. */
    fprintf(stderr,
            strchr(s.cfg.addr, ':') ? "listening on [%s]:%d model=%s root=%s\n"
                                    : "listening on %s:%d model=%s root=%s\n",
            s.cfg.addr, port, model, s.cfg.root);
    fflush(stderr);

    if (processes == 1) {
        rc = run(&s) == 0 ? 0 : 1;
    } else {
        rc = workers_run(&s, run, listeners, processes, &in_worker) == 0 ? 0 : 1;
        if (!in_worker)
            s.listen_fd = -1; /* closed once the workers had them */
    }
    if (!in_worker)
        fprintf(stderr, "served %lu requests on %lu connections\n", atomic_load(&s.env.requests),
                atomic_load(&s.connections));
out:
    if (s.listen_fd >= 0)
        close(s.listen_fd);
    if (s.env.root_fd >= 0)
        close(s.env.root_fd);
    if (s.reserve_fd >= 0)
        close(s.reserve_fd);
    if (s.all_nconns)
        munmap(s.all_nconns, sizeof *s.all_nconns);
    free(s.conns);
    conn_pool_drain();
    return rc;
}
