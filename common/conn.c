/*
 * conn.c - one connection's life: read a request, plan the answer, send the
 * head, send the body, then the next pipelined request or the next read.
 * Nothing here blocks or knows which I/O model is driving it.
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "clock.h"
#include "server.h"

#define SENDFILE_MAX 0x7ffff000 /* the most Linux moves in one sendfile call */
#define POOL_KEEP 4096          /* free buffers kept for reuse per thread */

/* ---- buffer pool: a buffer only while a request is in flight ----------------- */

struct pool_buf {
    struct pool_buf *next;
};

static _Thread_local struct pool_buf *pool_free;
static _Thread_local int pool_count;

static char *pool_get(void)
{
    struct pool_buf *b = pool_free;
    if (b) {
        pool_free = b->next;
        pool_count--;
        return (char *)b;
    }
    return malloc(CONN_BUF_SIZE);
}

static void pool_put(char *p)
{
    if (pool_count >= POOL_KEEP) {
        free(p);
        return;
    }
    struct pool_buf *b = (struct pool_buf *)p;
    b->next = pool_free;
    pool_free = b;
    pool_count++;
}

void conn_pool_drain(void)
{
    while (pool_free) {
        struct pool_buf *b = pool_free;
        pool_free = b->next;
        free(b);
    }
    pool_count = 0;
}

/* ---- deadlines: a list kept in deadline order, because every timeout is equal -- */

void conn_forget_deadline(struct conn *c)
{
    if (!c->idle_next)
        return;
    c->idle_prev->idle_next = c->idle_next;
    c->idle_next->idle_prev = c->idle_prev;
    c->idle_next = c->idle_prev = NULL;
}

void conn_start_deadline(struct server *s, struct conn *c, uint64_t now_ms)
{
    conn_forget_deadline(c);
    c->deadline_ms = now_ms + s->idle_timeout_ms;
    c->idle_prev = s->idle.idle_prev;
    c->idle_next = &s->idle;
    s->idle.idle_prev->idle_next = c;
    s->idle.idle_prev = c;
}

/* Restarts the deadline of a connection that lives on the list. */
static void idle_touch(struct server *s, struct conn *c)
{
    if (!c->idle_next) /* bin/blocking's connections use SO_RCVTIMEO instead */
        return;
    conn_start_deadline(s, c, clock_now_ms());
}

struct conn *conn_next_expired(struct server *s, uint64_t now_ms)
{
    struct conn *c = s->idle.idle_next;
    return c != &s->idle && c->deadline_ms <= now_ms ? c : NULL;
}

int conn_ms_to_next_deadline(struct server *s, uint64_t now_ms, int max_ms)
{
    struct conn *c = s->idle.idle_next;
    if (c == &s->idle)
        return max_ms;
    if (c->deadline_ms <= now_ms)
        return 0;
    uint64_t ms = c->deadline_ms - now_ms;
    return ms < (uint64_t)max_ms ? (int)ms : max_ms;
}

/* ---- the state machine ------------------------------------------------------- */

void conn_init(struct conn *c, int fd)
{
    uint32_t gen = c->gen + 1;
    *c = (struct conn){.fd = fd, .gen = gen, .want = CONN_READ, .open = true};
    c->res.file_fd = -1;
    c->res.file.fd = -1;
}

struct conn *conn_open(struct server *s, int fd)
{
    if (fd < 0 || fd >= s->max_fds)
        return NULL;
    struct conn *c = &s->conns[fd];
    conn_init(c, fd);
    c->idle_next = c->idle_prev = c; /* marks it as one that lives on the deadline list */
    idle_touch(s, c);
    return c;
}

static void conn_release_buf(struct conn *c)
{
    if (c->buf) {
        pool_put(c->buf);
        c->buf = NULL;
    }
    c->in_off = c->in_len = c->in_scan = 0;
}

void conn_close(struct server *s, struct conn *c)
{
    (void)s;
    handler_release(&c->res);
    conn_release_buf(c);
    conn_forget_deadline(c);
    c->want = CONN_CLOSE;
    c->open = false;
}

int conn_rx_buf(struct conn *c, char **p, size_t *n)
{
    if (!c->buf) {
        c->buf = pool_get();
        if (!c->buf)
            return -1;
    }
    if (c->in_off > 0) { /* keep the unparsed tail at the front: a request is never split */
        memmove(c->buf, c->buf + c->in_off, c->in_len);
        c->in_off = 0;
    }
    *p = c->buf + c->in_len;
    *n = CONN_IN_CAP - c->in_len;
    return 0;
}

/* Parses what is buffered and plans the response, or asks for more input. */
static enum conn_want conn_process(struct server *s, struct conn *c)
{
    struct http_request req;
    size_t scan = c->in_scan;
    char *out = c->buf + CONN_IN_CAP;
    int r = http_parse_request(c->buf + c->in_off, c->in_len, &scan, &req);

    c->in_scan = (uint32_t)scan;
    if (r == HTTP_PARTIAL)
        return c->want = CONN_READ;
    if (r < 0) {
        handler_prepare_error(-r, false, out, CONN_OUT_CAP, &c->res);
        c->in_len = 0; /* the rest of the stream is not trusted */
        c->linger = true;
    } else {
        handler_prepare_response(s->root_fd, &req, out, CONN_OUT_CAP, &c->res);
        c->in_off += (uint32_t)r;
        c->in_len -= (uint32_t)r;
        c->in_scan = 0;
        idle_touch(s, c); /* the answer gets the full timeout to go out */
        if (c->res.close && c->res.status >= 400)
            c->linger = true;
    }
    c->out_off = 0;
    return c->want = CONN_WRITE;
}

enum conn_want conn_on_input(struct server *s, struct conn *c, size_t n)
{
    if (n == 0)
        return c->want = CONN_CLOSE;
    c->in_len += (uint32_t)n;
    return conn_process(s, c);
}

void conn_tx(const struct conn *c, struct conn_tx *tx)
{
    const struct response *res = &c->res;
    uint32_t mem_len = res->head_len + res->body_len;

    *tx = (struct conn_tx){.file_fd = res->file_fd, .file_off = res->file_off};
    if (c->out_off < res->head_len) {
        tx->buf = c->buf + CONN_IN_CAP + c->out_off;
        tx->len = res->head_len - c->out_off;
        tx->buf2 = res->body;
        tx->len2 = res->body_len;
    } else if (c->out_off < mem_len) {
        tx->buf = res->body + (c->out_off - res->head_len);
        tx->len = mem_len - c->out_off;
    } else {
        tx->file_len = res->file_len < SENDFILE_MAX ? (size_t)res->file_len : SENDFILE_MAX;
    }
    tx->more = tx->len > 0 && (tx->len2 > 0 || res->file_fd >= 0);
}

/* The response is out: count it, then the next pipelined request, a read, or close. */
static enum conn_want conn_response_done(struct server *s, struct conn *c)
{
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    handler_release(&c->res);
    if (c->res.close)
        return c->want = CONN_CLOSE;
    idle_touch(s, c); /* the idle timeout restarts with each answered request */
    if (c->in_len > 0)
        return conn_process(s, c);
    conn_release_buf(c);
    return c->want = CONN_READ;
}

enum conn_want conn_on_output(struct server *s, struct conn *c, size_t n)
{
    struct response *res = &c->res;
    uint32_t mem_len = res->head_len + res->body_len;
    if (c->out_off < mem_len) { /* n counts head bytes, then memory-body bytes */
        c->out_off += (uint32_t)n;
        if (c->out_off < mem_len || res->file_fd >= 0) {
            idle_touch(s, c); /* progress: a slow reader is not an idle one */
            return c->want = CONN_WRITE;
        }
        return conn_response_done(s, c);
    }
    if (n == 0) /* the file shrank while we sent it: the promised length cannot be kept */
        return c->want = CONN_CLOSE;
    res->file_off += (off_t)n;
    res->file_len -= n;
    if (res->file_len > 0) {
        idle_touch(s, c); /* progress: a slow reader is not an idle one */
        return c->want = CONN_WRITE;
    }
    return conn_response_done(s, c);
}

/* ---- nonblocking socket I/O for the readiness models -------------------------- */

enum conn_want conn_drive(struct server *s, struct conn *c)
{
    for (;;) {
        if (c->want == CONN_READ) {
            char *p;
            size_t n;
            /* EAGAIN emptied the socket, and no event said more came since
             * (the loop clears rx_drained on input readiness): skip the read. */
            if (c->rx_drained)
                return CONN_READ;
            if (conn_rx_buf(c, &p, &n) < 0)
                return c->want = CONN_CLOSE;
            ssize_t r = recv(c->fd, p, n, 0);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    c->rx_drained = true;
                    if (c->in_len == 0) /* idle: hold no buffer while nothing is pending */
                        conn_release_buf(c);
                    return CONN_READ;
                }
                if (errno == EINTR)
                    continue;
                return c->want = CONN_CLOSE;
            }
            /* A short read is not proof of "drained": a FIN that came in the same
             * edge as the data is seen only by the next read, and no event follows. */
            conn_on_input(s, c, (size_t)r);
        } else if (c->want == CONN_WRITE) {
            struct conn_tx tx;
            ssize_t r;
            conn_tx(c, &tx);
            if (tx.len2 > 0) { /* head and an in-memory body in one call */
                struct iovec iov[2] = {{(void *)tx.buf, tx.len}, {(void *)tx.buf2, tx.len2}};
                struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
                r = sendmsg(c->fd, &msg, tx.file_fd >= 0 ? MSG_MORE : 0);
            } else if (tx.len > 0) {
                r = send(c->fd, tx.buf, tx.len, tx.more ? MSG_MORE : 0);
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
            conn_on_output(s, c, (size_t)r);
        } else {
            return CONN_CLOSE;
        }
    }
}

void conn_drain_input(int fd)
{
    char sink[4096];
    for (int i = 0; i < 16; i++)
        if (recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0)
            break;
}
