/*
 * inject.h - what the injected regressions share. Each library in tests/inject/ is an
 * LD_PRELOAD that makes every server a little worse in one way, so that
 * tests/test_detgate.py can show make bench-ci failing on it. Every library is linked
 * with sends.c, whose wrappers of the response-sending calls run inject_before_send().
 */
#ifndef C10K_INJECT_H
#define C10K_INJECT_H

#include <dlfcn.h>
#include <stddef.h>

/* The next definition of name after this library's own: libc's. */
static inline void *inject_next(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* Runs before each send, sendto, sendmsg, writev and sendfile; sends.c's own does nothing,
 * a library that defines it adds its regression there. */
void inject_before_send(void);

/* Runs after each accept4 and accept with the fd it returned (-1 on an error);
 * accepts.c's own does nothing. */
void inject_after_accept(int fd);

/* The count each sendfile passes on to libc's (sends.c's own: count, unchanged). */
size_t inject_sendfile_count(size_t count);

#endif
