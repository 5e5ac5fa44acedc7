/*
 * conn.c - one connection's life: read a request, plan the answer, send the
 * head, send the body, then the next pipelined request or the next read.
 * Nothing here makes a system call, blocks, or knows which I/O model is
 * driving it: the model moves the bytes and reports how many.
 */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"

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

/* ---- deadlines: every connection has the same idle timeout ------------------- */

void conn_start_deadline(struct conn *c, uint64_t now_ms)
{
    deadline_add(&c->env->idle, &c->deadline, now_ms + c->env->idle_timeout_ms);
}

void conn_forget_deadline(struct conn *c)
{
    deadline_remove(&c->deadline);
}

/* Restarts the deadline of a connection that lives on the list. */
static void idle_touch(struct conn *c)
{
    if (!deadline_listed(&c->deadline)) /* bin/blocking's use SO_RCVTIMEO instead */
        return;
    conn_start_deadline(c, clock_now_ms());
}

struct conn *conn_next_expired(struct conn_env *env, uint64_t now_ms)
{
    struct deadline *d = deadline_expired(&env->idle, now_ms);
    return d ? container_of(d, struct conn, deadline) : NULL;
}

/* ---- the state machine ------------------------------------------------------- */

void conn_init(struct conn *c, struct conn_env *env, int fd)
{
    *c = (struct conn){.fd = fd, .want = CONN_READ, .open = true, .env = env};
    c->res.file_fd = -1;
    c->res.file.fd = -1;
}

static void conn_release_buf(struct conn *c)
{
    if (c->buf) {
        pool_put(c->buf);
        c->buf = NULL;
    }
    c->in_off = c->in_len = c->in_scan = 0;
}

void conn_close(struct conn *c)
{
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

void conn_rx_idle(struct conn *c)
{
    if (c->in_len == 0) /* hold no buffer while nothing is pending */
        conn_release_buf(c);
}

/* Plans the response to a parsed request (r > 0 bytes) or to a bad one (r < 0,
 * -status); req's slices are read only here. The caller drops the r bytes. */
static enum conn_want conn_plan(struct conn *c, int r, const struct http_request *req)
{
    char *out = c->buf + CONN_IN_CAP;
    if (r < 0) {
        handler_prepare_error(-r, false, out, CONN_OUT_CAP, &c->res);
        c->in_len = 0; /* the rest of the stream is not trusted */
        c->linger = true;
    } else {
        handler_prepare_response(c->env->root_fd, req, out, CONN_OUT_CAP, &c->res);
        c->in_scan = 0;
        idle_touch(c); /* the answer gets the full timeout to go out */
        if (c->res.close && c->res.status >= 400)
            c->linger = true;
    }
    c->out_off = 0;
    return c->want = CONN_WRITE;
}

/* Parses what is buffered and plans the response, or asks for more input. */
static enum conn_want conn_process(struct conn *c)
{
    struct http_request req;
    size_t scan = c->in_scan;
    int r = http_parse_request(c->buf + c->in_off, c->in_len, &scan, &req);

    c->in_scan = (uint32_t)scan;
    if (r == HTTP_PARTIAL)
        return c->want = CONN_READ;
    if (r > 0) {
        c->in_off += (uint32_t)r;
        c->in_len -= (uint32_t)r;
    }
    return conn_plan(c, r, &req);
}

enum conn_want conn_on_input(struct conn *c, size_t n)
{
    if (n == 0)
        return c->want = CONN_CLOSE;
    c->in_len += (uint32_t)n;
    return conn_process(c);
}

enum conn_want conn_on_input_from(struct conn *c, const char *data, size_t n)
{
    struct http_request req;
    size_t scan = 0, room;
    char *p;

    if (n == 0)
        return c->want = CONN_CLOSE;
    if (conn_rx_buf(c, &p, &room) < 0 || n > room) /* the buffer also takes the head */
        return c->want = CONN_CLOSE;
    if (c->in_len == 0) {
        int r = http_parse_request(data, n, &scan, &req);
        if (r != HTTP_PARTIAL) { /* the whole request is in data: planned from there */
            conn_plan(c, r, &req);
            if (r > 0 && (size_t)r < n) { /* pipelined: the next request's bytes are kept */
                memcpy(p, data + r, n - (size_t)r);
                c->in_len = (uint32_t)(n - (size_t)r);
            }
            return c->want;
        }
        c->in_scan = (uint32_t)scan; /* the search for the head's end resumes there */
    }
    memcpy(p, data, n); /* a request split across receives is put together in c->buf */
    return conn_on_input(c, n);
}

void conn_tx(const struct conn *c, struct conn_tx *tx, bool gather)
{
    const struct response *res = &c->res;
    uint32_t mem_len = res->head_len + res->body_len;

    *tx = (struct conn_tx){.file_fd = res->file_fd, .file_off = res->file_off};
    if (c->out_off < res->head_len) {
        tx->buf = c->buf + CONN_IN_CAP + c->out_off;
        tx->len = res->head_len - c->out_off;
        if (gather) {
            tx->buf2 = res->body;
            tx->len2 = res->body_len;
        }
    } else if (c->out_off < mem_len) {
        tx->buf = res->body + (c->out_off - res->head_len);
        tx->len = mem_len - c->out_off;
    } else {
        tx->file_len = res->file_len < SENDFILE_MAX ? (size_t)res->file_len : SENDFILE_MAX;
    }
    /* More follows unless this is the response's last segment: MSG_MORE then
     * holds back no partial packet, and the peer is not kept waiting. */
    tx->more = tx->len > 0 && (c->out_off + tx->len + tx->len2 < mem_len || res->file_fd >= 0);
}

/* The response is out: count it, then the next pipelined request, a read, or close. */
static enum conn_want conn_response_done(struct conn *c)
{
    atomic_fetch_add_explicit(&c->env->requests, 1, memory_order_relaxed);
    handler_release(&c->res);
    if (c->res.close)
        return c->want = CONN_CLOSE;
    idle_touch(c); /* the idle timeout restarts with each answered request */
    if (c->in_len > 0)
        return conn_process(c);
    conn_release_buf(c);
    return c->want = CONN_READ;
}

enum conn_want conn_on_output(struct conn *c, size_t n)
{
    struct response *res = &c->res;
    uint32_t mem_len = res->head_len + res->body_len;
    if (c->out_off < mem_len) { /* n counts head bytes, then memory-body bytes */
        c->out_off += (uint32_t)n;
        if (c->out_off < mem_len || res->file_fd >= 0) {
            idle_touch(c); /* progress: a slow reader is not an idle one */
            return c->want = CONN_WRITE;
        }
        return conn_response_done(c);
    }
    if (n == 0) /* the file shrank while we sent it: the promised length cannot be kept */
        return c->want = CONN_CLOSE;
    res->file_off += (off_t)n;
    res->file_len -= n;
    if (res->file_len > 0) {
        idle_touch(c); /* progress: a slow reader is not an idle one */
        return c->want = CONN_WRITE;
    }
    return conn_response_done(c);
}
