#!/usr/bin/env python3
"""demo_rpc.py - many calls in flight on one thread, against one call per thread (make demo-rpc).

    python3 bench/demo_rpc.py

The asynchronous RPC benchmark, on the client's side. The same server (bin/epoll) gets the
same offered load, GET /small.txt at a fixed rate on an open-loop schedule, from two clients:

  async    build/bench/loadgen: one thread, an epoll set, N keep-alive connections, as many
           calls in flight as are due (docs/loadgen.md);
  threads  build/bench/rpc_threads: N threads, each with a blocking keep-alive connection
           and one call at a time (bench/c/rpc_threads.c), keeping the same schedule.

For each N it prints the client's threads and memory (the most seen in /proc while it ran),
its CPU per call and context switches per call (wait4's rusage over its whole life, set-up
included, divided by the calls it was scheduled to make), and the calls' p50 and p99
latency measured from their due time. Server on the first half of the CPUs, client on the
rest. No root, nothing written outside a temporary directory (kept and named only when
something failed).

Knobs (environment): DEMO_RPC_CONNS (default 1000; a list runs each), DEMO_RPC_RATES
(2000,10000: calls/s, each run at every count), DEMO_SECS (3).
"""

import json
import os
import subprocess
import sys
import time

import procs
from demo_common import REPO, bench_tool, finish, require, scratch, split_cores

LOADGEN = bench_tool("loadgen")
THREADS = bench_tool("rpc_threads")
WARMUP = 0.5


def status(pid):
    """Threads and VmRSS (KiB) of a running process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["Threads"]), int(fields["VmRSS"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


def run_client(kind, n, port, rate, secs, cores):
    common = ["--port", str(port), "--rate", f"{rate:g}", "--duration", f"{secs:g}",
              "--warmup", f"{WARMUP:g}", "--path", "/small.txt"]
    if kind == "async":
        cmd = [LOADGEN, "--host", "127.0.0.1", "--conns", str(n)] + common
    else:
        cmd = [THREADS, "--threads", str(n)] + common
    cmd = ["taskset", "-c", ",".join(map(str, cores))] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    threads = rss = 0
    while True:
        s = status(p.pid)
        if s:
            threads, rss = max(threads, s[0]), max(rss, s[1])
        pid, code, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.05)
    out, err = p.stdout.read(), p.stderr.read()
    p.returncode = os.waitstatus_to_exitcode(code)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} n={n}: exit {p.returncode}: {(err or out)[-400:]}")
    j = json.loads(lines[-1])
    calls = rate * (WARMUP + secs)
    return {"client": kind, "n": n, "threads": threads, "rss_mib": rss / 1024,
            "rps": j["achieved_rps"], "p50": j["p50_ms"], "p99": j["p99_ms"],
            "errors": j["errors"], "cpu_us": (ru.ru_utime + ru.ru_stime) * 1e6 / calls,
            "switches": (ru.ru_nvcsw + ru.ru_nivcsw) / calls}


def main():
    require("demo-rpc", (LOADGEN, THREADS, os.path.join(REPO, "bin", "epoll")))
    conns = [int(n) for n in os.environ.get("DEMO_RPC_CONNS", "1000").split(",")]
    rates = [float(r) for r in os.environ.get("DEMO_RPC_RATES", "2000,10000").split(",")]
    secs = float(os.environ.get("DEMO_SECS", "3"))
    server_cores, client_cores = split_cores()
    procs.install_cleanup()
    logs, root = scratch("demo-rpc")
    print(f"demo-rpc: bin/epoll on CPU {','.join(map(str, server_cores))}; each client on CPU "
          f"{','.join(map(str, client_cores))} offers a fixed rate of GET /small.txt "
          f"(open loop) for {secs:g} s", flush=True)
    print(f"{'client':<8} {'conns':>6} {'offered':>7} {'threads':>7} {'calls/s':>8} {'p50 ms':>7} "
          f"{'p99 ms':>7} "
          f"{'CPU us/call':>11} {'switches/call':>13} {'RSS MiB':>8}", flush=True)
    server = procs.Server(os.path.join(REPO, "bin", "epoll"), root, server_cores, logs)
    failed = False
    try:
        server.start()
        for n, rate in [(n, rate) for n in conns for rate in rates]:
            for kind in ("async", "threads"):
                r = run_client(kind, n, server.port, rate, secs, client_cores)
                print(f"{kind:<8} {n:>6} {rate:>7g} {r['threads']:>7} {r['rps']:>8.0f} "
                      f"{r['p50']:>7.2f} {r['p99']:>7.2f} {r['cpu_us']:>11.1f} {r['switches']:>13.2f} "
                      f"{r['rss_mib']:>8.1f}" + (f"  ({r['errors']} errors)" if r["errors"] else ""),
                      flush=True)
    except (procs.StartError, RuntimeError, OSError) as e:
        print(f"demo-rpc: {e}", flush=True)
        failed = True
    finally:
        server.stop()
    return finish("demo-rpc", logs, failed)


if __name__ == "__main__":
    sys.exit(main())
