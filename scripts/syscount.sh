#!/usr/bin/env bash
# scripts/syscount.sh MODEL [REQUESTS] [CONNS] [PAUSE_MS] [BYTES] - system calls per request.
#
# Starts bin/MODEL under `perf record` (the raw_syscalls:sys_exit tracepoint, every thread),
# opens CONNS keep-alive connections (default 1), sends REQUESTS GET /index.html (BYTES
# long, default 4096; 1048576 shows sendfile against read/write) over them in turn, one at
# a time, PAUSE_MS (default 0) apart, stops the server and prints each call's count divided
# by REQUESTS, and how many of those failed (calls under 0.01 per request are summed in
# one line). Counts do not depend on the machine's load, so this is the measurement to show
# on a busy machine. The counter is bench/syscalls.py, the one make bench-ci counts with;
# perf reads tracepoints as root. MODEL=asyncio counts examples/asyncio_server.py.
exec python3 "$(dirname "$0")/../bench/syscalls.py" "$@"
