/*
 * extra_insns.c - LD_PRELOAD: C10K_INJECT_INSNS more user-space instructions (default
 * 200, about 5% of what bin/epoll spends on a keep-alive request) before every call
 * that sends a response (sends.c). No system call is added, so only the instruction
 * count can see it.
 */
#include <stdlib.h>

#include "inject.h"

static unsigned long spin_iterations = 100;

__attribute__((constructor)) static void read_size(void)
{
    const char *n = getenv("C10K_INJECT_INSNS");
    if (n)
        spin_iterations = strtoul(n, NULL, 10) / 2;
}

/* Two instructions an iteration (dec, jnz), whatever the compiler does around it. */
void inject_before_send(void)
{
    unsigned long n = spin_iterations;
    if (n)
        __asm__ volatile("1: dec %0\n\tjnz 1b" : "+r"(n) : : "cc");
}
