/*
 * extra_insns.c - LD_PRELOAD: C10K_INJECT_INSNS more user-space instructions (default
 * 200, about 5% of what bin/epoll spends on a keep-alive request) before every call
 * that sends a response: send, sendto, sendmsg, writev, sendfile. No system call is
 * added, so only the instruction count can see it.
 */
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "inject.h"

static unsigned long spin_iterations = 100;

__attribute__((constructor)) static void read_size(void)
{
    const char *n = getenv("C10K_INJECT_INSNS");
    if (n)
        spin_iterations = strtoul(n, NULL, 10) / 2;
}

/* Two instructions an iteration (dec, jnz), whatever the compiler does around it. */
static void spin(void)
{
    unsigned long n = spin_iterations;
    if (n)
        __asm__ volatile("1: dec %0\n\tjnz 1b" : "+r"(n) : : "cc");
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    static ssize_t (*real_send)(int, const void *, size_t, int);
    if (!real_send)
        real_send = inject_next("send");
    spin();
    return real_send(fd, buf, len, flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
               socklen_t to_len)
{
    static ssize_t (*real_sendto)(int, const void *, size_t, int, const struct sockaddr *,
                                  socklen_t);
    if (!real_sendto)
        real_sendto = inject_next("sendto");
    spin();
    return real_sendto(fd, buf, len, flags, to, to_len);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
    if (!real_sendmsg)
        real_sendmsg = inject_next("sendmsg");
    spin();
    return real_sendmsg(fd, msg, flags);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    static ssize_t (*real_writev)(int, const struct iovec *, int);
    if (!real_writev)
        real_writev = inject_next("writev");
    spin();
    return real_writev(fd, iov, n);
}

ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    static ssize_t (*real_sendfile)(int, int, off_t *, size_t);
    if (!real_sendfile)
        real_sendfile = inject_next("sendfile");
    spin();
    return real_sendfile(out_fd, in_fd, offset, count);
}
