/*
 * test_conn.c - the connection state machine, driven without a socket.
 *
 * The test plays the I/O model: it copies request bytes where conn_rx_buf()
 * says, reports them with conn_on_input(), then "sends" what conn_tx() offers
 * (the head and in-memory bodies as they are, the file part by pread) and
 * reports it with conn_on_output(), until the connection wants to read or
 * close. The fd given to server_open_conn() is a made-up number: the state
 * machine never does I/O on it.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "conn.h"
#include "fake_server.h"
#include "server.h"

#define FAKE_FD 10
#define SMALL_TEXT "hello, world\n"
#define BIG_SIZE 100000 /* over FILES_SMALL_MAX: its body is a file range, not memory */
#define GET_SMALL "GET /small.txt HTTP/1.1\r\nHost: h\r\n\r\n"
#define GET_BIG "GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n"

static struct server s;
static char *big_data;

/* ---- set-up ------------------------------------------------------------------------------ */

static void server_setup(void)
{
    fake_server_open(&s, "test_conn");
    fake_server_write("small.txt", SMALL_TEXT, strlen(SMALL_TEXT));
    big_data = malloc(BIG_SIZE);
    for (size_t i = 0; i < BIG_SIZE; i++)
        big_data[i] = (char)(i * 13 + i / 509);
    fake_server_write("big.bin", big_data, BIG_SIZE);
}

static void server_teardown(void)
{
    fake_server_close(&s);
    free(big_data);
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&t, NULL);
}

/* ---- playing the model ------------------------------------------------------------------- */

/* Puts bytes where the next read would, and reports them. */
static enum conn_want feed(struct conn *c, const char *bytes, size_t len)
{
    char *p;
    size_t room;
    if (!CHECK_EQ_INT(conn_rx_buf(c, &p, &room), 0) || !CHECK(room >= len))
        return CONN_CLOSE;
    memcpy(p, bytes, len);
    return conn_on_input(c, len);
}

static enum conn_want feed_str(struct conn *c, const char *text)
{
    return feed(c, text, strlen(text));
}

/* As io_uring's provided buffers do: the bytes arrive in the model's own buffer,
 * which is scribbled over once conn_on_input_from() returns, so that a pointer
 * kept into it shows as a wrong answer. */
static enum conn_want feed_from(struct conn *c, const char *text, size_t len)
{
    char *own = malloc(len);
    memcpy(own, text, len);
    enum conn_want want = conn_on_input_from(c, own, len);
    memset(own, 'X', len);
    free(own);
    return want;
}

/* Everything "sent" to the peer so far. */
struct wire {
    char *p;
    size_t len;
    int calls; /* conn_on_output calls made */
};

static void wire_add(struct wire *w, const void *bytes, size_t n)
{
    w->p = realloc(w->p, w->len + n + 1);
    if (!w->p)
        abort();
    memcpy(w->p + w->len, bytes, n);
    w->len += n;
    w->p[w->len] = '\0';
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/*
 * Sends while the connection wants to write, at most chunk bytes per call;
 * with gather, a head and the in-memory body after it go in one call (as
 * sendmsg does). Returns what the connection wants then.
 */
static enum conn_want send_some(struct conn *c, size_t chunk, bool gather, struct wire *w,
                                int max_calls)
{
    enum conn_want want = c->want;
    while (want == CONN_WRITE && max_calls-- > 0) {
        struct conn_tx tx;
        size_t n;
        conn_tx(c, &tx, gather);
        if (tx.len > 0) {
            n = min_size(chunk, tx.len);
            wire_add(w, tx.buf, n);
            if (gather && n == tx.len && tx.len2 > 0) {
                wire_add(w, tx.buf2, tx.len2);
                n += tx.len2;
            }
        } else if (tx.file_len > 0) {
            n = min_size(chunk, tx.file_len);
            char *tmp = malloc(n);
            if (!CHECK(pread(tx.file_fd, tmp, n, tx.file_off) == (ssize_t)n)) {
                free(tmp);
                return CONN_CLOSE;
            }
            wire_add(w, tmp, n);
            free(tmp);
        } else {
            CHECK(!"the connection wants to write but offers nothing");
            return CONN_CLOSE;
        }
        w->calls++;
        want = conn_on_output(c, n);
    }
    return want;
}

static enum conn_want send_all(struct conn *c, size_t chunk, struct wire *w)
{
    return send_some(c, chunk, false, w, 1 << 30);
}

/* One response cut from the front of the wire. */
struct reply {
    int status;
    char head[2048];
    const char *body;
    size_t body_len;
};

/* The value of a header in reply's head, or NULL. Returns a static copy. */
static const char *reply_header(const struct reply *r, const char *name)
{
    static char value[256];
    char needle[64];
    snprintf(needle, sizeof needle, "\r\n%s: ", name);
    const char *p = strstr(r->head, needle);
    if (!p)
        return NULL;
    p += strlen(needle);
    const char *eol = strstr(p, "\r\n");
    snprintf(value, sizeof value, "%.*s", (int)(eol - p), p);
    return value;
}

/*
 * Cuts the next whole response from *off: the head, then Content-Length bytes
 * unless it answers a HEAD. False if there is none.
 */
static bool next_reply(const struct wire *w, size_t *off, bool to_head, struct reply *r)
{
    const char *start = w->p + *off;
    const char *blank = w->len > *off ? memmem(start, w->len - *off, "\r\n\r\n", 4) : NULL;
    if (!blank)
        return false;
    size_t head_len = (size_t)(blank - start) + 4;
    if (head_len >= sizeof r->head || sscanf(start, "HTTP/1.1 %d ", &r->status) != 1)
        return false;
    memcpy(r->head, start, head_len);
    r->head[head_len] = '\0';
    const char *cl = reply_header(r, "Content-Length");
    size_t body_len = cl ? strtoull(cl, NULL, 10) : 0;
    if (to_head || r->status == 304)
        body_len = 0;
    if (*off + head_len + body_len > w->len)
        return false;
    r->body = start + head_len;
    r->body_len = body_len;
    *off += head_len + body_len;
    return true;
}

/*
 * Checks that the wire holds exactly responses with the given statuses, in
 * order, and fills replies. Bit i of head_mask says reply i answers a HEAD.
 */
static bool wire_is(const struct wire *w, int count, const int statuses[], unsigned head_mask,
                    struct reply replies[])
{
    size_t off = 0;
    bool ok = true;
    for (int i = 0; i < count; i++) {
        ok = CHECK(next_reply(w, &off, head_mask >> i & 1, &replies[i])) && ok;
        if (!ok)
            return false;
        ok = CHECK_EQ_INT(replies[i].status, statuses[i]) && ok;
    }
    return CHECK_EQ_INT(off, w->len) && ok; /* nothing more, nothing torn */
}

static bool body_is(const struct reply *r, const void *want, size_t len)
{
    return CHECK_EQ_INT(r->body_len, len) && CHECK(!memcmp(r->body, want, len));
}

/* A fresh connection in the fake fd's slot, on the deadline list. */
static struct conn *open_conn(void)
{
    struct conn *c = server_open_conn(&s, FAKE_FD);
    CHECK(c != NULL);
    return c;
}

/* ---- one request ------------------------------------------------------------------------- */

static void small_file_is_answered_then_read_again(void)
{
    struct wire w = {0};
    struct reply r[1];
    unsigned long requests = s.env.requests;
    struct conn *c = open_conn();

    CHECK_EQ_INT(c->want, CONN_READ);
    CHECK(c->buf == NULL); /* no buffer until input comes */
    CHECK_EQ_INT(feed_str(c, GET_SMALL), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 7, &w), CONN_READ);
    if (wire_is(&w, 1, (int[]){200}, 0, r)) {
        body_is(&r[0], SMALL_TEXT, strlen(SMALL_TEXT));
        CHECK_STR(reply_header(&r[0], "Content-Type"), "text/plain");
        CHECK(reply_header(&r[0], "Connection") == NULL);
    }
    CHECK_EQ_INT(s.env.requests, requests + 1);
    CHECK(c->buf == NULL); /* nothing in flight: the buffer went back to the pool */
    CHECK(!c->linger);
    conn_close(c);
    free(w.p);
}

static void head_and_memory_body_can_go_in_one_call(void)
{
    struct wire w = {0};
    struct reply r[1];
    struct conn_tx tx;
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, GET_SMALL), CONN_WRITE);
    conn_tx(c, &tx, false); /* a model that sends one buffer at a time */
    CHECK(tx.len > 0 && tx.len2 == 0);
    CHECK(tx.more); /* the body follows the head */
    conn_tx(c, &tx, true);
    CHECK(tx.len > 0);
    CHECK_EQ_INT(tx.len2, strlen(SMALL_TEXT));
    CHECK(tx.buf2 && !memcmp(tx.buf2, SMALL_TEXT, tx.len2));
    CHECK(!tx.more); /* head and body are the whole response: nothing to wait for */
    CHECK_EQ_INT(send_some(c, SIZE_MAX, true, &w, 1 << 30), CONN_READ);
    CHECK_EQ_INT(w.calls, 1);
    if (wire_is(&w, 1, (int[]){200}, 0, r))
        body_is(&r[0], SMALL_TEXT, strlen(SMALL_TEXT));
    conn_close(c);
    free(w.p);
}

static void big_file_goes_out_as_a_file_range(void)
{
    struct wire w = {0};
    struct reply r[1];
    struct conn_tx tx;
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, GET_BIG), CONN_WRITE);
    conn_tx(c, &tx, true);
    CHECK(tx.len > 0 && tx.len2 == 0);
    CHECK(tx.file_fd >= 0);
    CHECK(tx.more); /* the head is followed by the file at once */
    CHECK_EQ_INT(send_all(c, 4096, &w), CONN_READ);
    if (wire_is(&w, 1, (int[]){200}, 0, r))
        body_is(&r[0], big_data, BIG_SIZE);
    CHECK(c->buf == NULL);
    conn_close(c);
    free(w.p);
}

static void big_file_sent_in_one_go(void)
{
    struct wire w = {0};
    struct reply r[1];
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, GET_BIG), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, SIZE_MAX, &w), CONN_READ);
    CHECK_EQ_INT(w.calls, 2); /* the head, then the whole file */
    if (wire_is(&w, 1, (int[]){200}, 0, r))
        body_is(&r[0], big_data, BIG_SIZE);
    conn_close(c);
    free(w.p);
}

static void trickled_request_is_answered_once_complete(void)
{
    static const char text[] = GET_SMALL;
    struct wire w = {0};
    struct reply r[1];
    struct conn *c = open_conn();
    size_t len = strlen(text), first_not_read = 0;

    for (size_t i = 0; i + 1 < len; i++)
        if (feed(c, text + i, 1) != CONN_READ && !first_not_read)
            first_not_read = i + 1;
    CHECK_EQ_INT(first_not_read, 0);
    CHECK_EQ_INT(feed(c, text + len - 1, 1), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 100, &w), CONN_READ);
    if (wire_is(&w, 1, (int[]){200}, 0, r))
        body_is(&r[0], SMALL_TEXT, strlen(SMALL_TEXT));
    conn_close(c);
    free(w.p);
}

/* ---- pipelining -------------------------------------------------------------------------- */

static void pipelined_requests_are_answered_in_order(void)
{
    static const char text[] = GET_BIG GET_SMALL "HEAD /small.txt HTTP/1.1\r\nHost: h\r\n\r\n";
    struct wire w = {0};
    struct reply r[3];
    unsigned long requests = s.env.requests;
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, text), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_READ); /* no read in between */
    if (wire_is(&w, 3, (int[]){200, 200, 200}, 0x4, r)) {
        body_is(&r[0], big_data, BIG_SIZE);
        body_is(&r[1], SMALL_TEXT, strlen(SMALL_TEXT));
        CHECK_STR(reply_header(&r[2], "Content-Length"), "13");
    }
    CHECK_EQ_INT(s.env.requests, requests + 3);
    CHECK(c->buf == NULL);
    conn_close(c);
    free(w.p);
}

static void pipelined_request_split_across_reads(void)
{
    struct wire w = {0};
    struct reply r[2];
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, GET_SMALL "GET /big.b"), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_READ);
    CHECK(c->buf != NULL); /* the start of the next request is kept */
    CHECK_EQ_INT(feed_str(c, "in HTTP/1.1\r\nHost: h\r\n\r\n"), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_READ);
    if (wire_is(&w, 2, (int[]){200, 200}, 0, r)) {
        body_is(&r[0], SMALL_TEXT, strlen(SMALL_TEXT));
        body_is(&r[1], big_data, BIG_SIZE);
    }
    conn_close(c);
    free(w.p);
}

static void pipelined_garbage_after_a_good_request(void)
{
    struct wire w = {0};
    struct reply r[2];
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, GET_SMALL "garbage\r\n\r\n" GET_SMALL), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_CLOSE);
    wire_is(&w, 2, (int[]){200, 400}, 0, r); /* and nothing for the request after the garbage */
    CHECK(c->linger);
    conn_close(c);
    free(w.p);
}

/* ---- input in the model's buffer (conn_on_input_from) --------------------------------------- */

static void whole_request_is_parsed_where_it_lies(void)
{
    struct wire w = {0};
    struct reply r[1];
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_from(c, GET_SMALL, strlen(GET_SMALL)), CONN_WRITE);
    CHECK_EQ_INT(c->in_len, 0);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_READ);
    if (wire_is(&w, 1, (int[]){200}, 0, r))
        body_is(&r[0], SMALL_TEXT, strlen(SMALL_TEXT));
    CHECK(c->buf == NULL); /* nothing pending: no buffer held */
    conn_close(c);
    free(w.p);
}

static void pipelined_bytes_after_a_whole_request_are_kept(void)
{
    static const char text[] = GET_SMALL GET_BIG "GET /sma";
    struct wire w = {0};
    struct reply r[3];
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_from(c, text, strlen(text)), CONN_WRITE);
    CHECK_EQ_INT(c->in_len, strlen(GET_BIG "GET /sma"));
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_READ);
    CHECK_EQ_INT(feed_from(c, "ll.txt HTTP/1.1\r\nHost: h\r\n\r\n", 28), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_READ);
    if (wire_is(&w, 3, (int[]){200, 200, 200}, 0, r)) {
        body_is(&r[0], SMALL_TEXT, strlen(SMALL_TEXT));
        body_is(&r[1], big_data, BIG_SIZE);
        body_is(&r[2], SMALL_TEXT, strlen(SMALL_TEXT));
    }
    conn_close(c);
    free(w.p);
}

static void request_split_across_receives_is_put_together(void)
{
    static const char text[] = GET_SMALL;
    struct wire w = {0};
    struct reply r[1];
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_from(c, text, 5), CONN_READ);
    CHECK_EQ_INT(feed_from(c, text + 5, 10), CONN_READ);
    CHECK_EQ_INT(feed_from(c, text + 15, strlen(text) - 15), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_READ);
    if (wire_is(&w, 1, (int[]){200}, 0, r))
        body_is(&r[0], SMALL_TEXT, strlen(SMALL_TEXT));
    conn_close(c);
    free(w.p);
}

static void garbage_in_the_models_buffer_is_400(void)
{
    struct wire w = {0};
    struct reply r[1];
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_from(c, "garbage\r\n\r\n" GET_SMALL, 11 + strlen(GET_SMALL)), CONN_WRITE);
    CHECK_EQ_INT(c->in_len, 0); /* what follows is not trusted */
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_CLOSE);
    wire_is(&w, 1, (int[]){400}, 0, r);
    CHECK(c->linger);
    conn_close(c);
    free(w.p);
}

static void oversized_head_in_receives_is_431(void)
{
    struct wire w = {0};
    struct reply r[1];
    struct conn *c = open_conn();
    size_t len = HTTP_MAX_HEADER + 100, off = 0;
    char *text = malloc(len);
    int n = snprintf(text, 64, "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ");
    memset(text + n, 'p', len - (size_t)n);
    enum conn_want want = CONN_READ;

    while (want == CONN_READ && off < len) { /* 2 KiB at a time, as the provided buffers hold */
        size_t chunk = len - off < 2048 ? len - off : 2048;
        want = feed_from(c, text + off, chunk);
        off += chunk;
    }
    CHECK_EQ_INT(want, CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_CLOSE);
    wire_is(&w, 1, (int[]){431}, 0, r);
    conn_close(c);
    free(text);
    free(w.p);
}

static void more_than_the_buffer_takes_closes(void)
{
    struct conn *c = open_conn();
    char *text = calloc(1, CONN_IN_CAP + 1);
    CHECK_EQ_INT(feed_from(c, text, CONN_IN_CAP + 1), CONN_CLOSE);
    conn_close(c);
    free(text);
}

/* ---- closing ----------------------------------------------------------------------------- */

static void connection_close_closes_after_the_response(void)
{
    struct wire w = {0};
    struct reply r[1];
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, "GET /small.txt HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
                 CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_CLOSE);
    if (wire_is(&w, 1, (int[]){200}, 0, r)) {
        body_is(&r[0], SMALL_TEXT, strlen(SMALL_TEXT));
        CHECK_STR(reply_header(&r[0], "Connection"), "close");
    }
    CHECK(!c->linger); /* a good answer needs no draining */
    conn_close(c);
    CHECK(!c->open);
    CHECK(c->buf == NULL);
    free(w.p);
}

static void http10_closes_after_the_response(void)
{
    struct wire w = {0};
    struct reply r[1];
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, "GET /big.bin HTTP/1.0\r\n\r\n"), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 30000, &w), CONN_CLOSE);
    if (wire_is(&w, 1, (int[]){200}, 0, r))
        body_is(&r[0], big_data, BIG_SIZE);
    conn_close(c);
    free(w.p);
}

static void garbage_is_400_then_close_with_linger(void)
{
    struct wire w = {0};
    struct reply r[1];
    unsigned long requests = s.env.requests;
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, "garbage\r\n\r\n"), CONN_WRITE);
    CHECK(c->linger);
    CHECK_EQ_INT(send_all(c, 5, &w), CONN_CLOSE);
    if (wire_is(&w, 1, (int[]){400}, 0, r)) {
        CHECK_STR(reply_header(&r[0], "Connection"), "close");
        CHECK_STR(reply_header(&r[0], "Content-Type"), "text/plain");
    }
    CHECK_EQ_INT(s.env.requests, requests + 1);
    conn_close(c);
    free(w.p);
}

static void oversized_header_block_is_431_then_close(void)
{
    struct wire w = {0};
    struct reply r[1];
    struct conn *c = open_conn();
    char *text = malloc(HTTP_MAX_HEADER + 100);
    int n = snprintf(text, 64, "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ");
    memset(text + n, 'p', HTTP_MAX_HEADER + 100 - (size_t)n);

    CHECK_EQ_INT(feed(c, text, 4000), CONN_READ);
    CHECK_EQ_INT(feed(c, text + 4000, HTTP_MAX_HEADER + 100 - 4000), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_CLOSE);
    wire_is(&w, 1, (int[]){431}, 0, r);
    CHECK(c->linger);
    conn_close(c);
    free(text);
    free(w.p);
}

static void not_found_keeps_the_connection(void)
{
    struct wire w = {0};
    struct reply r[2];
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, "GET /missing HTTP/1.1\r\nHost: h\r\n\r\n"), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_READ);
    CHECK(!c->linger);
    CHECK_EQ_INT(feed_str(c, GET_SMALL), CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_READ);
    wire_is(&w, 2, (int[]){404, 200}, 0, r);
    conn_close(c);
    free(w.p);
}

static void request_body_is_413_then_close(void)
{
    struct wire w = {0};
    struct reply r[1];
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"),
                 CONN_WRITE);
    CHECK_EQ_INT(send_all(c, 1000, &w), CONN_CLOSE);
    wire_is(&w, 1, (int[]){413}, 0, r);
    CHECK(c->linger);
    conn_close(c);
    free(w.p);
}

static void peer_eof_closes(void)
{
    struct conn *c = open_conn();
    CHECK_EQ_INT(conn_on_input(c, 0), CONN_CLOSE);
    conn_close(c);

    c = open_conn(); /* also in the middle of a request */
    CHECK_EQ_INT(feed_str(c, "GET /sma"), CONN_READ);
    CHECK_EQ_INT(conn_on_input(c, 0), CONN_CLOSE);
    conn_close(c);
    CHECK(c->buf == NULL);
}

static void file_that_shrinks_closes_the_connection(void)
{
    struct wire w = {0};
    unsigned long requests = s.env.requests;
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, GET_BIG), CONN_WRITE);
    CHECK_EQ_INT(send_some(c, 10000, false, &w, 3), CONN_WRITE); /* head and 20000 bytes */
    struct conn_tx tx;
    conn_tx(c, &tx, true);
    CHECK_EQ_INT(tx.len, 0);
    CHECK_EQ_INT(tx.file_off, 20000);
    CHECK_EQ_INT(tx.file_len, BIG_SIZE - 20000);
    CHECK_EQ_INT(conn_on_output(c, 0), CONN_CLOSE); /* sendfile found the end early */
    CHECK_EQ_INT(s.env.requests, requests);         /* not an answered request */
    conn_close(c);
    CHECK_EQ_INT(c->res.file_fd, -1);
    CHECK(c->buf == NULL);
    free(w.p);
}

static void close_in_the_middle_of_a_response(void)
{
    struct wire w = {0};
    struct conn *c = open_conn();

    CHECK_EQ_INT(feed_str(c, GET_BIG), CONN_WRITE);
    CHECK_EQ_INT(send_some(c, 100, false, &w, 2), CONN_WRITE);
    conn_close(c); /* the peer reset: the model closes at once */
    CHECK(!c->open);
    CHECK_EQ_INT(c->want, CONN_CLOSE);
    CHECK(c->buf == NULL);
    CHECK_EQ_INT(c->res.file_fd, -1);
    CHECK(!deadline_listed(&c->deadline)); /* off the deadline list */
    CHECK(conn_next_expired(&s.env, UINT64_MAX) == NULL);
    free(w.p);
}

/* ---- deadlines --------------------------------------------------------------------------- */

static void idle_connection_expires_at_its_deadline(void)
{
    uint64_t now = clock_now_ms();
    struct conn *c = open_conn();

    CHECK(c->deadline.at_ms >= now + s.env.idle_timeout_ms);
    CHECK(conn_next_expired(&s.env, now) == NULL);
    CHECK(conn_next_expired(&s.env, c->deadline.at_ms - 1) == NULL);
    CHECK(conn_next_expired(&s.env, c->deadline.at_ms) == c);
    CHECK(conn_next_expired(&s.env, now + s.env.idle_timeout_ms + 5000) == c);
    CHECK_EQ_INT(deadline_ms_to_next(&s.env.idle, c->deadline.at_ms - 250, 1000), 250);
    CHECK_EQ_INT(deadline_ms_to_next(&s.env.idle, now, 1000), 1000);
    CHECK_EQ_INT(deadline_ms_to_next(&s.env.idle, c->deadline.at_ms + 1, 1000), 0);
    conn_close(c);
    CHECK(conn_next_expired(&s.env, UINT64_MAX) == NULL);
    CHECK_EQ_INT(deadline_ms_to_next(&s.env.idle, now, 1000), 1000);
}

static void deadlines_are_kept_in_order(void)
{
    struct wire w = {0};
    struct conn *a = server_open_conn(&s, FAKE_FD);
    sleep_ms(30); /* past the coarse clock's tick */
    struct conn *b = server_open_conn(&s, FAKE_FD + 1);
    CHECK(a && b);
    CHECK(a->deadline.at_ms < b->deadline.at_ms);
    CHECK(conn_next_expired(&s.env, UINT64_MAX) == a);

    /* An answered request restarts a's idle time: b now expires first. */
    sleep_ms(30);
    CHECK_EQ_INT(feed_str(a, GET_SMALL), CONN_WRITE);
    CHECK_EQ_INT(send_all(a, 1000, &w), CONN_READ);
    CHECK(a->deadline.at_ms > b->deadline.at_ms);
    CHECK(conn_next_expired(&s.env, UINT64_MAX) == b);
    conn_close(b);
    CHECK(conn_next_expired(&s.env, UINT64_MAX) == a);
    conn_close(a);
    CHECK(conn_next_expired(&s.env, UINT64_MAX) == NULL);
    free(w.p);
}

static void partial_input_does_not_restart_the_deadline(void)
{
    /* A slowloris trickling a request is still closed on time. */
    struct conn *c = open_conn();
    uint64_t deadline = c->deadline.at_ms;
    sleep_ms(30);
    CHECK_EQ_INT(feed_str(c, "GET / HTTP/1.1\r\n"), CONN_READ);
    CHECK_EQ_INT(c->deadline.at_ms, deadline);
    conn_close(c);
}

static void sending_a_file_restarts_the_deadline(void)
{
    struct wire w = {0};
    struct conn *c = open_conn();
    uint64_t deadline = c->deadline.at_ms;

    sleep_ms(30);
    CHECK_EQ_INT(feed_str(c, GET_BIG), CONN_WRITE);
    CHECK_EQ_INT(send_some(c, 5000, false, &w, 2), CONN_WRITE); /* the head, 5000 file bytes */
    CHECK(c->deadline.at_ms > deadline);
    conn_close(c);
    free(w.p);
}

static void sending_a_memory_body_restarts_the_deadline(void)
{
    /* A slow reader of a small file makes progress as much as one of a big file. */
    struct conn_tx tx;
    struct conn *c = open_conn();
    uint64_t deadline = c->deadline.at_ms;

    sleep_ms(30);
    CHECK_EQ_INT(feed_str(c, GET_SMALL), CONN_WRITE);
    conn_tx(c, &tx, true);
    CHECK_EQ_INT(conn_on_output(c, tx.len), CONN_WRITE); /* the head */
    conn_tx(c, &tx, true);
    CHECK_EQ_INT(tx.len, strlen(SMALL_TEXT));
    CHECK_EQ_INT(conn_on_output(c, 5), CONN_WRITE); /* "hello" of the body */
    CHECK(c->deadline.at_ms > deadline);
    conn_close(c);
}

/* ---- slots ------------------------------------------------------------------------------- */

static void reopened_slot_starts_afresh(void)
{
    struct conn *c = open_conn();
    CHECK_EQ_INT(c->fd, FAKE_FD);
    CHECK(c == server_conn(&s, FAKE_FD));
    CHECK_EQ_INT(feed_str(c, "GET / HTTP/1.1\r\n"), CONN_READ);
    conn_close(c);
    CHECK(!c->open);
    c = open_conn();
    CHECK(c->open);
    CHECK_EQ_INT(c->in_len, 0);
    CHECK(deadline_listed(&c->deadline));
    conn_close(c);
    CHECK(server_open_conn(&s, FAKE_SERVER_TABLE) == NULL);
    CHECK(server_open_conn(&s, -1) == NULL);
}

static void receive_buffer_offers_the_whole_input_space(void)
{
    struct conn *c = open_conn();
    char *p;
    size_t n;
    CHECK_EQ_INT(conn_rx_buf(c, &p, &n), 0);
    CHECK_EQ_INT(n, CONN_IN_CAP);
    CHECK(p == c->buf);
    conn_close(c);
}

int main(void)
{
    alarm(30); /* a state machine that loops forever fails instead of stalling the suite */
    server_setup();

    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {
#define CASE(fn) {#fn, fn}
        CASE(small_file_is_answered_then_read_again),
        CASE(head_and_memory_body_can_go_in_one_call),
        CASE(big_file_goes_out_as_a_file_range),
        CASE(big_file_sent_in_one_go),
        CASE(trickled_request_is_answered_once_complete),
        CASE(pipelined_requests_are_answered_in_order),
        CASE(pipelined_request_split_across_reads),
        CASE(pipelined_garbage_after_a_good_request),
        CASE(connection_close_closes_after_the_response),
        CASE(http10_closes_after_the_response),
        CASE(garbage_is_400_then_close_with_linger),
        CASE(oversized_header_block_is_431_then_close),
        CASE(not_found_keeps_the_connection),
        CASE(request_body_is_413_then_close),
        CASE(peer_eof_closes),
        CASE(file_that_shrinks_closes_the_connection),
        CASE(close_in_the_middle_of_a_response),
        CASE(idle_connection_expires_at_its_deadline),
        CASE(deadlines_are_kept_in_order),
        CASE(partial_input_does_not_restart_the_deadline),
        CASE(sending_a_file_restarts_the_deadline),
        CASE(sending_a_memory_body_restarts_the_deadline),
        CASE(reopened_slot_starts_afresh),
        CASE(receive_buffer_offers_the_whole_input_space),
        CASE(whole_request_is_parsed_where_it_lies),
        CASE(pipelined_bytes_after_a_whole_request_are_kept),
        CASE(request_split_across_receives_is_put_together),
        CASE(garbage_in_the_models_buffer_is_400),
        CASE(oversized_head_in_receives_is_431),
        CASE(more_than_the_buffer_takes_closes),
#undef CASE
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_case(cases[i].name);
        cases[i].run();
    }

    check_case("every_connection_is_closed");
    CHECK(conn_next_expired(&s.env, UINT64_MAX) == NULL);
    server_teardown();
    return check_report();
}
