/*
 * pollset.h - the poller of bin/poll and bin/busypoll: nothing but a dense
 * pollfd array. pollset.c implements poller_create/destroy/add/mod/del over
 * it; poll.c and busypoll.c each add only their poller_wait(), which is where
 * the two models differ. (The linker takes pollset.o from libc10k.a only for
 * binaries that do not define those functions themselves.)
 */
#ifndef C10K_POLLSET_H
#define C10K_POLLSET_H

#include "fdarray.h"
#include "poller.h"

struct poller {
    struct fdarray set; /* every watched fd and the poll events it waits for */
};

#endif
