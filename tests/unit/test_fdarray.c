/*
 * test_fdarray.c - the dense pollfd array of poll, busypoll and sigio: after any
 * mix of adds, changes and removals, pfds[0..n) holds exactly the fds present,
 * each with its events, and slot[] points at each one.
 */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "fdarray.h"

#define CAP 64

/* The array agrees with a model: want[fd] = events + 1, or 0 if absent. */
static bool consistent(const struct fdarray *a, const short want[CAP])
{
    int present = 0;
    for (int fd = 0; fd < CAP; fd++) {
        if (!want[fd]) {
            if (fdarray_has(a, fd))
                return false;
            continue;
        }
        present++;
        if (!fdarray_has(a, fd) || a->pfds[a->slot[fd]].fd != fd ||
            a->pfds[a->slot[fd]].events != want[fd] - 1)
            return false;
    }
    return present == a->n;
}

static void add_set_del_keep_the_array_dense(void)
{
    struct fdarray a;
    short want[CAP] = {0};
    if (!CHECK(fdarray_init(&a, CAP) == 0))
        return;
    CHECK(consistent(&a, want));

    for (int fd = 3; fd < 13; fd++) {
        CHECK(fdarray_add(&a, fd, POLLIN) == 0);
        want[fd] = POLLIN + 1;
    }
    CHECK_EQ_INT(a.n, 10);
    CHECK(fdarray_set(&a, 7, POLLIN | POLLOUT) == 0);
    want[7] = (POLLIN | POLLOUT) + 1;
    CHECK(consistent(&a, want));

    fdarray_del(&a, 3); /* the first: the last entry moves into its hole */
    want[3] = 0;
    CHECK(consistent(&a, want));
    fdarray_del(&a, 12); /* the last: nothing moves */
    want[12] = 0;
    CHECK(consistent(&a, want));
    fdarray_del(&a, 7); /* one in the middle, with its own events */
    want[7] = 0;
    CHECK(consistent(&a, want));
    fdarray_del(&a, 7); /* absent: nothing happens */
    CHECK(consistent(&a, want));
    CHECK_EQ_INT(a.n, 7);

    /* A pseudo-random mix, checked after every step. */
    unsigned seed = 12345;
    for (int i = 0; i < 2000; i++) {
        seed = seed * 1103515245u + 12345u;
        int fd = (int)(seed >> 16) % CAP;
        int op = (int)(seed >> 8) % 3;
        if (op == 0 && !want[fd]) {
            CHECK(fdarray_add(&a, fd, POLLOUT) == 0);
            want[fd] = POLLOUT + 1;
        } else if (op == 1 && want[fd]) {
            CHECK(fdarray_set(&a, fd, POLLIN) == 0);
            want[fd] = POLLIN + 1;
        } else if (op == 2) {
            fdarray_del(&a, fd);
            want[fd] = 0;
        }
        if (!CHECK(consistent(&a, want)))
            break;
    }
    fdarray_free(&a);
}

static void errors_are_reported(void)
{
    struct fdarray a;
    if (!CHECK(fdarray_init(&a, CAP) == 0))
        return;
    CHECK(fdarray_add(&a, 5, POLLIN) == 0);
    errno = 0;
    CHECK(fdarray_add(&a, 5, POLLIN) == -1 && errno == EEXIST);
    errno = 0;
    CHECK(fdarray_add(&a, CAP, POLLIN) == -1 && errno == EBADF);
    errno = 0;
    CHECK(fdarray_add(&a, -1, POLLIN) == -1 && errno == EBADF);
    errno = 0;
    CHECK(fdarray_set(&a, 6, POLLIN) == -1 && errno == EBADF);
    CHECK(!fdarray_has(&a, -1) && !fdarray_has(&a, CAP));
    CHECK_EQ_INT(a.n, 1);
    fdarray_free(&a);
}

int main(void)
{
    check_case("add_set_del_keep_the_array_dense");
    add_set_del_keep_the_array_dense();
    check_case("errors_are_reported");
    errors_are_reported();
    return check_report();
}
