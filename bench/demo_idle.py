#!/usr/bin/env python3
"""demo_idle.py - the idle-connection lesson in about half a minute, for a class.

    python3 bench/demo_idle.py [SERVER...]      make demo-idle (default: poll epoll)

For each server (bin/SERVER), and for M = 0 and then 5,000 idle keep-alive connections held
open by build/bench/idlers, build/bench/loadgen offers a fixed 2,000 requests/s of
GET /index.html over 100 busy connections (open loop: the same load whatever the server
does) and the server's CPU is read from /proc over loadgen's measured window. It prints one
line per point and, per server, how its CPU per request changed with the idle connections.

poll copies in and scans every watched fd on every call, so its CPU per request grows with
M; epoll's wait costs what is ready, so it does not. The load is fixed, so the figure to read
is CPU per request (and latency), not req/s. No root, no peers (nginx, h2o, lighttpd are not
run), nothing written under results/: the logs go to a temporary directory, kept and named
only when something failed.

Knobs (environment): DEMO_IDLE (default 5000), DEMO_RATE (2000), DEMO_SECS (5).
"""

import os
import shutil
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import openloop  # noqa: E402
import procs  # noqa: E402
import www  # noqa: E402
from c10kutil import proc_fds  # noqa: E402
from measure import MeasureError  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.path.join(REPO, os.environ.get("BUILD", "build"))
IDLERS = os.path.join(BUILD_DIR, "bench", "idlers")
LOADGEN = os.path.join(BUILD_DIR, "bench", "loadgen")
BUSY_CONNS = 100


def config():
    cpus = sorted(os.sched_getaffinity(0))
    half = max(1, len(cpus) // 2)
    return types.SimpleNamespace(
        idle=int(os.environ.get("DEMO_IDLE", "5000")),
        rate=float(os.environ.get("DEMO_RATE", "2000")),
        open_secs=float(os.environ.get("DEMO_SECS", "5")), open_warm=0.5,
        open_timeout=2.0, open_connect_timeout=30.0, client_rt=False,
        server_cores=cpus[:half], client_cores=cpus[half:] or cpus)


def point(server, m, cfg, logs, log):
    """One measurement of `server` (started) with m idle connections held."""
    idlers = None
    try:
        if m:
            idlers = procs.Idlers(IDLERS, server.port, m, cfg.client_cores,
                                  os.path.join(logs, "idlers.log"))
            if idlers.start() < m:
                raise MeasureError(f"only {idlers.open} of {m} idle connections opened")
        # run_point first waits for the server's fd count to fall back to what it was at
        # its first point (settle); the idle connections are meant to stay: count them in.
        server.idle_fds = proc_fds(server.pid()) or 0
        return openloop.run_point(LOADGEN, server, BUSY_CONNS, cfg.rate, False, cfg, log,
                                  f"{server.name} idle={m}", None)
    finally:
        if idlers:
            idlers.stop()


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    names = sys.argv[1:] or ["poll", "epoll"]
    for tool in [IDLERS, LOADGEN] + [os.path.join(REPO, "bin", n) for n in names]:
        if not os.access(tool, os.X_OK):
            sys.exit(f"demo-idle: no {os.path.relpath(tool, REPO)}: run make demo-idle")
    cfg = config()
    procs.install_cleanup()
    logs = tempfile.mkdtemp(prefix="c10k-demo-idle.")
    root = os.path.join(logs, "www")
    www.generate(root)
    failed = False
    print(f"demo-idle: {BUSY_CONNS} busy connections at {cfg.rate:g} requests/s (open loop), "
          f"with 0 and then {cfg.idle:,} idle connections held; server on CPU "
          f"{','.join(map(str, cfg.server_cores))}, clients on "
          f"{','.join(map(str, cfg.client_cores))}", flush=True)
    print(f"{'server':<8} {'idle':>6} {'achieved/s':>10} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'CPU us/req':>10} {'server CPU':>10}", flush=True)
    with open(os.path.join(logs, "loadgen.log"), "a") as log:
        for name in names:
            server = procs.Server(os.path.join(REPO, "bin", name), root, cfg.server_cores, logs)
            cpu = {}
            try:
                server.start()
                for m in (0, cfg.idle):
                    row = point(server, m, cfg, logs, log)
                    cpu[m] = row.get("cpu_us_per_req")
                    print(f"{name:<8} {m:>6} {row['achieved_rps']:>10.0f} "
                          f"{fmt(row['p50_ms'], '7.2f')} {fmt(row['p99_ms'], '7.2f')} "
                          f"{fmt(cpu[m], '10.1f')} {fmt(row.get('server_util'), '10.0%')}",
                          flush=True)
            except (procs.StartError, MeasureError, OSError) as e:
                print(f"demo-idle: {name}: {e}", flush=True)
                failed = True
            finally:
                server.stop()
            if cpu.get(0) and cpu.get(cfg.idle):
                print(f"{name}: CPU per request x{cpu[cfg.idle] / cpu[0]:.1f} with "
                      f"{cfg.idle:,} idle connections", flush=True)
    if failed:
        print(f"demo-idle: logs kept in {logs}", flush=True)
        return 1
    shutil.rmtree(logs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
