/*
 * drive.c - the I/O of the readiness models: nonblocking recv, send and
 * sendfile until the kernel says EAGAIN. Shared by loop.c's loop and by
 * bin/actor's loops, which differ in who watches the sockets, not in this.
 */
#include "drive.h"

#include <errno.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

enum conn_want conn_drive(struct conn *c, uint8_t *rx)
{
    for (;;) {
        if (c->want == CONN_READ) {
            char *p;
            size_t n;
            if (*rx == RX_DRAINED) /* the read could only say EAGAIN */
                return CONN_READ;
            if (conn_rx_buf(c, &p, &n) < 0)
                return c->want = CONN_CLOSE;
            ssize_t r = recv(c->fd, p, n, 0);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    *rx = RX_DRAINED;
                    conn_rx_idle(c);
                    return CONN_READ;
                }
                if (errno == EINTR)
                    continue;
                return c->want = CONN_CLOSE;
            }
            conn_rx_read(rx, (size_t)r, n);
            conn_on_input(c, (size_t)r);
        } else if (c->want == CONN_WRITE) {
            struct conn_tx tx;
            ssize_t r;
            conn_tx(c, &tx, true);
            int flags = tx.more ? MSG_MORE : 0;
            if (tx.len2 > 0) { /* head and an in-memory body in one call */
                struct iovec iov[2] = {{(void *)tx.buf, tx.len}, {(void *)tx.buf2, tx.len2}};
                struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
                r = sendmsg(c->fd, &msg, flags);
            } else if (tx.len > 0) {
                r = send(c->fd, tx.buf, tx.len, flags);
            } else {
                off_t off = tx.file_off;
                r = sendfile(c->fd, tx.file_fd, &off, tx.file_len);
            }
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return CONN_WRITE;
                if (errno == EINTR)
                    continue;
                return c->want = CONN_CLOSE;
            }
            conn_on_output(c, (size_t)r);
        } else {
            return CONN_CLOSE;
        }
    }
}
