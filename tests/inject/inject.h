/*
 * inject.h - what the injected regressions share. Each library in tests/inject/ is an
 * LD_PRELOAD that makes every server a little worse in one way, so that
 * tests/test_detgate.py can show make bench-ci failing on it.
 */
#ifndef C10K_INJECT_H
#define C10K_INJECT_H

#include <dlfcn.h>

/* The next definition of name after this library's own: libc's. */
static inline void *inject_next(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

#endif
