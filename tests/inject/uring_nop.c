/*
 * uring_nop.c - LD_PRELOAD: one more io_uring operation (a NOP) in every submission
 * of bin/uring's and bin/corouring's loops (io_uring_submit_and_wait_timeout, liburing
 * being linked dynamically). It costs no system call: only the count of operations
 * submitted shows it, and the deterministic gate must name it: "uring, keep-alive:
 * io_uring_op:NOP +2.00/request (new)" (the loop submits twice per request). The NOP
 * asks for no completion on success (IOSQE_CQE_SKIP_SUCCESS), so the server never
 * sees it.
 */
#include <liburing.h>

#include "inject.h"

int io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
                                     unsigned wait_nr, struct __kernel_timespec *ts,
                                     sigset_t *sigmask)
{
    static int (*real_submit)(struct io_uring *, struct io_uring_cqe **, unsigned,
                              struct __kernel_timespec *, sigset_t *);
    if (!real_submit)
        real_submit = inject_next("io_uring_submit_and_wait_timeout");
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe) {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS);
    }
    return real_submit(ring, cqe_ptr, wait_nr, ts, sigmask);
}
