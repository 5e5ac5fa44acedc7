"""openloop.py - the open-loop sweep: bench/loadgen offers a fixed request rate, the server's
cost is read from the kernel over exactly loadgen's measured window.

    point      one loadgen run: N connections opened first (outside the window), then R
               requests/s for warm-up + window seconds, latency from each request's scheduled
               time (docs/loadgen.md). K instances (one per client core, BENCH_CLIENT_INSTANCES)
               each take N/K connections and R/K requests/s; each waits after its set-up
               (--start-on-stdin) until the harness starts them all with one line, and their
               histograms are merged exactly (loadgen --merge). The server's CPU (its
               counting cgroup, or /proc/PID/stat of every thread; on its own host through
               its prefix, hostproc.py), the softirq and steal time of its cores
               (/proc/stat) and CPU pressure are read at the window's edges: the window is
               [start line + warm-up, + window].
    ladder     offered rates start, start x step, ... until a point misses the SLO, then
               `refine` geometric bisections between the last pass and the first miss, and
               one more point past saturation if none of those missed: the hockey stick and
               its knee at a bounded cost. A ladder also stops at a refused, failed or
               client-bound point, and when the server's time budget is spent.
    capacity   the highest offered rate whose point met the SLO: achieved >= 99% of offered,
               p99 <= 10 ms, no errors, no non-2xx, and the client kept up.

A point where loadgen fell behind its schedule (client_bound) measured the client: it is kept
in openloop.csv with status client_bound and never counted as the server's figure.
"""

import contextlib
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time

from c10kutil import proc_fds, process_tree
from measure import MeasureError, Snapshot
from procs import PipeReader, placements, run_on, spawn, stop

OPEN_HEADER = ["server", "model", "conns", "close", "offered_rps", "achieved_rps", "p50_ms",
               "p90_ms", "p99_ms", "p999_ms", "max_ms", "errors", "non2xx", "cpu_us_per_req",
               "softirq_us_per_req", "server_util", "cpu_quota", "capped", "client_cpu",
               "client_bound", "behind_ms", "late_sends", "cpu_pressure", "steal", "window_s",
               "requests", "setup_failed", "fixed", "status", "cpu_user_us_per_req",
               "cpu_sys_us_per_req", "late_p999_ms", "steady", "primed", "nr_throttled",
               "throttled_ms", "edge_late_ms", "phase", "rep", "fraction", "ceiling",
               "instances", "workers"]

SLO_P99_MS = 10.0
SLO_ACHIEVED = 0.99
# Connections the server failed to hold at set-up (not accepted in time, or closed at
# once), above which a point is "refused": the server cannot hold N connections (select's
# FD_SETSIZE, a peer's connection limit). Fewer failures still miss the SLO.
REFUSED_SHARE = 0.05
# SCHED_FIFO priority of loadgen (BENCH_CLIENT_RT): above every ordinary task on its core;
# it sleeps between sends, and the kernel's RT throttling keeps 5% for the others anyway.
CLIENT_RT_PRIORITY = 50
# loadgen at this share of its core or more was saturated: no higher rate can be measured.
# Below it, a client-bound point means something else held the client core up.
CLIENT_SATURATED = 0.8
# Answers for less than this share of the offered rate: the server was overloaded.
OVERLOADED = 0.95
# Errors and fewer answers than this share of the offered rate: the server failed the
# load (whatever the client's timing), rather than merely missing the SLO.
FAILED_SHARE = 0.1
# The harness reads the server's CPU at the window's edges; an edge read later than this
# share of the window (the harness was not run in time) leaves the point without a CPU
# figure rather than with one from another window. As root the harness holds SCHED_FIFO
# below loadgen's priority while it waits for the edges, so that is rare.
EDGE_SLACK = 0.05
HARNESS_RT_PRIORITY = 40
OPEN_LINE = re.compile(r"^loadgen: (\d+) connections open in ([\d.]+) s")
READY_LINE = "loadgen: ready; waiting for the start line"


def judge(row, conns, close):
    """The point's status: ok (met the SLO), over (missed it), client_bound, refused (did
    not hold the connections), failed (held them, answered almost nothing but errors)."""
    if not close and (row.get("setup_failed") or 0) > REFUSED_SHARE * conns:
        return "refused"
    if row["errors"] and row["achieved_rps"] < FAILED_SHARE * row["offered_rps"]:
        return "failed"
    if row["client_bound"]:
        return "client_bound"
    if (row["achieved_rps"] >= SLO_ACHIEVED * row["offered_rps"]
            and row["p99_ms"] is not None and row["p99_ms"] <= SLO_P99_MS
            and not row["errors"] and not row["non2xx"] and not row.get("setup_failed")):
        return "ok"
    return "over"


class _Lines(threading.Thread):
    """Reads a child's stderr line by line, into a log, noting when loadgen's set-up ended."""

    def __init__(self, pipe, log):
        super().__init__(daemon=True)
        self.pipe, self.log = pipe, log
        self.opened = threading.Event()
        self.ready = threading.Event()  # --start-on-stdin: waiting for the start line
        self.open_at = self.ready_at = None
        self.open_match = None
        self.lines = []
        self.start()

    def run(self):
        for raw in iter(self.pipe.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            m = OPEN_LINE.match(line)
            if m and not self.opened.is_set():
                self.open_at = time.monotonic()
                self.open_match = m
                self.opened.set()
            if line.startswith(READY_LINE) and not self.ready.is_set():
                self.ready_at = time.monotonic()
                self.ready.set()
            self.lines.append(line)
        # loadgen exited: nobody waits for a line that will not come
        self.opened.set()
        self.ready.set()


def sleep_until(t):
    dt = t - time.monotonic()
    if dt > 0:
        time.sleep(dt)


def settle(target, timeout=10.0):
    """Waits until the server has closed the previous point's connections (its fd count
    is back to what it was at its first point): a thread-per-connection server still
    tearing down 10,000 threads would make the next point's connects time out."""
    pid = target.pid()
    remote = getattr(target, "remote", None)
    fds = remote.fds if remote else proc_fds  # the server's host, or here
    if not hasattr(target, "idle_fds"):
        target.idle_fds = fds(pid) or 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = fds(pid)
        if n is None or n <= target.idle_fds + 16:
            return
        time.sleep(0.05)


class Instance:
    """One loadgen of a point: its share of the connections and of the rate, on one client
    core of one client host (a command prefix; none: here), held after its set-up until
    the harness writes the start line, writing its histogram for `loadgen --merge`."""

    def __init__(self, loadgen, target, conns, rate, close, cfg, host, core, hist):
        self.host, self.core, self.hist, self.conns = list(host), core, hist, conns
        self.cmd = [loadgen, "--host", getattr(cfg, "server_addr", "127.0.0.1"),
                    "--port", str(target.port), "--conns", str(conns),
                    "--rate", f"{rate:.9g}", "--duration", f"{cfg.open_secs:g}",
                    "--warmup", f"{cfg.open_warm:g}", "--path", "/index.html",
                    "--timeout", f"{cfg.open_timeout:g}", "--start-on-stdin",
                    "--hist-out", hist]
        if close:
            self.cmd.append("--close")
        if getattr(cfg, "client_rt", False):
            self.cmd = ["chrt", "-f", str(CLIENT_RT_PRIORITY)] + self.cmd

    def start(self, log):
        self.p = spawn(self.cmd, cores=[self.core], host=self.host, stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = PipeReader(self.p.stdout)
        self.err = _Lines(self.p.stderr, log)

    def go(self):
        """Writes the start line; False if the instance is gone."""
        try:
            self.p.stdin.write(b"go\n")
            self.p.stdin.close()
            return True
        except OSError:
            return False

    def histogram(self):
        """The --hist-out file's text (read where the instance ran), removed there; or None."""
        if self.host:
            q = shlex.quote(self.hist)
            rc, text = run_on(self.host, ["sh", "-c", f"cat {q} && rm -f {q}"])
            return text if rc == 0 else None
        try:
            with open(self.hist) as f:
                return f.read()
        except OSError:
            return None
        finally:
            with contextlib.suppress(OSError):
                os.remove(self.hist)


def instances(loadgen, target, conns, rate, close, cfg):
    """The point's loadgen instances (BENCH_CLIENT_INSTANCES): instance i on client host
    i mod H, on that host's client core i div H; the connections split as evenly as whole
    numbers go, the rate evenly, so that together they offer `rate` over `conns`."""
    k = max(1, min(getattr(cfg, "client_instances", 1) or 1, conns))
    return [Instance(loadgen, target, conns // k + (i < conns % k), rate / k, close, cfg,
                     host, core, f"/tmp/c10k-loadgen-{os.getpid()}-{i}.hist")
            for i, (host, core) in enumerate(placements(getattr(cfg, "client_hosts", None),
                                                        cfg.client_cores, k))]


def merged(loadgen, texts, log):
    """`loadgen --merge` of the instances' histograms: the JSON of their union, or None."""
    tmp = tempfile.mkdtemp(prefix="c10k-merge-")
    try:
        paths = []
        for i, text in enumerate(texts):
            paths.append(os.path.join(tmp, f"{i}.hist"))
            with open(paths[-1], "w") as f:
                f.write(text)
        p = subprocess.run([loadgen, "--merge"] + paths, capture_output=True, text=True,
                           timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.write(f"==== merged {len(texts)} instances\n{p.stdout}{p.stderr}\n")
    return parse_json(p.stdout)


def parse_json(text):
    """loadgen's JSON: the last line of its stdout, or None."""
    last = text.strip().splitlines()[-1] if text.strip() else ""
    try:
        return json.loads(last)
    except ValueError:
        return None


def run_point(loadgen, target, conns, rate, close, cfg, log, label, cap):
    """One open-loop point at `rate` against target, offered by every loadgen instance at
    once (instances()), their results merged; returns an openloop.csv row (dict)."""
    pid = target.pid()
    settle(target)
    group = instances(loadgen, target, conns, rate, close, cfg)
    for inst in group:
        inst.start(log)
    edges, throttle, planned = [], [], ()
    try:
        # Every instance has opened and primed its connections (churn has no set-up) and
        # waits for the start line: all schedules start together, at t0.
        deadline = time.monotonic() + cfg.open_connect_timeout
        for inst in group:
            inst.err.ready.wait(max(0.0, deadline - time.monotonic()))
        ready = all(inst.err.ready_at is not None for inst in group)
        t0 = time.monotonic() if ready and all([inst.go() for inst in group]) else None
        if t0 is not None and all(inst.p.poll() is None for inst in group):
            rt = getattr(cfg, "client_rt", False) and harness_rt(True)
            planned = (t0 + cfg.open_warm, t0 + cfg.open_warm + cfg.open_secs)
            # The server's processes are found now, in the warm-up, not at the edges: a
            # server that forks per connection has forked them all by now (every
            # connection is open and primed), and the ones that exit are in cutime.
            acct = getattr(target, "acct", None)  # the server's cgroup: no tree needed
            remote = getattr(target, "remote", None)  # the server's host (hostproc)
            tree = remote.edge_tree(pid) if remote else \
                None if acct else (process_tree(pid) or None)
            sleep_until(t0 + cfg.open_warm)
            edges.append(Snapshot(pid, tree, acct, remote))
            throttle = [cap.stat()] if cap else []
            sleep_until(t0 + cfg.open_warm + cfg.open_secs)
            edges.append(Snapshot(pid, tree, acct, remote))
            throttle += [cap.stat()] if cap else []
            if rt:
                harness_rt(False)
        # Not started (one could not connect): the others wait for a line that will not
        # come, and are stopped below.
        end = time.monotonic() + cfg.open_warm + cfg.open_secs + cfg.open_timeout + 10
        for inst in group if t0 is not None else ():
            inst.p.wait(timeout=max(0.0, end - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    except OSError:
        pass  # the server exited: /proc/PID is gone; reported below
    finally:
        for inst in group:
            stop(inst.p)
            if not inst.p.stdin.closed:
                inst.p.stdin.close()
    results = []
    for inst in group:
        text = inst.out.text()
        inst.err.join(timeout=5)
        log.write(f"==== {label}: {' '.join(inst.host + inst.cmd)}\n"
                  + "\n".join(inst.err.lines) + "\n" + text + "\n")
        results.append(parse_json(text))
    log.flush()
    texts = [inst.histogram() for inst in group]
    if not target.alive():
        raise MeasureError(f"{target.name} died during the run")
    j = results[0] if len(group) == 1 else \
        merged(loadgen, texts, log) if None not in results + texts else None
    if j is None:
        if not close and any(inst.err.open_match is None and
                             any("no connection" in l for l in inst.err.lines)
                             for inst in group):
            return refused_row(target, conns, close, rate, cap)
        bad = next((inst for inst, r in zip(group, results) if r is None), group[0])
        tail = (bad.err.lines[-1] if bad.err.lines else "no output")
        raise MeasureError(f"loadgen gave no result (exit {bad.p.returncode}): {tail}")

    statuses = j.get("statuses", {})
    requests = j.get("requests", 0)
    row = {
        "server": target.name, "model": target.model, "conns": conns, "close": int(close),
        "offered_rps": j["offered_rps"], "achieved_rps": j["achieved_rps"],
        "p50_ms": j.get("p50_ms"), "p90_ms": j.get("p90_ms"), "p99_ms": j.get("p99_ms"),
        "p999_ms": j.get("p999_ms"), "max_ms": j.get("max_ms"),
        "errors": j.get("errors", 0),
        "non2xx": sum(v for k, v in statuses.items() if not k.startswith("2")),
        "client_cpu": j.get("client_cpu"), "client_bound": int(bool(j.get("client_bound"))),
        "behind_ms": j.get("behind_ms"), "late_sends": j.get("late_sends"),
        "requests": requests,
        "setup_failed": j.get("setup_connect_failed", 0) + j.get("setup_closed", 0),
        "cpu_quota": cap.fraction if cap else None, "capped": int(cap is not None),
        "late_p999_ms": j.get("late_p999_ms"), "primed": j.get("primed"),
        "steady": int(j["steady"]["ok"]) if "steady" in j else None,
        "instances": j.get("instances", 1), "workers": getattr(target, "workers", None),
        "parts": results,  # each instance's own JSON (not a CSV column; for the tests)
    }
    if len(throttle) == 2 and None not in throttle[0] + throttle[1]:
        # How often, and how long, the quota held the server back inside the window.
        row["nr_throttled"] = throttle[1][0] - throttle[0][0]
        row["throttled_ms"] = (throttle[1][1] - throttle[0][1]) / 1e6
    late = max((e.t - want for e, want in zip(edges, planned)), default=0) \
        if len(edges) == 2 else 0
    row["edge_late_ms"] = late * 1e3
    if len(edges) == 2 and late <= EDGE_SLACK * cfg.open_secs:
        # The server's CPU in the window served the answers that arrived in it (under
        # overload fewer than the requests due in it): per request is per such answer.
        answers = j.get("window_answers", requests)
        row.update(edges[0].figures(edges[1], getattr(target, "cores", cfg.server_cores),
                                    answers))
    row["status"] = judge(row, conns, close)
    return row


def harness_rt(on):
    """Puts the calling thread under SCHED_FIFO (below loadgen) or back; False if it may not."""
    try:
        if on:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(HARNESS_RT_PRIORITY))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return True
    except (OSError, AttributeError):
        return False


def refused_row(target, conns, close, rate, cap):
    return {"server": target.name, "model": target.model, "conns": conns, "close": int(close),
            "offered_rps": rate, "achieved_rps": 0.0, "errors": conns, "requests": 0,
            "client_bound": 0, "cpu_quota": cap.fraction if cap else None,
            "capped": int(cap is not None), "status": "refused"}


class Ladder:
    """The offered rates of one ladder: climb by `step` from `start` until a point misses
    the SLO (or `top` is passed); if even the first misses, step down (twice at most) for a
    light-load figure; then `refine` geometric bisections between the highest pass and the
    lowest miss (rates rounded to two significant figures); then, if `extra` and fewer than
    two points missed, one more point a step past the first miss (the stick).

    after() is the whole policy over what a measured point says (its status, the client's
    CPU): bench.py measures the rate it returns, and stops at None."""

    def __init__(self, start, step, top, refine, extra):
        self.start, self.step, self.top, self.refine = start, step, top, refine
        self.extra_left = extra
        self.tried = []
        self.unknown = set()  # rates measured without a figure (client-bound)
        self.passed = self.missed = None
        self.misses = self.refines = 0
        self.retried, self.confirmed = set(), set()
        self.unsure = 0  # client-bound points in a row that said nothing of the server

    def first(self):
        return self.start

    def skip(self, rate):
        """A point that measured nothing (the client fell behind while far from busy: other
        work on its core): climbing goes on past it; any other phase ends."""
        self.tried.append(rate)
        self.unknown.add(rate)
        if self.missed is None:
            nxt = rate * self.step
            return nxt if nxt <= self.top else None
        return None

    def next(self, rate, ok):
        """Records the result at rate; returns the next rate to try, or None."""
        refining = self.passed is not None and self.missed is not None
        self.tried.append(rate)
        if ok:
            self.passed = max(self.passed or 0, rate)
        else:
            self.missed = min(self.missed or float("inf"), rate)
            self.misses += 1
        if refining:
            self.refines += 1
        if self.missed is None:
            nxt = rate * self.step
            return nxt if nxt <= self.top else None
        if self.passed is None:
            known = [r for r in self.tried if r not in self.unknown]
            nxt = min(known) / self.step
            while nxt in self.tried:  # measured before without a figure: one step lower
                nxt /= self.step
            return nxt if len(known) < 3 and nxt >= 100 else None
        if self.refines < self.refine:
            nxt = float(f"{math.sqrt(self.passed * self.missed):.2g}")
            if self.passed < nxt < self.missed and nxt not in self.tried:
                return nxt
        if self.extra_left and self.misses < 2:
            self.extra_left = False
            nxt = self.missed * self.step
            if nxt <= self.top and nxt not in self.tried:
                return nxt
        return None


    def after(self, rate, row):
        """The rate to measure after a point at rate (row: its openloop.csv row), or None
        when the ladder is done."""
        status = row["status"]
        if status == "refused":
            return None  # the server cannot hold the connections; no rate changes that
        if status == "client_bound" and overloaded(row):
            # The server fell well behind too: past its knee, whatever the client's
            # timing. Go on as after a miss (it never counts as a pass).
            self.unsure = 0
            return self.next(rate, False)
        if status == "client_bound":
            if (row.get("client_cpu") or 0) >= CLIENT_SATURATED or self.unsure >= 3:
                return None  # the client's own limit: nothing above it can be measured
            # The client fell behind with CPU to spare: someone else's work on its core.
            # Measure the rate once more, then go on without a figure for it.
            self.unsure += 1
            if rate not in self.retried:
                self.retried.add(rate)
                return rate
            return self.skip(rate)
        self.unsure = 0
        if status != "ok" and self.missed is None and rate not in self.confirmed:
            # A ladder's first miss decides where it bisects, and one burst of someone
            # else's work can make it: measure it once more, and go by the second.
            self.confirmed.add(rate)
            return rate
        return self.next(rate, status == "ok")


def overloaded(row):
    """A point whose answers fell well short of the offered rate: the server was past its
    knee there, whether or not the client also fell behind (a late client still sends)."""
    return row["achieved_rps"] < OVERLOADED * row["offered_rps"]


def capacity(rows):
    """(highest offered rate that met the SLO or None, True if a client-bound point above
    it, where the server kept up, means the figure is only a lower bound)."""
    ok = [r["offered_rps"] for r in rows if r["status"] == "ok"]
    best = max(ok) if ok else None
    bound = any(r["status"] == "client_bound" and not overloaded(r)
                and (best is None or r["offered_rps"] > best) for r in rows)
    return best, bound


def bracket(rows):
    """(capacity, lowest rate above it that missed the SLO): the true knee lies between,
    so their ratio is the ladder's resolution at this server, or None."""
    best, _ = capacity(rows)
    above = [r["offered_rps"] for r in rows if (r["status"] == "over" or r["status"] ==
             "client_bound" and overloaded(r)) and (best is None or r["offered_rps"] > best)]
    return best, (min(above) if above else None)


def fixed_cpu(rows):
    """(mean CPU µs per request at the fixed load over its measurements, their relative
    spread |a - b| / mean or None): the point is measured twice, in the ladder and once
    more after it, so each run carries its own estimate of its noise."""
    vals = [r["cpu_us_per_req"] for r in rows if r.get("fixed") and
            r["status"] in ("ok", "over") and r.get("cpu_us_per_req")]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    spread = (max(vals) - min(vals)) / mean if len(vals) > 1 else None
    return mean, spread
