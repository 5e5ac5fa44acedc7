/* pipepool.c - pipes lent to splice transfers in flight (see pipepool.h). */
#include "pipepool.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>

void pipepool_init(struct pipepool *pp, uint32_t pipe_size, pipepool_retry_fn *retry, void *arg)
{
    *pp = (struct pipepool){.pipe_size = pipe_size, .retry = retry, .retry_arg = arg};
    for (int i = 0; i < PIPEPOOL_PIPES; i++) {
        pp->pipes[i] = (struct pipepool_pipe){-1, -1, 0};
        pp->free[pp->nfree++] = &pp->pipes[i];
    }
}

void pipepool_destroy(struct pipepool *pp)
{
    for (int i = 0; i < PIPEPOOL_PIPES; i++) {
        if (pp->pipes[i].rd >= 0) {
            close(pp->pipes[i].rd);
            close(pp->pipes[i].wr);
            pp->pipes[i].rd = pp->pipes[i].wr = -1;
        }
    }
}

static struct pipe_list *list_of(struct pipepool *pp, enum pipe_list_id id)
{
    return id == PIPE_WAITING ? &pp->waiting : &pp->parked;
}

static void list_push(struct pipepool *pp, enum pipe_list_id id, struct pipe_user *u)
{
    struct pipe_list *l = list_of(pp, id);
    u->on = (uint8_t)id;
    u->next = NULL;
    u->prev = l->tail;
    if (l->tail)
        l->tail->next = u;
    else
        l->head = u;
    l->tail = u;
}

void pipepool_leave(struct pipepool *pp, struct pipe_user *u)
{
    if (u->on == PIPE_NO_LIST)
        return;
    struct pipe_list *l = list_of(pp, u->on);
    u->on = PIPE_NO_LIST;
    if (u->prev)
        u->prev->next = u->next;
    else
        l->head = u->next;
    if (u->next)
        u->next->prev = u->prev;
    else
        l->tail = u->prev;
}

void pipepool_park(struct pipepool *pp, struct pipe_user *u)
{
    list_push(pp, PIPE_PARKED, u);
}

int pipepool_get(struct pipepool *pp, struct pipe_user *u)
{
    /* A reader that stopped reading must not keep pipes from the others: take
     * back the longest-parked pipe. */
    while (pp->nfree == 0 && pp->parked.head) {
        struct pipe_user *v = pp->parked.head;
        pipepool_leave(pp, v);
        pipepool_put(pp, v, true);
    }
    if (pp->nfree > 0) {
        struct pipepool_pipe *p = pp->free[--pp->nfree];
        int fds[2];
        if (p->rd < 0 && pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0) {
            fcntl(fds[0], F_SETPIPE_SZ,
                  (int)pp->pipe_size); /* fewer, larger chunks; may be refused */
            int cap = fcntl(fds[0], F_GETPIPE_SZ);
            *p = (struct pipepool_pipe){fds[0], fds[1], cap > 0 ? (uint32_t)cap : 4096};
        }
        if (p->rd >= 0) {
            u->pipe = p;
            return 0;
        }
        pp->free[pp->nfree++] = p;
    }
    if (pp->nfree == PIPEPOOL_PIPES) /* none lent, so none will come back */
        return -1;
    list_push(pp, PIPE_WAITING, u); /* the next pipe given back is ours */
    return 1;
}

void pipepool_put(struct pipepool *pp, struct pipe_user *u, bool dirty)
{
    struct pipepool_pipe *p = u->pipe;
    if (dirty) {
        close(p->rd);
        close(p->wr);
        p->rd = p->wr = -1;
    }
    pp->free[pp->nfree++] = p;
    u->pipe = NULL;
    u->in_pipe = 0;
    if (pp->waiting.head) {
        struct pipe_user *w = pp->waiting.head;
        pipepool_leave(pp, w);
        pp->retry(w, pp->retry_arg);
    }
}
