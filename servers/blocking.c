/*
 * blocking.c - model 1, blocking I/O: one thread per connection.
 *
 * Every call here may put the thread to sleep: accept() until a client
 * connects, recv() until a request arrives (waiting for data) and while the
 * kernel copies it in (copying the data), send() and sendfile() until the
 * socket buffer has room. The code reads top to bottom like the protocol,
 * and the kernel scheduler is the event loop: each waiting connection is a
 * sleeping thread with its own stack, which is what C10K is about.
 *
 * What to look at: serve_blocking() in common/serve_blocking.c is the whole
 * model (bin/fork and bin/prefork run it too, in processes). Threads get small
 * stacks (128 KiB) so that 10,000 of them fit; the idle timeout is the
 * kernel's SO_RCVTIMEO, narrowed while a request is half-read so that a
 * slowloris cannot stretch it byte by byte; likewise SO_SNDTIMEO while a file
 * body goes out, so that a reader that stopped reading cannot stretch it.
 */
#include "serve_blocking.h"
#include "server.h"

int main(int argc, char **argv)
{
    return server_main(argc, argv, "blocking", sizeof(struct blocking_conn), serve_threads);
}
