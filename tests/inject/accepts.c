/*
 * accepts.c - the calls a server accepts a connection with (accept4, accept), wrapped:
 * each runs libc's, then inject_after_accept() with the fd it returned. Linked into
 * every library of tests/inject/, as sends.c is.
 */
#include <sys/socket.h>

#include "inject.h"

/* Weak: the library's own definition, if it has one, replaces it. */
__attribute__((weak)) void inject_after_accept(int fd)
{
    (void)fd;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
    if (!real_accept4)
        real_accept4 = inject_next("accept4");
    int r = real_accept4(fd, addr, len, flags);
    inject_after_accept(r);
    return r;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    static int (*real_accept)(int, struct sockaddr *, socklen_t *);
    if (!real_accept)
        real_accept = inject_next("accept");
    int r = real_accept(fd, addr, len);
    inject_after_accept(r);
    return r;
}
