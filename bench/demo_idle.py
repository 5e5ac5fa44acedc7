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

It also draws the points for the class: CPU per request and p99 latency against the idle
connections held, one line per server, in build/demo-idle/demo-idle.png and .svg (gnuplot;
the script, demo-idle.gp, and the points, points.csv, next to them).

Knobs (environment): DEMO_IDLE (default 5000; a list such as 1000,5000 adds steps),
DEMO_RATE (2000), DEMO_SECS (5), DEMO_OUT (the plot's directory, build/demo-idle).
"""

import os
import shutil
import subprocess
import sys
import types

import openloop
import procs
from c10kutil import proc_fds
from demo_common import (BUILD_DIR, REPO, bench_tool, finish, require, scratch,
                         split_cores)
from measure import MeasureError

IDLERS = bench_tool("idlers")
LOADGEN = bench_tool("loadgen")
BUSY_CONNS = 100
COLOUR = {"poll": "#b35900", "epoll": "#1f77b4"}  # strong on a projector


def config():
    server_cores, client_cores = split_cores()
    return types.SimpleNamespace(
        idle=[int(m) for m in os.environ.get("DEMO_IDLE", "5000").split(",")],
        out=os.environ.get("DEMO_OUT", os.path.join(BUILD_DIR, "demo-idle")),
        rate=float(os.environ.get("DEMO_RATE", "2000")),
        open_secs=float(os.environ.get("DEMO_SECS", "5")), open_warm=0.5,
        open_timeout=2.0, open_connect_timeout=30.0, client_rt=False,
        server_cores=server_cores, client_cores=client_cores)


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


def plot(out, cfg, points):
    """points: (server, idle, p99 ms, CPU us/req). Writes points.csv and draws demo-idle.png
    and .svg with gnuplot (two panels, large type); returns the PNG's path, or None."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "points.csv"), "w") as f:
        f.write("server,idle,p99_ms,cpu_us_per_req\n")
        for p in points:
            f.write(",".join("" if v is None else str(v) for v in p) + "\n")
    if not shutil.which("gnuplot"):
        print("demo-idle: no gnuplot, so no plot (make deps)", flush=True)
        return None
    names = list(dict.fromkeys(p[0] for p in points))
    gp = ["# demo-idle.gp: drawn by bench/demo_idle.py; gnuplot demo-idle.gp redraws it",
          "set encoding utf8", "set datafile missing '?'"]
    for name in names:
        gp.append(f"${name} << EOD")
        gp += [f"{m} {'?' if p99 is None else p99} {'?' if cpu is None else cpu}"
               for n, m, p99, cpu in points if n == name]
        gp.append("EOD")
    title = (f"{cfg.rate:g} requests/s over {BUSY_CONNS} busy connections (open loop), "
             "idle keep-alive connections held beside them\\none run per point; on a shared "
             "machine p99 is the noisiest figure")
    panels = [("CPU µs per request", 3), ("p99 latency, ms", 2)]
    for ext, term in (("png", "pngcairo size 1400,640"), ("svg", "svg size 1400,640 dynamic")):
        gp += [f'set terminal {term} font "DejaVu Sans,20" background rgb "white"',
               f'set output "demo-idle.{ext}"',
               f'set multiplot layout 1,2 title "{title}" font ",18"',
               "set grid lc rgb '#dddddd'", "set border 3", "set tics nomirror",
               "set key top left noenhanced", "set xlabel 'idle connections'",
               "set yrange [0:*]", "set xrange [0:*]", "set offsets 0, graph 0.05, 0, 0"]
        for ylabel, col in panels:
            gp.append(f"set title '{ylabel}'")
            gp.append("unset ylabel")
            gp.append("plot " + ", ".join(
                f"${n} using 1:{col} with linespoints lw 4 pt 7 ps 2 lc rgb "
                f"'{COLOUR.get(n, '#555555')}' title '{n}'" for n in names))
        gp += ["unset multiplot", "unset output"]
    with open(os.path.join(out, "demo-idle.gp"), "w") as f:
        f.write("\n".join(gp) + "\n")
    r = subprocess.run(["gnuplot", "demo-idle.gp"], cwd=out, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"demo-idle: gnuplot failed: {r.stderr.strip()[-300:]}", flush=True)
        return None
    return os.path.join(out, "demo-idle.png")


def main():
    names = sys.argv[1:] or ["poll", "epoll"]
    require("demo-idle", [IDLERS, LOADGEN] + [os.path.join(REPO, "bin", n) for n in names])
    cfg = config()
    procs.install_cleanup()
    logs, root = scratch("demo-idle")
    failed = False
    points = []
    print(f"demo-idle: {BUSY_CONNS} busy connections at {cfg.rate:g} requests/s (open loop), "
          f"with 0 and then {', '.join(f'{m:,}' for m in cfg.idle)} idle connections held; "
          f"server on CPU "
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
                for m in [0] + cfg.idle:
                    row = point(server, m, cfg, logs, log)
                    cpu[m] = row.get("cpu_us_per_req")
                    points.append((name, m, row["p99_ms"], cpu[m]))
                    print(f"{name:<8} {m:>6} {row['achieved_rps']:>10.0f} "
                          f"{fmt(row['p50_ms'], '7.2f')} {fmt(row['p99_ms'], '7.2f')} "
                          f"{fmt(cpu[m], '10.1f')} {fmt(row.get('server_util'), '10.0%')}",
                          flush=True)
            except (procs.StartError, MeasureError, OSError) as e:
                print(f"demo-idle: {name}: {e}", flush=True)
                failed = True
            finally:
                server.stop()
            most = cfg.idle[-1]
            if cpu.get(0) and cpu.get(most):
                print(f"{name}: CPU per request x{cpu[most] / cpu[0]:.1f} with "
                      f"{most:,} idle connections", flush=True)
    png = plot(cfg.out, cfg, points) if points else None
    if png:
        shown = os.path.relpath(png) if png.startswith(os.getcwd() + os.sep) else png
        print(f"demo-idle: plot {shown} (and .svg)", flush=True)
    return finish("demo-idle", logs, failed)


if __name__ == "__main__":
    sys.exit(main())
