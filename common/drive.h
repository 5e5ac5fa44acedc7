/* drive.h - the nonblocking I/O that every readiness loop does once a socket is ready. */
#ifndef C10K_DRIVE_H
#define C10K_DRIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"

/* What a loop knows of a socket's input, so that it makes no read that can only
 * say EAGAIN (one syscall per request saved). */
enum conn_rx {
    RX_READY,   /* input may be there: read */
    RX_DRAINED, /* a read said EAGAIN or came up short, and no input event came since */
    RX_HUP,     /* the peer may have shut down: read on until EAGAIN or end of stream */
};

/* Updates *rx for an event that said input (in) or a hang-up (hup) may have come. */
static inline void conn_rx_event(uint8_t *rx, bool in, bool hup)
{
    if (hup)
        *rx = RX_HUP;
    else if (in && *rx == RX_DRAINED)
        *rx = RX_READY;
}

/* After a read of r bytes into a buffer of n: a short read emptied the socket,
 * unless a hang-up was reported, since a FIN that came in the same edge as the
 * data shows only to the next read and no later event would tell of it. */
static inline void conn_rx_read(uint8_t *rx, size_t r, size_t n)
{
    if (r < n && *rx == RX_READY)
        *rx = RX_DRAINED;
}

/*
 * The I/O of the readiness models (loop.c's loop, bin/actor's loops):
 * nonblocking recv/send/sendfile until the socket would block; returns what
 * the connection waits for. *rx is the socket's enum conn_rx, which the loop
 * updates with conn_rx_event() on each event.
 */
enum conn_want conn_drive(struct conn *c, uint8_t *rx);

#endif
