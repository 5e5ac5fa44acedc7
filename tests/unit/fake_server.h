/*
 * fake_server.h - a struct server for the unit tests that drive connections without
 * server_main(): a connection table, the idle list, and a document root in a fresh
 * temporary directory, removed again at the end. Set-up failures end the test.
 */
#ifndef C10K_TEST_FAKE_SERVER_H
#define C10K_TEST_FAKE_SERVER_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

#define FAKE_SERVER_TABLE 64 /* slots: fds the tests use stay below this */

static char fake_server_root[64];

static inline void fake_server_die(const char *what)
{
    perror(what);
    exit(1);
}

/* Writes a file of the document root. */
static inline void fake_server_write(const char *rel, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", fake_server_root, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        fake_server_die(path);
    close(fd);
}

/* Makes the root directory and readies s to open connections (server_open_conn()). */
static inline void fake_server_open(struct server *s, const char *model)
{
    strcpy(fake_server_root, "/tmp/c10k-test-XXXXXX");
    if (!mkdtemp(fake_server_root))
        fake_server_die("mkdtemp");
    s->model = model;
    s->max_fds = s->max_conns = FAKE_SERVER_TABLE;
    s->conn_size = sizeof(struct conn);
    s->conns = calloc(FAKE_SERVER_TABLE, s->conn_size);
    deadline_list_init(&s->env.idle);
    s->env.idle_timeout_ms = 10000;
    s->env.root_fd = open(fake_server_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!s->conns || s->env.root_fd < 0)
        fake_server_die("server set-up");
}

/* Frees what fake_server_open() took and removes the root. */
static inline void fake_server_close(struct server *s)
{
    char cmd[128];
    close(s->env.root_fd);
    free(s->conns);
    conn_pool_drain();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fake_server_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", fake_server_root);
}

#endif
