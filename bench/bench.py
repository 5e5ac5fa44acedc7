#!/usr/bin/env python3
"""bench.py - the c10k benchmark harness: every bin/* server and three peers (nginx tuned for
static files, h2o, lighttpd), measured open-loop with bench/loadgen and closed-loop with wrk.

    python3 bench/bench.py full       make bench           the whole run (~20-25 min)
    python3 bench/bench.py quick      make bench-quick     a short version (< 3 min)
    python3 bench/bench.py ci         make bench-ci        wall-clock layer: ratios vs results/baseline.csv
    python3 bench/bench.py baseline   make bench-baseline  rewrites results/baseline.csv

A full run, in four phases:
    open loop     bench/loadgen at 100 and 10,000 established connections: the client's
                  ceiling against bench/floor, then every server and peer at fractions of it,
                  uncapped, repetitions interleaved, then the knees (efficiency.py)
    profile       where the CPU goes: bin/epoll, bin/uring and the floor at one open-loop
                  rate under perf (bench/profile.py, ~25 s), after the open loop
    closed loop   wrk at BENCH_CONNS connections: wrk's peak, one point per server
    idle sweep    100 busy wrk connections while M idle ones are held (bench/idlers); last,
                  because bin/fork leaves thousands of children to reap

Knobs (environment): BENCH_SERVERS, BENCH_PEERS, BENCH_CONNS, BENCH_FILES, BENCH_REPS,
BENCH_SECS, BENCH_WARMUP, BENCH_IDLE, BENCH_IDLE_REPS, BENCH_IDLE_SECS, BENCH_OPEN_CONNS,
BENCH_OPEN_SECS, BENCH_OPEN_START, BENCH_OPEN_STEP, BENCH_OPEN_REFINE, BENCH_OPEN_MAX,
BENCH_CHURN_CONNS, BENCH_FIXED_RPS, BENCH_CPU_QUOTA, BENCH_BUDGET, BENCH_SYSCTL, BENCH_CLIENT_RT,
BENCH_TRIM,
BENCH_PERF, BENCH_PROFILE, BENCH_SLOW, BENCH_TOLERANCE, BENCH_CPU_TOLERANCE, BENCH_BUSY, BENCH_NGINX,
BENCH_LOADGEN; for more cores and labs (docs/lab-bench.md) BENCH_SERVER_CPUS,
BENCH_CLIENT_CPUS, BENCH_WORKERS, BENCH_CLIENT_INSTANCES, BENCH_SERVER_HOST,
BENCH_CLIENT_HOSTS, BENCH_SERVER_ADDR. docs/bench.md says what each does and how to read
the output.

Standard library only. Writes results/RUN_ID/: results.csv, idle.csv, openloop.csv,
summary.md, env.txt, plots (PNG and SVG), and logs/ with every server's stderr and the raw
reports of wrk and loadgen.
"""

import json
import math
import os
import shlex
import subprocess
import sys
import time

import c10kutil
import efficiency
import gate
import hostproc
import measure
import openloop
import plots
import procs
import report
import scaling
import www

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.path.join(REPO, os.environ.get("BUILD", "build"))
IDLERS = os.path.join(BUILD_DIR, "bench", "idlers")
LOADGEN = os.environ.get("BENCH_LOADGEN", os.path.join(BUILD_DIR, "bench", "loadgen"))
FLOOR = os.path.join(BUILD_DIR, "bench", "floor")
# The run's CPU profile (run_profile): which servers beside the floor, at what load.
PROFILE_SERVERS = ("epoll", "uring")
PROFILE_RATE, PROFILE_CONNS, PROFILE_SECS = 5000, 100, 5
INJECT_DIR = os.path.join(BUILD_DIR, "inject")

# A model with the fdset trait (servers/models.tsv: bin/select) cannot hold an fd >=
# FD_SETSIZE (1024): its idle sweep stops below that, with room for wrk's 100 connections
# and the server's own fds.
SELECT_IDLE_MAX = 900
SELECT_IDLE_STEPS = (500, 900)


def profile_names(servers):
    """What a full run profiles: bin/epoll and bin/uring where the run has them, then the
    floor, and the floor's io_uring loop beside bin/uring (the least each engine can do).
    None of the run's servers profiled: nothing."""
    names = [n for n in PROFILE_SERVERS if n in servers]
    if not names:
        return []
    return names + [efficiency.FLOOR] + ([efficiency.FLOOR + "+uring"] if "uring" in names else [])


# Per mode: the matrix and timing unless the environment says otherwise. open_conns empty:
# no open-loop sweep (bench-ci and bench-baseline keep their plain-nginx protocol).
MODES = {
    "full": dict(conns="1000", files="index.html", reps=1, secs=2, warm=0.5,
                 idle="0,3000,9000", idle_reps=1, idle_secs=1.5, perf=True,
                 peers="nginx,h2o,lighttpd", open_conns="100,10000", open_secs=1,
                 open_warm=0.3, open_start=4000, open_step=2, open_refine=2,
                 open_max=256000, open_extra=True, churn_conns=1000, churn_start=2000,
                 churn_fractions="0.25,0.5,0.9", fixed_rps=8000, churn_fixed_rps=2000,
                 quota=0, budget=27.5,
                 fractions="0.1,0.5,0.9", open_reps=3, knee_reps=2, claim_reps=2),
    "quick": dict(conns="1000", files="index.html", reps=1, secs=1, warm=0.2, idle="",
                  idle_reps=1, idle_secs=2, perf=True, peers="nginx,h2o,lighttpd",
                  open_conns="100", open_secs=0.5, open_warm=0.2, open_start=8000,
                  open_step=4, open_refine=0, open_max=64000, open_extra=False,
                  churn_conns=0, churn_start=2000, fixed_rps=4000, churn_fixed_rps=2000,
                  quota=0, budget=2.6, fractions="0.25,0.5,0.9", open_reps=2, knee_reps=0,
                  claim_reps=0),
    "ci": dict(conns="100,1000", files="index.html", reps=3, secs=1.5, warm=0.3, idle="0,2000",
               idle_reps=1, idle_secs=1.5, perf=False, peers="nginx", open_conns="",
               budget=0),
    "baseline": dict(conns="100,1000", files="index.html", reps=5, secs=1.5, warm=0.3,
                     idle="", idle_reps=0, idle_secs=1.5, perf=False, peers="nginx",
                     open_conns="", budget=0),
}
OPEN_DEFAULTS = dict(open_secs=2, open_warm=0.5, open_start=2000, open_step=2, open_refine=2,
                     open_max=256000, open_extra=True, churn_conns=0, churn_start=2000,
                     fixed_rps=8000, churn_fixed_rps=2000, quota=0,
                     fractions="0.1,0.25,0.5,0.75,0.9", churn_fractions="0.25,0.5,0.9",
                     open_reps=3, knee_reps=2, claim_reps=2)

# Seconds a measurement costs beyond warm-up + run (wrk start, perf attach, /proc reads),
# and per 1,000 connections (connecting them, twice: warm-up and run). For the estimate.
OVERHEAD_S = 0.4
OVERHEAD_PER_KCONN_S = 0.1
SERVER_START_S = 0.2
IDLERS_PER_KCONN_S = 0.1
# An open-loop point: loadgen's start and exit, waiting for the last answers, and its
# connects (paced, outside the window). Points per ladder: what the ladders took here.
OPEN_OVERHEAD_S = 0.4
OPEN_PER_KCONN_S = 0.05
OPEN_POINTS_PER_LADDER = 8
# The efficiency phase: points the calibration takes, and the share of servers with a knee
# below the client's ceiling (the slow models and some peers, at 10,000 connections).
CALIBRATION_POINTS = 8
KNEE_SHARE = 0.4
# Share of a server's open-loop budget per ladder (the rest carries over to the next).
LADDER_WEIGHT = {"open": 0.35, "open_many": 0.4, "churn": 0.25}
# The longest any one server's open-loop phase may take, whatever the budget.
OPEN_MAX_PER_SERVER_S = 150


class Config:
    """The run's settings: a mode's defaults overridden by BENCH_* variables."""

    def __init__(self, mode):
        d = MODES[mode]
        env = os.environ
        self.mode = mode
        # BENCH_CONNS= (empty): no closed-loop runs (bench-ci needs them).
        self.conns = sorted(int(c) for c in env.get("BENCH_CONNS", d["conns"]).split(",") if c)
        if not self.conns and mode in ("ci", "baseline"):
            sys.exit("bench: bench-ci and bench-baseline need BENCH_CONNS")
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
        self.peers = [p for p in env.get("BENCH_PEERS", d["peers"]).split(",") if p]
        if mode in ("ci", "baseline") and self.peers != ["nginx"]:
            sys.exit("bench: bench-ci and bench-baseline compare with nginx only")
        bad = [p for p in self.peers if p not in procs.PEERS]
        if bad:
            sys.exit(f"bench: unknown peer(s) {bad}; choose from {list(procs.PEERS)}")
        # The peers as their documentation advises; bench-ci keeps the plain nginx its
        # committed baseline was measured against.
        self.nginx_tuned = mode not in ("ci", "baseline")
        self.idle_secs = float(env.get("BENCH_IDLE_SECS", d["idle_secs"]))
        o = dict(OPEN_DEFAULTS, **d)
        self.open_conns = sorted(int(c) for c in
                                 env.get("BENCH_OPEN_CONNS", d["open_conns"]).split(",") if c)
        self.open_secs = float(env.get("BENCH_OPEN_SECS", o["open_secs"]))
        self.open_warm = float(env.get("BENCH_OPEN_WARMUP", o["open_warm"]))
        self.open_start = float(env.get("BENCH_OPEN_START", o["open_start"]))
        self.open_step = float(env.get("BENCH_OPEN_STEP", o["open_step"]))
        self.open_refine = int(env.get("BENCH_OPEN_REFINE", o["open_refine"]))
        self.open_max = float(env.get("BENCH_OPEN_MAX", o["open_max"]))
        self.open_extra = bool(o["open_extra"])
        self.open_timeout = 2.0  # loadgen waits this long for answers after its window
        self.open_connect_timeout = 60.0
        self.churn_conns = int(env.get("BENCH_CHURN_CONNS", o["churn_conns"])) \
            if self.open_conns else 0
        self.churn_start = float(o["churn_start"])
        self.fixed_rps = float(env.get("BENCH_FIXED_RPS", o["fixed_rps"]))
        self.churn_fixed_rps = float(o["churn_fixed_rps"])
        self.quota = float(env.get("BENCH_CPU_QUOTA", o["quota"]))
        # The efficiency curves (efficiency.py); BENCH_LADDERS=1 runs the older capacity
        # ladders instead.
        self.fractions = [float(f) for f in
                          env.get("BENCH_FRACTIONS", o["fractions"]).split(",") if f]
        self.churn_fractions = [float(f) for f in env.get(
            "BENCH_CHURN_FRACTIONS", o["churn_fractions"]).split(",") if f]
        self.open_reps = int(env.get("BENCH_OPEN_REPS", o["open_reps"]))
        self.knee_reps = int(env.get("BENCH_KNEE_REPS", o["knee_reps"]))
        self.claim_reps = int(env.get("BENCH_CLAIM_REPS", o["claim_reps"]))
        self.ceiling = float(env.get("BENCH_CEILING", 0))  # 0: measured against the floor
        self.ladders = env.get("BENCH_LADDERS", "0") == "1"
        self.budget_min = float(env.get("BENCH_BUDGET", d["budget"]))
        self.sysctl = env.get("BENCH_SYSCTL", "1") != "0" and bool(self.open_conns)
        # loadgen under SCHED_FIFO (as root): other work on the client core then cannot make
        # it late, so a busy machine costs client-bound points far more rarely.
        self.client_rt = env.get("BENCH_CLIENT_RT", "1") != "0" and os.geteuid() == 0
        unknown = [f for f in self.files if f not in www.FILES]
        if unknown:
            sys.exit(f"bench: unknown file(s) {unknown}; choose from {list(www.FILES)}")
        cpus = sorted(os.sched_getaffinity(0))
        self.cpus = cpus
        half = max(1, len(cpus) // 2)
        self.server_cores = parse_cpus(env.get("BENCH_SERVER_CPUS", "")) or cpus[:half]
        # The rest (one core: share it, and say so in env.txt).
        self.client_cores = parse_cpus(env.get("BENCH_CLIENT_CPUS", "")) or \
            [c for c in cpus if c not in self.server_cores] or cpus
        # Where the server and the clients run: command prefixes (none: here).
        self.server_host = shlex.split(env.get("BENCH_SERVER_HOST", ""))
        self.client_hosts = [shlex.split(h) for h in env.get("BENCH_CLIENT_HOSTS", "").split(",")
                             if h.strip()]
        self.server_addr = env.get("BENCH_SERVER_ADDR", "127.0.0.1")
        # One loadgen per client core of every client host.
        self.client_instances = int(env.get("BENCH_CLIENT_INSTANCES", 0)) or \
            len(self.client_cores) * max(1, len(self.client_hosts))
        # BENCH_WORKERS=1,2,4: every server and peer once per worker count, as NAME-wN.
        self.workers = [int(w) for w in env.get("BENCH_WORKERS", "").split(",") if w.strip()]
        self.base_servers, self.base_peers = self.servers, self.peers
        if len(self.workers) > 1:
            self.servers = [f"{s}-w{w}" for s in self.servers for w in self.workers]
            self.peers = [f"{p}-w{w}" for p in self.peers for w in self.workers]

    def workers_of(self, name):
        """(NAME without its -wN, its worker count): N in a sweep; else BENCH_WORKERS's one
        count, or one per server core when there are several; None (the model's own
        default, as without this knob) on one server core."""
        base, n = scaling.split(name)
        if n:
            return base, n
        if self.workers:
            return name, self.workers[0]
        return name, len(self.server_cores) if len(self.server_cores) > 1 else None

    def cores_for(self, workers):
        """The server cores N workers get: the first N (all of them if N is more)."""
        return self.server_cores[:workers] if workers else self.server_cores

    def skip(self, conns, file):
        """The full matrix's one trim: 1 MiB bodies to 10,000 connections would hold
        ~10 GB in flight and cost more time than the rest of a column; BENCH_TRIM=0 runs it."""
        return self.trim and file == "1m.bin" and conns >= 10000

    def idle_steps(self, server):
        if "fdset" not in c10kutil.model_traits(self.workers_of(server)[0]):
            return self.idle
        steps = {m for m in self.idle if m <= SELECT_IDLE_MAX}
        if any(m > SELECT_IDLE_MAX for m in self.idle):
            steps |= set(s for s in SELECT_IDLE_STEPS if s <= max(self.idle))
        return sorted(steps)


def parse_cpus(text):
    """A CPU list as taskset and cpuset write it ("0-3,8"), sorted; [] for none."""
    out = set()
    for item in filter(None, (s.strip() for s in text.split(","))):
        lo, _, hi = item.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return sorted(out)


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
    """Our servers: every bin/* (or those named in BENCH_SERVERS), in the model table's
    order (servers/models.tsv), a binary without a row last."""
    bin_dir = os.path.join(REPO, "bin")
    have = sorted((f for f in os.listdir(bin_dir) if os.access(os.path.join(bin_dir, f), os.X_OK))
                  if os.path.isdir(bin_dir) else [], key=c10kutil.model_rank)
    if wanted:
        names = [n for n in wanted.split(",") if n and n not in procs.PEERS]
        missing = [n for n in names if n.split("@")[0].split("+")[0] not in have]
        if missing:
            sys.exit(f"bench: no bin/{missing[0]} (have: {' '.join(have) or 'nothing'}; run make)")
        # NAME@LIB: bin/NAME under LD_PRELOAD=build/inject/LIB.so, a server made slower on
        # purpose (tests/inject/), measured as a server of its own; NAME+OPTION: bin/NAME
        # with one of its own options, e.g. epoll+busy-poll=50 (c10kutil.option_variant).
        variants = [n for n in names if "@" in n or "+" in n]
        for v in variants:
            lib = os.path.join(INJECT_DIR, v.split("@")[1] + ".so") if "@" in v else None
            if lib and not os.path.exists(lib):
                sys.exit(f"bench: no {lib} (make inject)")
        have = [s for s in have if s in names] + variants
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
        self.loadgen_log = None
        self.failures = []  # (what, why): shown at the end and in summary.md
        self.notes = []     # what the run decided on its own (budget cuts), for summary.md
        self.done = 0
        self.total = 0
        self.syscalls = "none"
        self.cap = None
        self.closed_s = 0  # plan(): what the closed loop and the idle sweep will take
        self.acct = None  # procs.CpuAccount: the server's CPU, children included
        self.remote = None  # hostproc.ServerHost: the server's host, read through its prefix
        self.sysctls = procs.Sysctls()

    @property
    def targets(self):
        return self.cfg.servers + self.cfg.peers

    # -- targets ------------------------------------------------------------------------

    def make_target(self, name):
        cfg = self.cfg
        base, workers = cfg.workers_of(name)
        # Where, on which cores, how many workers, under which name (NAME-wN in a sweep).
        where = dict(workers=workers, name=name, addr=cfg.server_addr, host=cfg.server_host,
                     remote=self.remote)
        cores = cfg.cores_for(workers)
        if base in procs.PEERS:
            cls, default = procs.PEERS[base]
            if base == "nginx":
                return cls(cfg.nginx, self.www, cores, self.dir, tuned=cfg.nginx_tuned, **where)
            return cls(default, self.www, cores, self.dir, **where)
        if base == efficiency.FLOOR:
            # The floor of the whole server: one worker per server core (its --workers),
            # on every server core, whatever a sweep gives the servers; none on one core.
            n = len(cfg.server_cores)
            return procs.Server(FLOOR, self.www, cfg.server_cores, self.logs,
                                **dict(where, workers=n if n > 1 else None))
        if "+" in base:
            model, _ = c10kutil.option_variant(base)
            binary = c10kutil.option_variant_binary(base, os.path.join(REPO, "bin", model),
                                                    self.logs)
            return procs.Server(binary, self.www, cores, self.logs, **where)
        if "@" in base:
            model, lib = base.split("@")
            return procs.Server(os.path.join(REPO, "bin", model), self.www, cores, self.logs,
                                env={"LD_PRELOAD": os.path.join(INJECT_DIR, lib + ".so")},
                                **where)
        # BENCH_SLOW=NAME: every syscall of the server stops for strace, which writes nothing.
        wrapper = ["strace", "-f", "-qq", "-o", "/dev/null"] \
            if base in cfg.slow and cfg.slow[base] is None else []
        return procs.Server(os.path.join(REPO, "bin", base), self.www, cores, self.logs,
                            wrapper, **where)

    def start(self, name):
        """Starts a target (and its BENCH_SLOW hog); returns (target, hog) or None."""
        t = self.make_target(name)
        try:
            t.start()
        except procs.StartError as e:
            self.fail(name, f"did not start: {e}")
            return None
        if self.acct:
            # Every process of the server, and every child it forks later, is counted.
            self.acct.add_session(t.proc.pid)
            t.acct = self.acct
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

    def run_profile(self):
        """Where the CPU goes: make profile's buckets (bench/profile.py, perf cpu-clock on the
        server's CPU) for bin/epoll, bin/uring, the floor and the floor's io_uring loop
        (floor --uring) at one open-loop rate, about 30 s,
        in the run's profile/. Alone on the machine, as every measured window is; full runs
        only (BENCH_PROFILE=0: none); it needs root and perf."""
        cfg = self.cfg
        names = profile_names(cfg.servers)
        if cfg.mode != "full" or not names or os.environ.get("BENCH_PROFILE", "1") == "0":
            return
        if os.geteuid() != 0 or self.syscalls != "perf":
            self.notes.append("no CPU profile (bench/profile.py): it needs root and perf")
            return
        print(f"bench: where the CPU goes: {' '.join(names)} at {PROFILE_RATE:,} req/s over "
              f"{PROFILE_CONNS} connections (bench/profile.py)", flush=True)
        cmd = [sys.executable, os.path.join(REPO, "bench", "profile.py"),
               "--rate", str(PROFILE_RATE), "--conns", str(PROFILE_CONNS),
               "--secs", str(PROFILE_SECS), "--warmup", "1",
               "--out", os.path.join(self.dir, "profile")] + names
        with open(os.path.join(self.logs, "profile.log"), "a") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, BUILD=BUILD_DIR)).returncode
        if rc != 0:
            self.notes.append(f"the CPU profile failed (bench/profile.py exit {rc}: "
                              "logs/profile.log)")

    def fail(self, what, why):
        self.failures.append((what, why))
        print(f"bench: {what}: {why}", flush=True)

    def one(self, started, conns, file, label, secs=None):
        """One measurement, or None (recorded as a failure) if it could not be made."""
        t = started[0]
        try:
            # wrk on the first client host, with a thread per client core
            return measure.measure(t, conns, file, secs or self.cfg.secs, self.cfg.warm,
                                   self.cfg.client_cores, self.syscalls, self.logs,
                                   self.wrk_log, label, t.cores,
                                   (self.cfg.client_hosts or [()])[0])
        except (measure.MeasureError, OSError) as e:
            self.fail(f"{t.name} c={conns} {file}", str(e))
            return None

    # -- the estimate ---------------------------------------------------------------------

    def per_measurement_s(self, conns=0, secs=None):
        """The estimate of one measurement's wall time, warm-up and overheads included."""
        return (self.cfg.warm + (secs or self.cfg.secs) + OVERHEAD_S
                + OVERHEAD_PER_KCONN_S * conns / 1000)

    def per_open_point_s(self, conns):
        cfg = self.cfg
        return cfg.open_warm + cfg.open_secs + OPEN_OVERHEAD_S + OPEN_PER_KCONN_S * conns / 1000

    def ladders(self):
        """(kind, conns, close) of every open-loop ladder a server gets."""
        cfg = self.cfg
        out = [("open_many" if c >= 1000 else "open", c, False) for c in cfg.open_conns]
        if cfg.churn_conns:
            out.append(("churn", cfg.churn_conns, True))
        return out

    def open_natural_s(self):
        """What one server's ladders take when nothing cuts them short."""
        cfg = self.cfg
        pts = OPEN_POINTS_PER_LADDER if cfg.open_refine else \
            max(1, int(round(math.log(cfg.open_max / cfg.open_start, cfg.open_step))) + 1)
        return sum(pts * self.per_open_point_s(c) for _, c, _ in self.ladders())

    def plan(self):
        cfg = self.cfg
        targets = self.targets
        points = [(c, f) for c in cfg.conns for f in cfg.files if not cfg.skip(c, f)]
        main = len(targets) * len(points) * cfg.reps
        idle = sum(len(cfg.idle_steps(s)) for s in targets) * cfg.idle_reps
        closed = sum(self.per_measurement_s(c) for c, _ in points) * len(targets) * cfg.reps
        closed += sum(self.per_measurement_s(100, cfg.idle_secs) + IDLERS_PER_KCONN_S * m / 1000
                      for s in targets for m in cfg.idle_steps(s)) * cfg.idle_reps
        closed += SERVER_START_S * len(targets) * (cfg.reps + cfg.idle_reps + 1)
        # The ladders' own length varies with where each server saturates: half again as
        # much as the typical ladder before a budget cuts one short.
        natural = min(1.5 * self.open_natural_s(), OPEN_MAX_PER_SERVER_S) \
            if cfg.open_conns else 0
        per_server = natural
        if cfg.budget_min and natural:
            left = cfg.budget_min * 60 - closed
            per_server = max(min(natural, left / max(len(targets), 1)),
                             len(self.ladders()) * 2 * self.per_open_point_s(100))
            if per_server < self.open_natural_s():
                self.notes.append(
                    f"time budget ({cfg.budget_min:g} min, `BENCH_BUDGET`): each server's "
                    f"open-loop ladders got {per_server:.0f} s, less than a typical "
                    f"{self.open_natural_s():.0f} s: some ladders may stop before their "
                    "refinements")
        if cfg.ladders:
            est = closed + min(per_server, self.open_natural_s()) * len(targets)
        else:
            est = closed + self.efficiency_s()
            if cfg.budget_min:
                # The claims' repetitions and the knees stop at the budget (efficiency.py).
                est = min(est, max(cfg.budget_min * 60, closed + self.efficiency_s(False)))
        self.closed_s = closed
        return targets, points, main, idle, est, per_server

    def efficiency_s(self, budgeted=True):
        """The estimate of the efficiency phase: calibration, grid and (budgeted) the claims'
        repetitions and knees."""
        cfg = self.cfg
        if not cfg.open_conns:
            return 0
        loads = [c for c, _ in efficiency.workloads(cfg)]
        per_rep = sum(len(cfg.churn_fractions if close else cfg.fractions)
                      * self.per_open_point_s(c) for c, close in efficiency.workloads(cfg))
        # The grid measures up to RETRY_SHARE of its points twice (efficiency.grid_point).
        grid = (len(self.targets) + 1) * cfg.open_reps * (
            per_rep * (1 + efficiency.RETRY_SHARE) + SERVER_START_S)
        calibrate = sum(CALIBRATION_POINTS * self.per_open_point_s(c) for c in loads)
        if not budgeted:
            return calibrate + grid
        claims = (len(self.targets) + 1) * cfg.claim_reps * sum(
            self.per_open_point_s(c) + SERVER_START_S for c in loads)
        knees = KNEE_SHARE * len(self.targets) * len(loads) * cfg.knee_reps * \
            efficiency.KNEE_POINTS * self.per_open_point_s(max(loads))
        return calibrate + grid + claims + knees

    # -- closed loop: wrk -----------------------------------------------------------------

    def run_matrix(self, points):
        cfg = self.cfg
        rows = []
        # Repetitions outermost: each server's reps are spread over the run, so a burst of
        # background load hits one rep of everyone rather than every rep of one server.
        for rep in range(1, cfg.reps + 1):
            for name in self.targets:
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
        for rep in range(1, cfg.idle_reps + 1):
            for name in self.targets:
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
                # As loadgen's instances: one per client core of every client host.
                places = [(host, [core]) for host, core in procs.placements(
                    self.cfg.client_hosts, self.cfg.client_cores, self.cfg.client_instances)]
                idlers = procs.Idlers(IDLERS, t.port, m, self.cfg.client_cores,
                                      os.path.join(self.logs, "idlers.log"),
                                      self.cfg.server_addr, places)
                opened = idlers.start()
                if opened < m:
                    print(f"bench: {t.name}: only {opened} of {m} idle connections opened",
                          flush=True)
            else:
                opened = 0
            row = self.one(started, 100, "index.html", f"{t.name} idle={m} rep {rep}",
                           secs=self.cfg.idle_secs)
        except procs.StartError as e:
            self.fail(f"{t.name} idle={m}", str(e))
            row = None
        finally:
            kept = idlers.stop() if idlers else 0
        if row:
            row.update(idle=m, idle_open=opened, idle_kept=kept, rep=rep)
        return row

    # -- open loop: loadgen -----------------------------------------------------------------

    def run_efficiency(self, t0):
        """The client's ceiling against bench/floor, then every target at fractions of it,
        repetitions interleaved, then the knees (efficiency.py); returns openloop.csv's rows."""
        cfg = self.cfg
        if not cfg.open_conns:
            return []
        for tool in (LOADGEN, FLOOR):
            if not os.access(tool, os.X_OK):
                self.fail("open loop", f"no {tool} (make {os.path.relpath(tool, REPO)})")
                return []
        self.make_cap()
        self.loadgen_log = open(os.path.join(self.logs, "loadgen.log"), "a")
        eff = efficiency.Efficiency(self, os.path.join(self.dir, "openloop.csv"))
        if not eff.calibrate():
            return eff.rows
        eff.grid(self.targets, cfg.open_reps)
        deadline = t0 + cfg.budget_min * 60 if cfg.budget_min else math.inf
        if cfg.claim_reps and efficiency.CLAIM_FRACTION in cfg.fractions:
            # More repetitions where the claims are read: a verdict needs 5 (efficiency.py).
            eff.grid(self.targets, cfg.claim_reps, [efficiency.CLAIM_FRACTION],
                     first_rep=cfg.open_reps + 1, deadline=deadline)
        if cfg.knee_reps:
            eff.knees(self.targets, cfg.knee_reps, deadline)
        return eff.rows

    def make_cap(self):
        cfg = self.cfg
        if cfg.quota > 0 and self.cap is None and cfg.server_host:
            self.notes.append("no CPU cap: the server runs on another host "
                              "(BENCH_SERVER_HOST), where the harness makes no quota")
        elif cfg.quota > 0 and self.cap is None:
            try:
                self.cap = procs.CpuCap(f"c10k-bench-{os.getpid()}", cfg.quota)
            except OSError as e:
                # Not a failure: every point still says whether the client kept up.
                self.notes.append(f"no CPU cap ({e}): the open loop ran uncapped, so fast "
                                  "servers may outrun the client (their points say so)")
                print(f"bench: {self.notes[-1]}", flush=True)

    def run_open(self, per_server_s):
        """Every server's open-loop ladders (BENCH_LADDERS=1); returns openloop.csv's rows."""
        cfg = self.cfg
        rows = []
        if not cfg.open_conns:
            return rows
        if not os.access(LOADGEN, os.X_OK):
            self.fail("open loop", f"no {LOADGEN} (make {os.path.relpath(LOADGEN, REPO)})")
            return rows
        self.make_cap()
        self.loadgen_log = open(os.path.join(self.logs, "loadgen.log"), "a")
        for name in self.targets:
            started = self.start(name)
            if not started:
                continue
            if self.cap:
                self.cap.add_session(started[0].proc.pid)
            # Each ladder gets its share of the server's budget, plus what the earlier
            # ladders left unused.
            weights = [LADDER_WEIGHT[kind] for kind, _, _ in self.ladders()]
            deadline = time.monotonic()
            try:
                for (kind, conns, close), w in zip(self.ladders(), weights):
                    deadline += per_server_s * w / sum(weights)
                    started = self.ladder(started, name, conns, close, deadline, rows)
                    if not started:
                        break
                if started:
                    self.repeat_fixed(started, name, rows)
            finally:
                if started:
                    self.stop(started)
        return rows

    def ladder(self, started, name, conns, close, deadline, rows):
        """One server's ladder at one connection count; returns the (maybe restarted) target."""
        cfg = self.cfg
        start = cfg.churn_start if close else cfg.open_start
        fixed = cfg.churn_fixed_rps if close else cfg.fixed_rps
        lad = openloop.Ladder(start, cfg.open_step, cfg.open_max, cfg.open_refine,
                              cfg.open_extra)
        what = f"{name} {'churn' if close else 'open'} c={conns}"
        rate = lad.first()
        while rate is not None:
            if time.monotonic() + self.per_open_point_s(conns) > deadline and lad.tried:
                n = len(lad.tried)
                self.notes.append(f"{what}: ladder stopped at its time budget after {n} "
                                  f"point{'s' if n != 1 else ''}")
                break
            if not started[0].alive():
                self.fail(what, "server exited; restarted")
                self.stop(started)
                started = self.start(name)
                if not started:
                    return None
                if self.cap:
                    self.cap.add_session(started[0].proc.pid)
            row = self.open_point(started, conns, rate, close, f"{what} rate={rate:g}")
            if row is None:
                break
            row["fixed"] = int(rate == fixed)
            rows.append(row)
            c10kutil.append_csv(os.path.join(self.dir, "openloop.csv"),
                                openloop.OPEN_HEADER, row)
            print(report.open_progress_line(row), flush=True)
            rate = lad.after(rate, row)  # the ladder's policy: openloop.Ladder
        return started

    def repeat_fixed(self, started, name, rows):
        """Measures the fixed-load point at the most connections once more, after the
        ladders: two figures a few seconds apart are the run's own estimate of its noise."""
        cfg = self.cfg
        many = max(cfg.open_conns)
        first = [r for r in rows if r["server"] == name and r["conns"] == many
                 and not r["close"] and r.get("fixed") == 1 and r["status"] in ("ok", "over")]
        if not first or not started[0].alive():
            return
        row = self.open_point(started, many, cfg.fixed_rps, False,
                              f"{name} open c={many} rate={cfg.fixed_rps:g} (repeat)")
        if row:
            row["fixed"] = 2
            rows.append(row)
            c10kutil.append_csv(os.path.join(self.dir, "openloop.csv"),
                                openloop.OPEN_HEADER, row)
            print(report.open_progress_line(row) + " (repeat)", flush=True)

    def open_point(self, started, conns, rate, close, label):
        t = started[0]
        try:
            return openloop.run_point(LOADGEN, t, conns, rate, close, self.cfg,
                                      self.loadgen_log, label, self.cap)
        except (measure.MeasureError, OSError) as e:
            self.fail(label, str(e))
            return None

    # -- the whole run --------------------------------------------------------------------

    def run(self):
        cfg = self.cfg
        # The harness's own work (sampling /proc, spawning) stays off the server's cores.
        # (BENCH_CLIENT_CPUS may name CPUs of other machines only.)
        os.sched_setaffinity(0, [c for c in cfg.client_cores if c in cfg.cpus] or cfg.cpus)
        sizes = www.generate(self.www)
        if cfg.server_host:
            # The same files at the same path on the server's host.
            procs.run_on(cfg.server_host, ["python3", "-c", "import sys; sys.path.insert(0, "
                                           f"{os.path.join(REPO, 'bench')!r}); import www; "
                                           f"www.generate({self.www!r})"])
            self.syscalls = "remote"  # perf is not attached through a prefix
        elif cfg.perf:
            check = os.path.join(self.logs, "perf-check.out")
            self.syscalls = "perf" if measure.perf_works(check) else "none"
        raised = self.sysctls.raise_all() if cfg.sysctl and os.geteuid() == 0 else {}
        cfg.cpu_read = "per process, /proc/PID/stat and /proc/PID/task/*/schedstat here"
        if cfg.server_host:
            self.remote = hostproc.ServerHost(cfg.server_host, f"c10k-bench-{os.getpid()}-acct")
            cfg.cpu_read = self.remote.describe()
        elif os.geteuid() == 0:
            try:
                self.acct = procs.CpuAccount(f"c10k-bench-{os.getpid()}-acct")
                cfg.cpu_read = (f"here, the cgroup {self.acct.kind} counter {self.acct.dir} "
                                "(every process the server forks)")
            except OSError as e:
                self.notes.append(f"the server's CPU is read per process ({e}): a server "
                                  "that forks per connection reads low")
        env_width = report.write_env(os.path.join(self.dir, "env.txt"), cfg, self.rid,
                                     self.syscalls, REPO, raised, self.targets)
        with open(os.path.join(self.logs, "config.json"), "w") as f:
            json.dump(dict(vars(cfg), syscalls=self.syscalls), f, indent=1)  # for `replot`
        t0 = time.monotonic()
        try:
            if cfg.mode in ("ci", "baseline"):
                result = gate.run(self, cfg)
                if cfg.mode == "ci" and cfg.idle_reps:  # reported, never judged
                    self.total += sum(len(cfg.idle_steps(s)) for s in cfg.servers + ["nginx"])
                    gate.report_idle(self.run_idle_sweep(), cfg)
            else:
                result = self.run_all(sizes, t0)
        finally:
            self.sysctls.restore()
            if self.cap:
                self.cap.remove()
            if self.acct:
                self.acct.remove()
            if self.remote:
                self.remote.remove()
        report.append_env_end(os.path.join(self.dir, "env.txt"), env_width)
        print(f"bench: done in {report.fmt_duration(time.monotonic() - t0)}; results in "
              f"{os.path.relpath(self.dir, os.getcwd())}/", flush=True)
        return result

    def run_all(self, sizes, t0):
        cfg = self.cfg
        targets, points, main, idle, est, per_server = self.plan()
        self.total = main + idle
        trimmed = [f"{f} at c={c}" for c in cfg.conns for f in cfg.files if cfg.skip(c, f)]
        print(f"bench: {self.rid}: {len(targets)} servers ({' '.join(targets)})", flush=True)
        print(f"bench: closed loop (wrk): conns {','.join(map(str, cfg.conns))} x "
              f"{','.join(cfg.files)} x {cfg.reps} reps x {cfg.secs:g} s = {main} measurements"
              + (f" (skipping {', '.join(trimmed)})" if trimmed else "")
              + (f" + {idle} idle-sweep points" if idle else ""), flush=True)
        if cfg.open_conns and not cfg.ladders:
            cap = f"CPU capped at {cfg.quota:.0%} of a core" if cfg.quota > 0 else "uncapped"
            print(f"bench: open loop (loadgen): conns {','.join(map(str, cfg.open_conns))}"
                  + (f" + churn at {cfg.churn_conns}" if cfg.churn_conns else "") + ", "
                  f"the client's ceiling against bench/floor, then "
                  f"{', '.join(f'{x:.0%}' for x in cfg.fractions)} of it x {cfg.open_reps} "
                  f"interleaved reps, {cfg.open_secs:g} s windows, {cap}"
                  + (f"; knees x {cfg.knee_reps} reps" if cfg.knee_reps else ""), flush=True)
        elif cfg.open_conns:
            cap = f"CPU capped at {cfg.quota:.0%} of a core" if cfg.quota > 0 else "uncapped"
            print(f"bench: open loop (loadgen): conns {','.join(map(str, cfg.open_conns))}"
                  + (f" + churn at {cfg.churn_conns}" if cfg.churn_conns else "")
                  + f", rates from {cfg.open_start:g} x{cfg.open_step:g} to past saturation, "
                  f"{cfg.open_secs:g} s windows, {cap}; up to {per_server:.0f} s per server",
                  flush=True)
        print(f"bench: server on CPU {cfg.server_cores} ({report.workers_note(cfg)}), "
              f"clients on CPU {cfg.client_cores}, {cfg.client_instances} loadgen instance(s)"
              + (f" on {len(cfg.client_hosts)} client host(s)" if cfg.client_hosts else "")
              + "; "
              f"syscalls: {self.syscalls}; estimated {report.fmt_duration(est)}", flush=True)
        # The open loop first: it is the headline, and it is read against the client's
        # ceiling, which a machine still reaping thousands of bin/fork children from the
        # idle sweep would lower. Its budget leaves time for the closed loop after it.
        if cfg.ladders:
            open_rows = self.run_open(per_server)
        else:
            open_rows = self.run_efficiency(t0 - self.closed_s)
        self.run_profile()
        rows = self.run_matrix(points)
        idle_rows = self.run_idle_sweep()
        summarise(self.dir, cfg, self.rid, rows, idle_rows, open_rows, sizes, self.syscalls,
                  self.failures, self.notes, time.monotonic() - t0,
                  self.cap.describe() if self.cap else None)
        return 1 if self.failures else 0


def summarise(run_dir, cfg, rid, rows, idle_rows, open_rows, sizes, syscalls, failures, notes,
              elapsed, cap_desc):
    """summary.md and the plots of a run: the efficiency curves (rows with a phase) and the
    older ladders (rows without) each where present."""
    eff_rows = [r for r in open_rows if r.get("phase")]
    ladder_rows = [r for r in open_rows if not r.get("phase")]
    targets = cfg.servers + cfg.peers
    report.write_summary(os.path.join(run_dir, "summary.md"), cfg, rid, rows, idle_rows,
                         ladder_rows, sizes, syscalls, failures, notes, elapsed, cap_desc,
                         efficiency.section(cfg, eff_rows, targets)
                         + scaling.section(cfg, eff_rows) + profile_section(run_dir))
    plots.make_all(run_dir, cfg, rows, idle_rows, ladder_rows, eff_rows)
    scaling.plot(run_dir, cfg, eff_rows)


def profile_section(run_dir):
    """summary.md's CPU profile (Bench.run_profile), where the run has one."""
    path = os.path.join(run_dir, "profile", "profile.txt")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        table = f.read().rstrip("\n")
    return ["## Where the CPU goes", "",
            f"bin/epoll, bin/uring and the floor at {PROFILE_RATE:,} requests/s over "
            f"{PROFILE_CONNS} keep-alive connections, open loop, one {PROFILE_SECS} s window "
            "each, perf cpu-clock samples of the server's CPU sorted into buckets "
            "(bench/profile.py, docs/profile.md; profile/profile.png):", "",
            "```", table, "```", ""]


def replot(run_dir):
    """Redraws summary.md and the plots of a finished (or interrupted) run from its CSVs."""
    with open(os.path.join(run_dir, "logs", "config.json")) as f:
        saved = json.load(f)
    cfg = Config.__new__(Config)
    # Runs made before the open loop and the peers existed lack these settings.
    cfg.__dict__.update(dict(OPEN_DEFAULTS, peers=["nginx"], nginx_tuned=False, open_conns=[],
                             idle_secs=saved.get("secs", 1), budget_min=0, sysctl=False,
                             workers=[]))
    cfg.__dict__.update(saved)

    def load(name):
        path = os.path.join(run_dir, name)
        return c10kutil.read_csv(path) if os.path.exists(path) else []

    sizes = {name: len(make()) for name, make in www.FILES.items()}
    summarise(run_dir, cfg, os.path.basename(os.path.normpath(run_dir)), load("results.csv"),
              load("idle.csv"), load("openloop.csv"), sizes, saved["syscalls"], [], [], None,
              saved.get("cap_desc"))
    return 0


def check_hosts(cfg):
    """Before a run on other hosts: every program it will start on each, there at the path
    it will be given (this tree's, so the tree must sit at the same path there), or the run
    stops at once with the one command to run there."""
    if not cfg.server_host and not cfg.client_hosts:
        return
    server, client = [], []
    if cfg.server_host:
        server = ["python3", "sh", "taskset"]  # readiness probes, hostproc, pinning
        for name in cfg.base_servers:
            model, _, lib = name.partition("@")
            server.append(os.path.join(REPO, "bin", model))
            if lib:
                server.append(os.path.join(INJECT_DIR, lib + ".so"))
        server += [FLOOR] if cfg.open_conns else []
        server += [cfg.nginx if p == "nginx" else procs.PEERS[p][1] for p in cfg.base_peers]
    if cfg.client_hosts:
        client = ["sh", "taskset"] + ([LOADGEN] if cfg.open_conns else []) \
            + (["wrk"] if cfg.conns else []) + ([IDLERS] if cfg.idle and cfg.idle_reps else [])
    hosts = ([("server host", cfg.server_host, server)] if cfg.server_host else []) + \
        [(f"client host {i + 1}", h, client) for i, h in enumerate(cfg.client_hosts)]
    script = 'for f in "$@"; do [ -e "$f" ] || command -v "$f" >/dev/null 2>&1 || echo "$f"; done'
    for what, prefix, need in hosts:
        rc, out = procs.run_on(prefix, ["sh", "-c", script, "sh"] + need)
        where = f"{what} (`{shlex.join(prefix)}`)"
        if rc != 0:
            sys.exit(f"bench: {where}: cannot run a command through it (exit {rc})")
        if out.split():
            sys.exit(f"bench: {where} lacks {' '.join(out.split())}; the tree must be at "
                     f"{REPO} there, built. Run there first: make -C {REPO} deps all "
                     "bench-tools")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    if mode == "replot" and len(sys.argv) == 3:
        return replot(sys.argv[2])
    if mode not in MODES:
        sys.exit(f"usage: {sys.argv[0]} [{'|'.join(MODES)}] | replot RESULTS_DIR")
    procs.install_cleanup()
    cfg = Config(mode)
    check_hosts(cfg)
    bench = Bench(cfg)
    try:
        return bench.run()
    except KeyboardInterrupt:
        print("\nbench: interrupted; every server, nginx and idlers process stopped", flush=True)
        return 130
    finally:
        procs.reap_all()
        bench.wrk_log.close()
        if bench.loadgen_log:
            bench.loadgen_log.close()


if __name__ == "__main__":
    sys.exit(main())
