/*
 * loop.h - the one event loop of the readiness models (common/loop.c), which a
 * poller backend (poller.h) hands its main() to.
 */
#ifndef C10K_LOOP_H
#define C10K_LOOP_H

/* The whole main() of a readiness server: server_main() with the shared event
 * loop over this binary's poller: accept, dispatch, time out. */
int loop_main(int argc, char **argv, const char *model);

#endif
