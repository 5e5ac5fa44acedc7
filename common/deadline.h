/*
 * deadline.h - when each idle or stalled connection is to be closed: a list
 * kept in deadline order with O(1) add, remove and "who is next".
 *
 * Every connection of a server gets the same timeout, so a restarted deadline
 * is the latest of all and goes to the tail: no heap, no timer wheel. A node
 * is embedded in what it times (struct conn) and recovered with container_of.
 */
#ifndef C10K_DEADLINE_H
#define C10K_DEADLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct deadline {
    uint64_t at_ms;               /* on clock_now_ms()'s clock */
    struct deadline *prev, *next; /* NULL while off the list */
};

struct deadline_list {
    struct deadline head; /* sentinel: head.next is the earliest */
};

void deadline_list_init(struct deadline_list *l);

/* (Re)starts d at at_ms, at the tail: at_ms must be no earlier than any listed. */
void deadline_add(struct deadline_list *l, struct deadline *d, uint64_t at_ms);
/* Takes d off its list; nothing if it is off already. */
void deadline_remove(struct deadline *d);

static inline bool deadline_listed(const struct deadline *d)
{
    return d->next != NULL;
}

/* The earliest deadline if it is due at now_ms, else NULL. */
struct deadline *deadline_expired(const struct deadline_list *l, uint64_t now_ms);
/* Milliseconds from now_ms until the earliest deadline, at most max_ms. */
int deadline_ms_to_next(const struct deadline_list *l, uint64_t now_ms, int max_ms);

#endif
