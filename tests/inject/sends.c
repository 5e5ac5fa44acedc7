/*
 * sends.c - the calls a server sends a response with (send, sendto, sendmsg, writev,
 * sendfile), wrapped: each runs inject_before_send(), then libc's. Linked into every
 * library of tests/inject/.
 */
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "inject.h"

/* Weak: the library's own definition, if it has one, replaces it. */
__attribute__((weak)) void inject_before_send(void)
{
}

__attribute__((weak)) size_t inject_sendfile_count(size_t count)
{
    return count;
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    static ssize_t (*real_send)(int, const void *, size_t, int);
    if (!real_send)
        real_send = inject_next("send");
    inject_before_send();
    return real_send(fd, buf, len, flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
               socklen_t to_len)
{
    static ssize_t (*real_sendto)(int, const void *, size_t, int, const struct sockaddr *,
                                  socklen_t);
    if (!real_sendto)
        real_sendto = inject_next("sendto");
    inject_before_send();
    return real_sendto(fd, buf, len, flags, to, to_len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
    if (!real_sendmsg)
        real_sendmsg = inject_next("sendmsg");
    inject_before_send();
    return real_sendmsg(fd, msg, flags);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    static ssize_t (*real_writev)(int, const struct iovec *, int);
    if (!real_writev)
        real_writev = inject_next("writev");
    inject_before_send();
    return real_writev(fd, iov, n);
}

ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    static ssize_t (*real_sendfile)(int, int, off_t *, size_t);
    if (!real_sendfile)
        real_sendfile = inject_next("sendfile");
    inject_before_send();
    return real_sendfile(out_fd, in_fd, offset, inject_sendfile_count(count));
}
