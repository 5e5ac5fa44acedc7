/*
 * extra_syscall.c - LD_PRELOAD: one more system call (getppid) before every call that
 * sends a response (sends.c). The deterministic gate must name it: "epoll, keep-alive:
 * getppid +1.00/request (new)".
 */
#include <sys/syscall.h>
#include <unistd.h>

#include "inject.h"

/* A raw syscall: glibc's getppid() wrapper is not cached today, but this cannot be. */
void inject_before_send(void)
{
    (void)syscall(SYS_getppid);
}
