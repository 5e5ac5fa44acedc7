/* deadline.c - the deadline list (see deadline.h). */
#include "deadline.h"

void deadline_list_init(struct deadline_list *l)
{
    l->head.prev = l->head.next = &l->head;
}

void deadline_remove(struct deadline *d)
{
    if (!d->next)
        return;
    d->prev->next = d->next;
    d->next->prev = d->prev;
    d->next = d->prev = NULL;
}

void deadline_add(struct deadline_list *l, struct deadline *d, uint64_t at_ms)
{
    deadline_remove(d);
    d->at_ms = at_ms;
    d->prev = l->head.prev;
    d->next = &l->head;
    l->head.prev->next = d;
    l->head.prev = d;
}

struct deadline *deadline_expired(const struct deadline_list *l, uint64_t now_ms)
{
    struct deadline *d = l->head.next;
    return d != &l->head && d->at_ms <= now_ms ? d : NULL;
}

int deadline_ms_to_next(const struct deadline_list *l, uint64_t now_ms, int max_ms)
{
    const struct deadline *d = l->head.next;
    if (d == &l->head)
        return max_ms;
    if (d->at_ms <= now_ms)
        return 0;
    uint64_t ms = d->at_ms - now_ms;
    return ms < (uint64_t)max_ms ? (int)ms : max_ms;
}
