/*
 * lock.c - LD_PRELOAD: a lock that another thread holds, taken before every call that
 * sends a response (sends.c): the sending thread hands the lock to a second thread and
 * waits until it comes back, which is what a contended mutex costs: the waiter sleeps
 * in futex and the holder wakes it with another. The deterministic gate must name it:
 * "epoll, keep-alive: futex +N/request (new), lock". The second thread is started at
 * the first send in each process (a forked child has none: pthread_atfork tells).
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>

#include "inject.h"

static sem_t to_holder, from_holder;
static bool holder_runs; /* in this process */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

static void forked_child(void)
{
    holder_runs = false;
}

static void *holder(void *unused)
{
    (void)unused;
    for (;;) {
        while (sem_wait(&to_holder) < 0)
            ; /* EINTR */
        (void)sem_post(&from_holder);
    }
    return NULL;
}

/* Returns 0 once this process has its holder thread, -1 if it cannot have one. */
static int start_holder(void)
{
    int r = 0;
    pthread_mutex_lock(&start_lock);
    if (!holder_runs) {
        static bool fork_noted;
        pthread_t t;
        if ((!fork_noted && pthread_atfork(NULL, NULL, forked_child) != 0) ||
            sem_init(&to_holder, 0, 0) < 0 || sem_init(&from_holder, 0, 0) < 0 ||
            pthread_create(&t, NULL, holder, NULL) != 0 || pthread_detach(t) != 0)
            r = -1;
        else
            holder_runs = fork_noted = true;
    }
    pthread_mutex_unlock(&start_lock);
    return r;
}

void inject_before_send(void)
{
    if (start_holder() < 0)
        return;
    (void)sem_post(&to_holder);
    while (sem_wait(&from_holder) < 0)
        ; /* EINTR */
}
