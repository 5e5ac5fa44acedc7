/*
 * serve_blocking.h - the blocking I/O of model 1, shared by the binaries that
 * give each connection a thread (bin/blocking, bin/prefork's processes) or a
 * process (bin/fork's children).
 */
#ifndef C10K_SERVE_BLOCKING_H
#define C10K_SERVE_BLOCKING_H

#include <stdint.h>

#include "server.h"

/* Serves fd with blocking recv/send/sendfile until it is done, idle too long, or
 * the server stops; frees the connection's state but leaves fd open. */
void serve_blocking(struct server *s, int fd);

/* The run() of bin/blocking: accepts in this thread, a detached thread per
 * connection; on stop, wakes every one out of its recv/send and waits for them. */
int serve_threads(struct server *s);

/* SO_RCVTIMEO or SO_SNDTIMEO (opt) of fd, in ms (0 means 1 ms, not "never"). */
void serve_set_timeout(int fd, int opt, uint64_t ms);

#endif
