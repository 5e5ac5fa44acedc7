/*
 * pollset.h - the poller of bin/poll and bin/busypoll: nothing but a dense
 * pollfd array. pollset.c implements poller_create/destroy/add/mod/del over
 * it; poll.c and busypoll.c each add only their poller_wait(), which is where
 * the two models differ. The Makefile links pollset.o into those two only.
 */
#ifndef C10K_POLLSET_H
#define C10K_POLLSET_H

#include "fdarray.h"
#include "poller.h"

struct poller {
    struct fdarray set; /* every watched fd and the poll events it waits for */
};

#endif
