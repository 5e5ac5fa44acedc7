/*
 * test_loop.c - conn_drive(), the readiness models' I/O (common/drive.c), on a
 * real socketpair: it reads and writes until EAGAIN, and an idle connection
 * holds no buffer.
 *
 * The test links loop.o with pollset.o, as bin/poll does, and brings the one
 * poller function left, poller_wait(); the loop itself is not run here.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "drive.h"
#include "poller.h"

#define SMALL_TEXT "hello, world\n"
#define GET_SMALL "GET /small.txt HTTP/1.1\r\nHost: h\r\n\r\n"

int poller_wait(struct poller *p, struct poller_event *fired, int max, int timeout_ms)
{
    (void)p, (void)fired, (void)max, (void)timeout_ms;
    return 0;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void drive_holds_a_buffer_only_while_input_is_pending(struct conn_env *env)
{
    struct conn conn, *c = &conn;
    uint8_t rx = RX_READY;
    int sv[2];
    char in[512];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        die("socketpair");
    conn_init(c, env, sv[0]);

    /* An idle keep-alive connection that gets polled anyway (busypoll tries every fd,
     * sigio may hold a stale signal): EAGAIN must not leave a buffer behind. */
    CHECK_EQ_INT(conn_drive(c, &rx), CONN_READ);
    CHECK(c->buf == NULL);

    /* Half a request: its bytes stay in the buffer until the rest arrives. */
    CHECK(write(sv[1], GET_SMALL, 10) == 10);
    rx = RX_READY; /* what the loop does on a read event */
    CHECK_EQ_INT(conn_drive(c, &rx), CONN_READ);
    CHECK(c->buf != NULL);
    rx = RX_READY;
    CHECK_EQ_INT(conn_drive(c, &rx), CONN_READ); /* EAGAIN with input pending */
    CHECK(c->buf != NULL);

    /* The rest: answered in full, and the buffer goes back. */
    size_t rest = strlen(GET_SMALL) - 10;
    CHECK(write(sv[1], GET_SMALL + 10, rest) == (ssize_t)rest);
    rx = RX_READY;
    CHECK_EQ_INT(conn_drive(c, &rx), CONN_READ);
    ssize_t n = read(sv[1], in, sizeof in - 1);
    CHECK(n > 0 && strncmp(in, "HTTP/1.1 200 ", 13) == 0);
    CHECK(n > 0 && memmem(in, (size_t)n, SMALL_TEXT, strlen(SMALL_TEXT)) != NULL);
    rx = RX_READY;
    CHECK_EQ_INT(conn_drive(c, &rx), CONN_READ);
    CHECK(c->buf == NULL);

    /* A short read with nothing new since: no recv at all, even with bytes waiting. */
    CHECK(write(sv[1], GET_SMALL, 10) == 10);
    rx = RX_DRAINED;
    CHECK_EQ_INT(conn_drive(c, &rx), CONN_READ);
    CHECK(c->buf == NULL);

    conn_close(c);
    close(sv[0]);
    close(sv[1]);
}

/* A request and the peer's FIN in one go, as one edge: the short read looks like an
 * empty socket, so only the hang-up that the event reported (RX_HUP) makes conn_drive
 * read on and see the end of stream, instead of waiting for the idle timeout. */
static void drive_reads_on_after_a_hangup(struct conn_env *env)
{
    struct conn conn, *c = &conn;
    int sv[2];
    char in[512];
    for (int hup = 0; hup <= 1; hup++) {
        uint8_t rx = RX_READY;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
            die("socketpair");
        conn_init(c, env, sv[0]);
        CHECK(write(sv[1], GET_SMALL, strlen(GET_SMALL)) == (ssize_t)strlen(GET_SMALL));
        CHECK(shutdown(sv[1], SHUT_WR) == 0);
        conn_rx_event(&rx, true, hup); /* epoll: EPOLLIN, with or without EPOLLRDHUP */
        enum conn_want want = conn_drive(c, &rx);
        ssize_t n = read(sv[1], in, sizeof in - 1);
        CHECK(n > 0 && strncmp(in, "HTTP/1.1 200 ", 13) == 0);
        if (hup) {
            CHECK_EQ_INT(want, CONN_CLOSE);
        } else { /* nothing told of the FIN: the loop waits, as it must for an edge */
            CHECK_EQ_INT(want, CONN_READ);
            CHECK_EQ_INT(rx, RX_DRAINED);
        }
        conn_close(c);
        close(sv[0]);
        close(sv[1]);
    }
}

int main(void)
{
    char root[] = "/tmp/c10k-test-loop-XXXXXX", path[64];
    struct conn_env env = {.idle_timeout_ms = 10000};

    alarm(30);
    if (!mkdtemp(root))
        die("mkdtemp");
    snprintf(path, sizeof path, "%s/small.txt", root);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, SMALL_TEXT, strlen(SMALL_TEXT)) != (ssize_t)strlen(SMALL_TEXT))
        die(path);
    close(fd);
    deadline_list_init(&env.idle);
    env.root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (env.root_fd < 0)
        die(root);

    check_case("drive_holds_a_buffer_only_while_input_is_pending");
    drive_holds_a_buffer_only_while_input_is_pending(&env);
    check_case("drive_reads_on_after_a_hangup");
    drive_reads_on_after_a_hangup(&env);

    close(env.root_fd);
    conn_pool_drain();
    if (unlink(path) < 0 || rmdir(root) < 0)
        perror("cleanup");
    return check_report();
}
