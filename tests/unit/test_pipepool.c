/*
 * test_pipepool.c - the pipes bin/uring lends to file bodies: every pipe can
 * be lent, a user that finds none waits its turn (first come, first served),
 * and a parked user's pipe is taken back for a newcomer.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "pipepool.h"

#define USERS (PIPEPOOL_PIPES + 3)

static struct pipe_user users[USERS];
static struct pipe_user *turns[USERS]; /* whom the pool called back, in order */
static int nturns;

static void on_turn(struct pipe_user *waiter, void *arg)
{
    (void)arg;
    turns[nturns++] = waiter;
}

static void every_pipe_is_lent_then_waiters_get_turns_in_order(struct pipepool *pp)
{
    for (int i = 0; i < PIPEPOOL_PIPES; i++)
        if (!CHECK_EQ_INT(pipepool_get(pp, &users[i]), 0) || !CHECK(users[i].pipe != NULL))
            return;
    CHECK(users[0].pipe != users[1].pipe);
    CHECK(users[0].pipe->cap >= 4096);
    CHECK(fcntl(users[0].pipe->rd, F_GETFD) >= 0);

    /* None free: two wait, in the order they came. */
    CHECK_EQ_INT(pipepool_get(pp, &users[PIPEPOOL_PIPES]), 1);
    CHECK_EQ_INT(pipepool_get(pp, &users[PIPEPOOL_PIPES + 1]), 1);
    CHECK(users[PIPEPOOL_PIPES].pipe == NULL);

    /* A clean pipe given back goes to the first waiter, which asks again. */
    struct pipepool_pipe *p = users[0].pipe;
    pipepool_put(pp, &users[0], false);
    CHECK(users[0].pipe == NULL);
    if (!CHECK_EQ_INT(nturns, 1) || !CHECK(turns[0] == &users[PIPEPOOL_PIPES]))
        return;
    CHECK_EQ_INT(pipepool_get(pp, &users[PIPEPOOL_PIPES]), 0);
    CHECK(users[PIPEPOOL_PIPES].pipe == p); /* the same pipe, still open */
    CHECK(p->rd >= 0);

    /* A waiter that leaves (it closed) gets no turn. */
    pipepool_leave(pp, &users[PIPEPOOL_PIPES + 1]);
    pipepool_put(pp, &users[1], true);
    CHECK_EQ_INT(nturns, 1);
    CHECK(users[1].pipe == NULL);
}

static void a_parked_pipe_is_taken_back_for_a_newcomer(struct pipepool *pp)
{
    /* users[1]'s pipe is free now; take it so that none is. */
    CHECK_EQ_INT(pipepool_get(pp, &users[1]), 0);
    users[2].in_pipe = 1000; /* bytes spliced in, the socket full */
    pipepool_park(pp, &users[2]);
    struct pipepool_pipe *p = users[2].pipe;
    int newcomer = PIPEPOOL_PIPES + 2;
    CHECK_EQ_INT(pipepool_get(pp, &users[newcomer]), 0);
    CHECK(users[newcomer].pipe == p);
    CHECK(users[2].pipe == NULL);      /* its bytes are dropped */
    CHECK_EQ_INT(users[2].in_pipe, 0); /* and spliced again from the file later */
    CHECK_EQ_INT(users[2].on, PIPE_NO_LIST);
}

int main(void)
{
    struct pipepool pp;
    pipepool_init(&pp, 65536, on_turn, NULL);

    check_case("every_pipe_is_lent_then_waiters_get_turns_in_order");
    every_pipe_is_lent_then_waiters_get_turns_in_order(&pp);
    check_case("a_parked_pipe_is_taken_back_for_a_newcomer");
    a_parked_pipe_is_taken_back_for_a_newcomer(&pp);

    for (int i = 0; i < USERS; i++)
        if (users[i].pipe)
            pipepool_put(&pp, &users[i], false);
    check_case("all_given_back");
    CHECK_EQ_INT(pp.nfree, PIPEPOOL_PIPES);
    pipepool_destroy(&pp);
    return check_report();
}
