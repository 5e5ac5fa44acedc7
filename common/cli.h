/* cli.h - the one command line of every c10k server (SPEC section 2). */
#ifndef C10K_CLI_H
#define C10K_CLI_H

#include <stdbool.h>

#ifndef C10K_VERSION
#define C10K_VERSION "0.1.0"
#endif

/* --workers: more processes than this is a typo, not a plan. */
#define WORKERS_MAX 256

struct config {
    const char *addr;
    int port;
    const char *root;
    int max_conns;
    int idle_timeout_s;
    bool quiet;
    int workers;      /* --workers; 0 if not given: the model's default */
    const char *user; /* --user; NULL if not given: nobody when started as root */
    /* Busy polling, never on unless asked (cli.c's cli_model_options says which model takes
     * which): the CPU it burns buys fewer sleeps and wake-ups. */
    int busy_poll_us; /* --busy-poll USEC (bin/epoll): epoll_wait spins this long; 0: off */
    bool sqpoll;      /* --sqpoll (bin/uring, bin/corouring): a kernel thread polls the ring */
};

enum cli_result {
    CLI_RUN = 0,  /* config filled in: start the server */
    CLI_EXIT = 1, /* --help or --version printed: exit 0 */
    CLI_USAGE = 2 /* bad usage, message printed: exit 2 */
};

/* Fills cfg from argv; prints usage, version or an error itself. */
enum cli_result cli_parse(int argc, char **argv, const char *model, struct config *cfg);

#endif
