/*
 * coro.c - a stack per coroutine, and a switch between stacks. A switch saves
 * what a called function must preserve and loads another stack's copy: on
 * x86-64, six registers and the stack pointer, in coro_swap() (15 instructions,
 * no system call); elsewhere, or with -DCORO_UCONTEXT, swapcontext(3), which
 * also sets the signal mask: one rt_sigprocmask system call per switch. make costs
 * (bench/costs.c) measures a switch one way: 9.5 ns here, about 1 us with swapcontext.
 */
#include "coro.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(__x86_64__) || defined(CORO_UCONTEXT)
#define CORO_USE_UCONTEXT 1
#include <ucontext.h>
typedef ucontext_t coro_ctx;
#else
typedef void *coro_ctx; /* the saved stack pointer; the registers are on that stack */
#endif

/* Lives at the top of its own stack mapping, so a coroutine is one mmap. */
struct coro {
    coro_ctx ctx;    /* the coroutine, while it is suspended */
    coro_ctx caller; /* whoever resumed it, while it runs */
    coro_fn *fn;
    void *arg;
    bool done;
    char *stack; /* lowest usable byte, just above the guard page */
    struct coro_pool *pool;
    struct coro *next_free;
    const void *caller_stack; /* the resumer's stack, for ASan */
    size_t caller_stack_size;
};

/* The running coroutine: coro_yield() takes no argument, so that code deep in a
 * coroutine (a read helper three calls down) can suspend without being handed
 * its coroutine; this is how it finds where to save itself and whom to return
 * to. Thread-local, so that each thread may run coroutines of its own. */
static _Thread_local struct coro *coro_current;

/* ASan tracks which stack is in use: a switch it was not told about looks like a
 * wild overflow. So each switch says "leaving for that stack", then "arrived". */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) /* how clang says it; gcc: __SANITIZE_ADDRESS__ */
#define CORO_CLANG_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(CORO_CLANG_ASAN)
#include <sanitizer/asan_interface.h>
#define asan_leave __sanitizer_start_switch_fiber
#define asan_arrive __sanitizer_finish_switch_fiber
#else
#define asan_leave(fake, stack, size) ((void)(fake), (void)(stack), (void)(size))
#define asan_arrive(fake, stack, size) ((void)(fake), (void)(stack), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#endif

/* Suspends this side, saving it in *from, and continues the side saved in *to. */
#ifdef CORO_USE_UCONTEXT
static void coro_swap(coro_ctx *from, coro_ctx *to)
{
    if (swapcontext(from, to) < 0)
        abort(); /* only its rt_sigprocmask could fail, and not with these arguments */
}
#else
/* Pushes the callee-saved registers, saves the stack pointer in *from (rdi),
 * loads *to (rsi), pops the registers saved there and returns into whatever
 * switched away from that stack, or into coro_entry. The compiler assumes a
 * call clobbers the other registers; MXCSR and the x87 control word (callee-
 * saved too) nothing here changes. Naked: no prologue. Shadow stacks would fault. */
__attribute__((naked, noinline)) static void coro_swap(__attribute__((unused)) coro_ctx *from,
                                                       __attribute__((unused)) coro_ctx *to)
{
    __asm__("pushq %rbp\n\t pushq %rbx\n\t pushq %r12\n\t"
            "pushq %r13\n\t pushq %r14\n\t pushq %r15\n\t"
            "movq %rsp, (%rdi)\n\t" /* *from = the stack pointer */
            "movq (%rsi), %rsp\n\t" /* the stack pointer = *to */
            "popq %r15\n\t popq %r14\n\t popq %r13\n\t"
            "popq %r12\n\t popq %rbx\n\t popq %rbp\n\t"
            "ret\n\t");
}
#endif

/* The first code on a new stack: runs the function, then leaves for good. */
static void coro_entry(void)
{
    struct coro *co = coro_current;
    asan_arrive(NULL, &co->caller_stack, &co->caller_stack_size);
    co->fn(co->arg);
    co->done = true;
    asan_leave(NULL, co->caller_stack, co->caller_stack_size); /* NULL: this stack is finished */
    coro_swap(&co->ctx, &co->caller);
    abort(); /* a finished coroutine is never resumed */
}

/* Makes co->ctx start coro_entry on co's stack (apart: getcontext returns twice). */
static int coro_ctx_init(struct coro *co)
{
#ifdef CORO_USE_UCONTEXT
    if (getcontext(&co->ctx) < 0)
        return -1;
    co->ctx.uc_stack.ss_sp = co->stack;
    co->ctx.uc_stack.ss_size = (size_t)((char *)co - co->stack);
    co->ctx.uc_link = NULL; /* coro_entry never returns */
    makecontext(&co->ctx, coro_entry, 0);
#else
    /* As coro_swap leaves a stack: six registers, then where to return (coro_entry);
     * above, a null return address ends backtraces and aligns as after a call. */
    void **sp = (void **)((uintptr_t)co & ~(uintptr_t)15);
    *--sp = NULL;
    *--sp = (void *)coro_entry;
    for (int i = 0; i < 6; i++)
        *--sp = NULL;
    co->ctx = sp;
#endif
    return 0;
}

void coro_pool_init(struct coro_pool *pool, size_t stack_size, unsigned keep)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    *pool = (struct coro_pool){.page = page, .keep = keep};
    pool->stack_size = (stack_size + page - 1) / page * page;
    pool->map_size = pool->stack_size + page;
}

int coro_pool_drain(struct coro_pool *pool)
{
    int rc = 0;
    for (pool->keep = 0; pool->free; pool->nfree--) { /* keep 0: coro_destroy() unmaps */
        struct coro *co = pool->free;
        pool->free = co->next_free;
        rc |= coro_destroy(co);
    }
    return rc;
}

struct coro *coro_create(struct coro_pool *pool, coro_fn *fn, void *arg)
{
    struct coro *co = pool->free;
    char *stack = co ? co->stack : NULL;
    if (co) { /* a used stack: its pages are already touched, which saves page faults */
        pool->free = co->next_free;
        pool->nfree--;
    } else {
        char *map = mmap(NULL, pool->map_size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (map == MAP_FAILED)
            return NULL;
        /* The lowest page faults when touched: an overflow crashes, it corrupts nothing. */
        if (mprotect(map, pool->page, PROT_NONE) < 0) {
            munmap(map, pool->map_size);
            return NULL;
        }
        stack = map + pool->page;
        co = (struct coro *)((uintptr_t)(map + pool->map_size - sizeof *co) & ~(uintptr_t)63);
    }
    *co = (struct coro){.fn = fn, .arg = arg, .stack = stack, .pool = pool};
    ASAN_UNPOISON_MEMORY_REGION(stack, (size_t)((char *)co - stack)); /* stale redzones */
    if (coro_ctx_init(co) < 0) {
        coro_destroy(co);
        return NULL;
    }
    return co;
}

bool coro_resume(struct coro *co)
{
    struct coro *resumer = coro_current; /* NULL unless coroutines nest */
    void *fake;
    coro_current = co;
    asan_leave(&fake, co->stack, (size_t)((char *)co - co->stack));
    coro_swap(&co->caller, &co->ctx);
    asan_arrive(fake, NULL, NULL);
    coro_current = resumer;
    return !co->done;
}

void coro_yield(void)
{
    struct coro *co = coro_current;
    void *fake;
    asan_leave(&fake, co->caller_stack, co->caller_stack_size);
    coro_swap(&co->ctx, &co->caller);
    asan_arrive(fake, &co->caller_stack, &co->caller_stack_size);
}

int coro_destroy(struct coro *co)
{
    struct coro_pool *pool = co->pool;
    if (pool->nfree >= pool->keep)
        return munmap(co->stack - pool->page, pool->map_size);
    co->next_free = pool->free;
    pool->free = co;
    pool->nfree++;
    return 0;
}
