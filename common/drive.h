/* drive.h - the nonblocking I/O that every readiness loop does once a socket is ready. */
#ifndef C10K_DRIVE_H
#define C10K_DRIVE_H

#include <stdbool.h>

#include "conn.h"

/*
 * The I/O of the readiness models (loop.c's loop, bin/actor's loops):
 * nonblocking recv/send/sendfile until the socket would block; returns what
 * the connection waits for.
 * *rx_drained: a read said EAGAIN and no input event came since, so
 * a read would only say EAGAIN; the loop clears it on an input event.
 */
enum conn_want conn_drive(struct conn *c, bool *rx_drained);

#endif
