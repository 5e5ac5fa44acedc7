/* cli.c - parses SPEC section 2's options; the same for all eight binaries. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The options only some models take: busy polling, measured in docs/lecture.md, never a
 * default. */
#define SQPOLL_HELP                                                                                \
    "--sqpoll: a kernel thread polls the submission queue (IORING_SETUP_SQPOLL): no\n"             \
    "  system call to submit, a core kept busy (and no DEFER_TASKRUN).\n"
static const struct cli_model_option {
    const char *opt, *model, *help;
} cli_model_options[] = {
    {"--busy-poll", "epoll",
     "--busy-poll USEC: epoll_wait spins up to USEC before it sleeps (EPIOCSPARAMS, Linux\n"
     "  6.9); it spins only for sockets that came through a NAPI device, not loopback.\n"},
    {"--sqpoll", "uring", SQPOLL_HELP},
    {"--sqpoll", "corouring", SQPOLL_HELP},
};

/* Whether model takes opt, one of cli_model_options; its entry, or NULL. */
static const struct cli_model_option *cli_model_option(const char *model, const char *opt)
{
    for (size_t i = 0; i < sizeof cli_model_options / sizeof cli_model_options[0]; i++)
        if (!strcmp(cli_model_options[i].opt, opt) && !strcmp(cli_model_options[i].model, model))
            return &cli_model_options[i];
    return NULL;
}

static void cli_usage(FILE *out, const char *model)
{
    fprintf(out,
            "usage: %s [--addr 127.0.0.1] [--port 8080] [--root ./www] [--max-conns N]\n"
            "       %*s [--idle-timeout SECONDS] [--workers N] [--user NAME] [--quiet]\n"
            "       %*s [--help] [--version]\n"
            "Serves the files under --root over HTTP/1.1 using the %s I/O model;\n"
            "--workers N runs N processes of it (default 1; bin/prefork: 4).\n"
            "Started as root, it serves as --user (default nobody) once it listens.\n",
            model, (int)strlen(model), "", (int)strlen(model), "", model);
    for (size_t i = 0; i < sizeof cli_model_options / sizeof cli_model_options[0]; i++)
        if (!strcmp(cli_model_options[i].model, model))
            fputs(cli_model_options[i].help, out);
}

/* Parses a decimal integer in [min, max]; returns -1 if it is not one. */
static int cli_int(const char *s, long min, long max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

enum cli_result cli_parse(int argc, char **argv, const char *model, struct config *cfg)
{
    *cfg = (struct config){
        .addr = "127.0.0.1",
        .port = 8080,
        .root = "./www",
        .max_conns = 20000,
        .idle_timeout_s = 10,
        .quiet = false,
        .workers = 0,
    };

    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;

        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            cli_usage(stdout, model);
            return CLI_EXIT;
        } else if (!strcmp(opt, "--version")) {
            printf("c10k %s (%s)\n", C10K_VERSION, model);
            return CLI_EXIT;
        } else if (!strcmp(opt, "--quiet")) {
            cfg->quiet = true;
            continue;
        } else if (!strcmp(opt, "--sqpoll") && cli_model_option(model, opt)) {
            cfg->sqpoll = true;
            continue;
        } else if (!strcmp(opt, "--busy-poll") && cli_model_option(model, opt)) {
            if (!val || cli_int(val, 1, 1000000, &cfg->busy_poll_us)) {
                fprintf(stderr, "%s: --busy-poll needs microseconds, 1 to 1000000\n", model);
                return CLI_USAGE;
            }
            i++;
            continue;
        }

        if (strcmp(opt, "--addr") && strcmp(opt, "--port") && strcmp(opt, "--root") &&
            strcmp(opt, "--max-conns") && strcmp(opt, "--idle-timeout") &&
            strcmp(opt, "--workers") && strcmp(opt, "--user")) {
            fprintf(stderr, "%s: unknown option '%s' (try --help)\n", model, opt);
            return CLI_USAGE;
        }
        if (!val) {
            fprintf(stderr, "%s: option '%s' needs a value\n", model, opt);
            return CLI_USAGE;
        }
        i++;
        if (!strcmp(opt, "--addr"))
            cfg->addr = val;
        else if (!strcmp(opt, "--root"))
            cfg->root = val;
        else if (!strcmp(opt, "--user"))
            cfg->user = val;
        else if (!strcmp(opt, "--port"))
            bad = cli_int(val, 0, 65535, &cfg->port);
        else if (!strcmp(opt, "--max-conns"))
            bad = cli_int(val, 1, INT_MAX, &cfg->max_conns);
        else if (!strcmp(opt, "--workers"))
            bad = cli_int(val, 1, WORKERS_MAX, &cfg->workers);
        else
            bad = cli_int(val, 1, 86400, &cfg->idle_timeout_s);
        if (bad) {
            fprintf(stderr, "%s: bad value '%s' for %s\n", model, val, opt);
            return CLI_USAGE;
        }
    }
    return CLI_RUN;
}
