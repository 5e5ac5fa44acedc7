/*
 * coro.h - small stackful coroutines: a function that can stop halfway,
 * keep its locals on a stack of its own, and go on later from that point.
 *
 *     co = coro_create(&pool, fn, arg)   a coroutine that will run fn(arg)
 *     coro_resume(co)                    runs it until it yields or returns
 *     coro_yield()                       (inside it) goes back to coro_resume's caller
 *     coro_destroy(co)                   gives its stack back to the pool
 *
 * Resume and yield are asymmetric, like a call and its return: a coroutine
 * always yields to whoever resumed it. Stacks are mmap'd with a guard page
 * and kept in the pool for reuse. A suspended coroutine cannot be unwound
 * from outside (C has no exceptions): to stop one, make whatever it waits
 * for fail, resume it, and let it return. Not thread-safe: one pool and its
 * coroutines belong to one thread. Functions that fail return NULL or -1
 * and leave errno.
 */
#ifndef C10K_CORO_H
#define C10K_CORO_H

#include <stdbool.h>
#include <stddef.h>

#define CORO_STACK_SIZE (64 * 1024)

typedef void coro_fn(void *arg);

struct coro;

/* Finished coroutines whose stacks wait for reuse. */
struct coro_pool {
    struct coro *free;
    size_t stack_size; /* the stack, with the struct coro at its top */
    size_t map_size;   /* the whole mapping: guard page + stack */
    size_t page;
    unsigned nfree, keep;
};

/* Stacks of stack_size bytes (rounded up to pages); keeps up to keep of them. */
void coro_pool_init(struct coro_pool *pool, size_t stack_size, unsigned keep);
/* Unmaps the kept stacks; every coroutine of the pool must be destroyed first. */
int coro_pool_drain(struct coro_pool *pool);

/* A coroutine that will run fn(arg) when first resumed; NULL if out of memory. */
struct coro *coro_create(struct coro_pool *pool, coro_fn *fn, void *arg);
/* Runs co until it yields (returns true) or its function returns (false). */
bool coro_resume(struct coro *co);
/* Suspends the running coroutine; coro_resume(co) continues it from here. */
void coro_yield(void);
/* Frees a coroutine that finished or never started: its stack is kept in the
 * pool for the next coro_create(), or unmapped if the pool is full. */
int coro_destroy(struct coro *co);

#endif
