#!/usr/bin/env python3
"""bench.py - the c10k benchmark harness: every bin/* server and nginx, measured with wrk.

    python3 bench/bench.py full       make bench           the whole matrix (~15 min)
    python3 bench/bench.py quick      make bench-quick     c=1000, index.html, 1 rep (~2 min)
    python3 bench/bench.py ci         make bench-ci        wall-clock layer: ratios vs results/baseline.csv
    python3 bench/bench.py baseline   make bench-baseline  rewrites results/baseline.csv

Knobs (environment): BENCH_SERVERS, BENCH_CONNS, BENCH_FILES, BENCH_REPS, BENCH_SECS,
BENCH_WARMUP, BENCH_IDLE, BENCH_IDLE_REPS, BENCH_TRIM, BENCH_PERF, BENCH_SLOW,
BENCH_TOLERANCE, BENCH_CPU_TOLERANCE, BENCH_BUSY, BENCH_NGINX. docs/bench.md says what each does and
how to read the output.

Standard library only. Writes results/RUN_ID/: results.csv, idle.csv, summary.md, env.txt,
plots (PNG and SVG), and logs/ with every server's stderr and wrk's raw reports.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gate  # noqa: E402
import measure  # noqa: E402
import plots  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402
import www  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDLERS = os.path.join(REPO, os.environ.get("BUILD", "build"), "bench", "idlers")

# bin/select cannot hold an fd >= FD_SETSIZE (1024): its idle sweep stops below that, with
# room for wrk's 100 connections and the server's own fds.
SELECT_IDLE_MAX = 900
SELECT_IDLE_STEPS = (500, 900)

# Per mode: the matrix and timing unless the environment says otherwise.
MODES = {
    "full": dict(conns="10,100,1000,10000", files="small.txt,index.html,1m.bin", reps=3,
                 secs=1.25, warm=0.25, idle="0,1000,5000,9000", idle_reps=1, perf=True),
    "quick": dict(conns="1000", files="index.html", reps=1, secs=2, warm=0.3, idle="0,2000",
                  idle_reps=1, perf=True),
    "ci": dict(conns="100,1000", files="index.html", reps=3, secs=1.5, warm=0.3, idle="0,2000",
               idle_reps=1, perf=False),
    "baseline": dict(conns="100,1000", files="index.html", reps=5, secs=1.5, warm=0.3,
                     idle="", idle_reps=0, perf=False),
}

# Seconds a measurement costs beyond warm-up + run (wrk start, perf attach, /proc reads),
# and per 1,000 connections (connecting them, twice: warm-up and run). For the estimate.
OVERHEAD_S = 0.4
OVERHEAD_PER_KCONN_S = 0.1
SERVER_START_S = 0.2
IDLERS_PER_KCONN_S = 0.1


class Config:
    """The run's settings: a mode's defaults overridden by BENCH_* variables."""

    def __init__(self, mode):
        d = MODES[mode]
        env = os.environ
        self.mode = mode
        self.conns = sorted(int(c) for c in env.get("BENCH_CONNS", d["conns"]).split(","))
        self.files = [f for f in env.get("BENCH_FILES", d["files"]).split(",") if f]
        self.reps = int(env.get("BENCH_REPS", d["reps"]))
        self.secs = float(env.get("BENCH_SECS", d["secs"]))
        self.warm = float(env.get("BENCH_WARMUP", d["warm"]))
        idle = env.get("BENCH_IDLE", d["idle"])
        self.idle = sorted(int(m) for m in idle.split(",") if m.strip())
        self.idle_reps = int(env.get("BENCH_IDLE_REPS", d["idle_reps"] if self.idle else 0))
        self.trim = env.get("BENCH_TRIM", "1") != "0"
        self.perf = env.get("BENCH_PERF", "1" if d["perf"] else "0") != "0"
        self.tolerance = float(env.get("BENCH_TOLERANCE", gate.DEFAULT_TOLERANCE))
        self.cpu_tolerance = float(env.get("BENCH_CPU_TOLERANCE", gate.DEFAULT_CPU_TOLERANCE))
        self.busy_pressure = float(env.get("BENCH_BUSY", gate.DEFAULT_BUSY_PRESSURE))
        self.slow = parse_slow(env.get("BENCH_SLOW", ""))
        self.nginx = env.get("BENCH_NGINX", "/usr/sbin/nginx")
        self.servers = pick_servers(env.get("BENCH_SERVERS", ""))
        unknown = [f for f in self.files if f not in www.FILES]
        if unknown:
            sys.exit(f"bench: unknown file(s) {unknown}; choose from {list(www.FILES)}")
        cpus = sorted(os.sched_getaffinity(0))
        self.cpus = cpus
        half = max(1, len(cpus) // 2)
        self.server_cores = cpus[:half]
        self.client_cores = cpus[half:] or cpus  # one core: share it, and say so in env.txt

    def skip(self, conns, file):
        """The full matrix's one trim: 1 MiB bodies to 10,000 connections would hold
        ~10 GB in flight and cost more time than the rest of a column; BENCH_TRIM=0 runs it."""
        return self.trim and file == "1m.bin" and conns >= 10000

    def idle_steps(self, server):
        if server != "select":
            return self.idle
        steps = {m for m in self.idle if m <= SELECT_IDLE_MAX}
        if any(m > SELECT_IDLE_MAX for m in self.idle):
            steps |= set(s for s in SELECT_IDLE_STEPS if s <= max(self.idle))
        return sorted(steps)


def parse_slow(text):
    """BENCH_SLOW=epoll -> {'epoll': None}: run it under strace (a slower server, as a code
    regression would make it); epoll:40 -> {'epoll': 40}: a CPU hog on its cores, busy 40%
    of the time (a slower machine, not a slower server)."""
    out = {}
    for item in filter(None, text.split(",")):
        name, _, duty = item.partition(":")
        out[name] = int(duty) if duty else None
    return out


def pick_servers(wanted):
    """Our servers: every bin/* (or those named in BENCH_SERVERS), in a stable order."""
    order = ["blocking", "busypoll", "select", "poll", "epoll", "sigio", "uring", "aio", "coro"]
    bin_dir = os.path.join(REPO, "bin")
    have = sorted((f for f in os.listdir(bin_dir) if os.access(os.path.join(bin_dir, f), os.X_OK))
                  if os.path.isdir(bin_dir) else [],
                  key=lambda s: (order.index(s) if s in order else len(order), s))
    if wanted:
        names = [n for n in wanted.split(",") if n and n != "nginx"]
        missing = [n for n in names if n not in have]
        if missing:
            sys.exit(f"bench: no bin/{missing[0]} (have: {' '.join(have) or 'nothing'}; run make)")
        have = [s for s in have if s in names]
    if not have:
        sys.exit("bench: no server binaries in bin/ (run make)")
    return have


def run_id(mode):
    try:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "nogit"
    base = time.strftime("%Y-%m-%dT%H%M") + "-" + commit
    if mode != "full":
        base += "-" + mode
    rid, n = base, 1
    while os.path.exists(os.path.join(REPO, "results", rid)):
        n += 1
        rid = f"{base}-{n}"
    return rid


class Bench:
    def __init__(self, cfg):
        self.cfg = cfg
        self.rid = run_id(cfg.mode)
        self.dir = os.path.join(REPO, "results", self.rid)
        self.logs = os.path.join(self.dir, "logs")
        os.makedirs(self.logs)
        self.www = os.path.join(REPO, "www")
        self.wrk_log = open(os.path.join(self.logs, "wrk.log"), "a")
        self.failures = []  # (what, why): shown at the end and in summary.md
        self.done = 0
        self.total = 0
        self.syscalls = "none"

    # -- targets ------------------------------------------------------------------------

    def make_target(self, name):
        if name == "nginx":
            return procs.Nginx(self.cfg.nginx, self.www, self.cfg.server_cores, self.dir)
        # BENCH_SLOW=NAME: every syscall of the server stops for strace, which writes nothing.
        wrapper = ["strace", "-f", "-qq", "-o", "/dev/null"] \
            if name in self.cfg.slow and self.cfg.slow[name] is None else []
        return procs.Server(os.path.join(REPO, "bin", name), self.www, self.cfg.server_cores,
                            self.logs, wrapper)

    def start(self, name):
        """Starts a target (and its BENCH_SLOW hog); returns (target, hog) or None."""
        t = self.make_target(name)
        try:
            t.start()
        except procs.StartError as e:
            self.fail(name, f"did not start: {e}")
            return None
        hog = None
        if self.cfg.slow.get(name) is not None:
            hog = procs.CpuHog(self.cfg.server_cores, self.cfg.slow[name])
            hog.start()
        return t, hog

    def stop(self, started):
        t, hog = started
        if hog:
            hog.stop()
        t.stop()

    def fail(self, what, why):
        self.failures.append((what, why))
        print(f"bench: {what}: {why}", flush=True)

    def one(self, started, conns, file, label):
        """One measurement, or None (recorded as a failure) if it could not be made."""
        t = started[0]
        try:
            return measure.measure(t, conns, file, self.cfg.secs, self.cfg.warm,
                                   self.cfg.client_cores, self.syscalls, self.logs,
                                   self.wrk_log, label)
        except (measure.MeasureError, OSError) as e:
            self.fail(f"{t.name} c={conns} {file}", str(e))
            return None

    # -- the matrix -----------------------------------------------------------------------

    def per_measurement_s(self, conns=0):
        """The estimate of one measurement's wall time, warm-up and overheads included."""
        return (self.cfg.warm + self.cfg.secs + OVERHEAD_S
                + OVERHEAD_PER_KCONN_S * conns / 1000)

    def plan(self):
        cfg = self.cfg
        targets = cfg.servers + ["nginx"]
        points = [(c, f) for c in cfg.conns for f in cfg.files if not cfg.skip(c, f)]
        main = len(targets) * len(points) * cfg.reps
        idle = sum(len(cfg.idle_steps(s)) for s in targets) * cfg.idle_reps
        est = sum(self.per_measurement_s(c) for c, _ in points) * len(targets) * cfg.reps
        est += sum(self.per_measurement_s(100) + IDLERS_PER_KCONN_S * m / 1000
                   for s in targets for m in cfg.idle_steps(s)) * cfg.idle_reps
        est += SERVER_START_S * len(targets) * (cfg.reps + cfg.idle_reps)
        return targets, points, main, idle, est

    def run_matrix(self):
        cfg = self.cfg
        targets, points, main, idle, est = self.plan()
        self.total = main + idle
        trimmed = [f"{f} at c={c}" for c in cfg.conns for f in cfg.files if cfg.skip(c, f)]
        print(f"bench: {self.rid}: {len(targets)} servers ({' '.join(targets)}) x "
              f"conns {','.join(map(str, cfg.conns))} x {','.join(cfg.files)} x {cfg.reps} reps"
              f" = {main} measurements" + (f" (skipping {', '.join(trimmed)})" if trimmed else "")
              + (f" + {idle} idle-sweep points" if idle else ""))
        print(f"bench: {cfg.secs:g} s each after a {cfg.warm:g} s warm-up; server on CPU "
              f"{cfg.server_cores}, wrk on CPU {cfg.client_cores}; syscalls: {self.syscalls}; "
              f"estimated {report.fmt_duration(est)}", flush=True)

        rows = []
        # Repetitions outermost: each server's reps are spread over the run, so a burst of
        # background load hits one rep of everyone rather than every rep of one server.
        for rep in range(1, cfg.reps + 1):
            for name in targets:
                started = self.start(name)
                if not started:
                    self.done += len(points)
                    continue
                try:
                    for conns, file in points:
                        self.done += 1
                        label = f"{name} c={conns} {file} rep {rep}"
                        if not started[0].alive():
                            self.stop(started)
                            started = self.start(name)
                            if not started:
                                break
                        row = self.one(started, conns, file, label)
                        if row:
                            row["rep"] = rep
                            rows.append(row)
                            report.append_csv(os.path.join(self.dir, "results.csv"),
                                              report.CSV_HEADER, row)
                            print(report.progress_line(self.done, self.total, row, rep, cfg.reps),
                                  flush=True)
                finally:
                    if started:
                        self.stop(started)
        return rows

    def run_idle_sweep(self):
        """The C10K lesson: 100 busy connections served while M idle ones are held open."""
        cfg = self.cfg
        rows = []
        if not cfg.idle_reps or not cfg.idle:
            return rows
        if not os.access(IDLERS, os.X_OK):
            self.fail("idle sweep", f"no {IDLERS} (make {os.path.relpath(IDLERS, REPO)})")
            return rows
        targets = cfg.servers + ["nginx"]
        for rep in range(1, cfg.idle_reps + 1):
            for name in targets:
                started = self.start(name)
                if not started:
                    self.done += len(cfg.idle_steps(name))
                    continue
                try:
                    for m in cfg.idle_steps(name):
                        self.done += 1
                        if not started[0].alive():
                            self.stop(started)
                            started = self.start(name)
                            if not started:
                                break
                        row = self.one_idle(started, m, rep)
                        if row:
                            rows.append(row)
                            report.append_csv(os.path.join(self.dir, "idle.csv"),
                                              report.IDLE_HEADER, row)
                            line = report.progress_line(self.done, self.total, row, rep,
                                                        cfg.idle_reps, f" idle={m}")
                            print(line, flush=True)
                finally:
                    if started:
                        self.stop(started)
        return rows

    def one_idle(self, started, m, rep):
        t = started[0]
        idlers = None
        try:
            if m:
                idlers = procs.Idlers(IDLERS, t.port, m, self.cfg.client_cores,
                                      os.path.join(self.logs, "idlers.log"))
                opened = idlers.start()
                if opened < m:
                    print(f"bench: {t.name}: only {opened} of {m} idle connections opened",
                          flush=True)
            else:
                opened = 0
            row = self.one(started, 100, "index.html", f"{t.name} idle={m} rep {rep}")
        except procs.StartError as e:
            self.fail(f"{t.name} idle={m}", str(e))
            row = None
        finally:
            kept = idlers.stop() if idlers else 0
        if row:
            row.update(idle=m, idle_open=opened, idle_kept=kept, rep=rep)
        return row

    # -- the whole run --------------------------------------------------------------------

    def run(self):
        cfg = self.cfg
        # The harness's own work (sampling /proc, spawning) stays off the server's cores.
        os.sched_setaffinity(0, cfg.client_cores)
        sizes = www.generate(self.www)
        if cfg.perf:
            check = os.path.join(self.logs, "perf-check.out")
            self.syscalls = "perf" if measure.perf_works(check) else "strace"
        report.write_env(os.path.join(self.dir, "env.txt"), cfg, self.rid, self.syscalls, REPO)
        with open(os.path.join(self.logs, "config.json"), "w") as f:
            json.dump(dict(vars(cfg), syscalls=self.syscalls), f, indent=1)  # for `replot`
        t0 = time.monotonic()
        if cfg.mode in ("ci", "baseline"):
            result = gate.run(self, cfg)
            if cfg.mode == "ci" and cfg.idle_reps:  # reported, never judged
                self.total += sum(len(cfg.idle_steps(s)) for s in cfg.servers + ["nginx"])
                gate.report_idle(self.run_idle_sweep(), cfg)
        else:
            rows = self.run_matrix()
            idle_rows = self.run_idle_sweep()
            report.write_summary(os.path.join(self.dir, "summary.md"), cfg, self.rid, rows,
                                 idle_rows, sizes, self.syscalls, self.failures,
                                 time.monotonic() - t0)
            plots.make_all(self.dir, cfg, rows, idle_rows)
            result = 1 if self.failures else 0
        print(f"bench: done in {report.fmt_duration(time.monotonic() - t0)}; results in "
              f"{os.path.relpath(self.dir, os.getcwd())}/", flush=True)
        return result


def replot(run_dir):
    """Redraws summary.md and the plots of a finished (or interrupted) run from its CSVs."""
    with open(os.path.join(run_dir, "logs", "config.json")) as f:
        saved = json.load(f)
    cfg = Config.__new__(Config)
    cfg.__dict__.update(saved)
    rows = report.read_csv(os.path.join(run_dir, "results.csv"))
    idle_path = os.path.join(run_dir, "idle.csv")
    idle_rows = report.read_csv(idle_path) if os.path.exists(idle_path) else []
    sizes = {name: len(make()) for name, make in www.FILES.items()}
    report.write_summary(os.path.join(run_dir, "summary.md"), cfg, os.path.basename(
        os.path.normpath(run_dir)), rows, idle_rows, sizes, saved["syscalls"], [], None)
    plots.make_all(run_dir, cfg, rows, idle_rows)
    return 0


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    if mode == "replot" and len(sys.argv) == 3:
        return replot(sys.argv[2])
    if mode not in MODES:
        sys.exit(f"usage: {sys.argv[0]} [{'|'.join(MODES)}] | replot RESULTS_DIR")
    procs.install_cleanup()
    cfg = Config(mode)
    bench = Bench(cfg)
    try:
        return bench.run()
    except KeyboardInterrupt:
        print("\nbench: interrupted; every server, nginx and idlers process stopped", flush=True)
        return 130
    finally:
        procs.reap_all()
        bench.wrk_log.close()


if __name__ == "__main__":
    sys.exit(main())
