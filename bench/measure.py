"""measure.py - one closed-loop measurement: a wrk run against a server, the server's cost
read from the kernel. (The open-loop sweep with bench/loadgen is openloop.py.)

    warm-up    a short wrk run at the same connection count, thrown away
    before     right before wrk starts: /proc/PID/stat (utime+stime, every thread, dead
               ones included), /proc/stat (softirq and steal per CPU), /proc/pressure/cpu,
               /proc/PID/task/*/status (context switches per thread)
    run        wrk -t<client cores> -c<conns> --latency, pinned to the client cores, stopped
               with SIGINT after BENCH_SECS (wrk's own -d takes whole seconds only);
               meanwhile VmRSS and Threads are sampled every 100 ms, and perf counts
               raw_syscalls:sys_exit of the server (bench/syscalls.py), enabled only while wrk runs
    after      the same reads right before wrk is stopped, and wrk's own CPU time; deltas
               divided by the requests wrk completed

wrk opens its connections when it starts, so per-request figures include connection set-up
(not teardown, which comes after the window), as a server pays it. A run in which wrk kept
its own core busy (wrk_cpu >= 0.9) measured wrk: such rows are flagged wrk_bound.
"""

import math
import os
import re
import subprocess
import threading
import time

from c10kutil import (CLK_TCK, cpu_stat, cpu_stat_delta, cpu_ticks_split, ctxsw_by_thread,
                      parse_stat_fields, process_tree, proc_pss_kib, proc_threads, psi_some_us,
                      read_status, run_ns)
from procs import PipeReader, spawn, stop_by_line, stoppable
from syscalls import CountError, Window
from syscalls import works as perf_works  # noqa: F401 (bench.py: can perf count here?)
WRK_TIMEOUT = "8s"  # TechEmpower's: a slow server shows up as latency before it shows as errors

TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
BYTE_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


# ---- wrk ---------------------------------------------------------------------------------

def parse_ms(text):
    """wrk's '456.00us', '4.10ms', '1.20s', '2.00m' -> milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"wrk time {text!r}")
    return float(m.group(1)) * TIME_UNITS[m.group(2)]


def parse_bytes(text):
    """wrk's '90.07MB' (binary units, as wrk prints them) -> bytes."""
    m = re.fullmatch(r"([\d.]+)(B|KB|MB|GB|TB)", text)
    if not m:
        raise ValueError(f"wrk size {text!r}")
    return float(m.group(1)) * BYTE_UNITS[m.group(2)]


def parse_wrk(out):
    """Reads wrk's text report into a dict; raises ValueError if it is not one. The one
    reader of wrk's report (tests/stress_tools.py's WrkResult reads through it too)."""
    r = {"errors": 0, "non2xx": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None,
         "max_ms": None}
    m = re.search(r"^\s*(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", out, re.M)
    if not m:
        raise ValueError("no 'N requests in T, B read' line in wrk's output")
    r["requests"] = int(m.group(1))
    r["duration_s"] = parse_ms(m.group(2)) / 1000.0
    r["bytes"] = parse_bytes(m.group(3))
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    r["rps"] = float(m.group(1)) if m else r["requests"] / max(r["duration_s"], 1e-9)
    if r["requests"] > 0:
        # "Latency   1.23ms  456.00us  12.34ms   89.00%": avg, stdev, max, +/- stdev
        m = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)\s", out, re.M)
        if m:
            r["max_ms"] = parse_ms(m.group(3))
        for pct in ("50", "90", "99"):
            m = re.search(rf"^\s*{pct}%\s+(\S+)", out, re.M)
            if m:
                r[f"p{pct}_ms"] = parse_ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    # (connect, read, write, timeout): make stress tells them apart
    r["socket_errors"] = tuple(int(g) for g in m.groups()) if m else (0, 0, 0, 0)
    r["errors"] = sum(r["socket_errors"])
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    return r


def run_wrk(url, conns, secs, cores, log=None, label="", edge=None, host=()):
    """Runs wrk for secs seconds (fractions allowed) and returns its parsed report, with
    wrk's own CPU time as a share of its threads ("wrk_cpu", 1.0 = every thread busy).
    edge, if given, is called right before wrk starts and right before it is stopped: the
    edges of the window wrk's request count covers. host: a client host's prefix (none:
    here); wrk is stopped by a line on its stdin there (procs.stoppable), SIGINT to it, on
    which it prints its report as on Ctrl-C, after its CPU time."""
    threads = max(1, min(len(cores), conns))
    cmd = ["wrk", "-t", str(threads), "-c", str(conns),
           "-d", f"{math.ceil(secs) + 5}s",  # a backstop only: the stop line ends the run
           "--timeout", WRK_TIMEOUT, "--latency", url]
    if edge:
        edge()
    t0 = time.monotonic()
    p = spawn(cmd, cores=cores, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
              stderr=subprocess.STDOUT, host=host, wrap=stoppable("INT"))
    reader = PipeReader(p.stdout)
    time.sleep(secs)
    if edge:
        edge()
    elapsed = time.monotonic() - t0
    stop_by_line(p)
    out = reader.text()
    if log:
        log.write(f"==== {label} {' '.join(list(host) + cmd)}\n{out}\n")
        log.flush()
    try:
        r = parse_wrk(out)
    except ValueError as e:
        raise MeasureError(f"wrk: {e}: {out.strip()[-300:]}")
    m = re.search(r"^c10k-stat: (.*)$", out, re.M)
    fields = parse_stat_fields(m[1]) if m else []
    r["wrk_cpu"] = (int(fields[11]) + int(fields[12])) / CLK_TCK / elapsed / threads \
        if len(fields) > 12 else None
    return r


class MeasureError(Exception):
    pass


# ---- /proc: the edges of a measured window ------------------------------------------------

class Snapshot:
    """What the kernel says at one edge of a measured window: the server's CPU time (all
    its threads), per-CPU softirq and steal time, CPU pressure (PSI)."""

    def __init__(self, pid, tree=None, acct=None, remote=None):
        """tree: the server's processes (c10kutil.process_tree), found before the window
        by the caller, so that the edge reads only the server's own counters: walking
        /proc at the edge took 30-250 ms on a busy machine with the client on the same
        core, and the CPU read somewhere inside that is no edge at all. remote: the
        server's hostproc.ServerHost, which reads all of it there (tree: its
        edge_tree()), with the server's VmRSS and Threads."""
        self.t = time.monotonic()
        if remote:
            remote.fill(self, pid, tree)
            return
        # acct: the server's procs.CpuAccount, exact for every process it ever had.
        self.acct = acct.usage() if acct else None
        if self.acct:
            # One read whatever the server's size: bin/fork at 10,000 connections is 10,001
            # processes, and reading each one's counters made the edge a second late.
            self.run, self.user_sys = None, (0, 0)
        else:
            self.run = run_ns(pid, tree=tree)
            self.user_sys = cpu_ticks_split(pid, tree)
        self.ticks = sum(self.user_sys)
        self.stat = cpu_stat()
        self.psi = psi_some_us()

    def cpu_s(self, after):
        """The server's CPU seconds from self to after: nanoseconds from schedstat when the
        same threads were alive at both edges, else clock ticks (every thread, exited
        ones included, but in 10 ms steps); the server's cgroup counter when it has one."""
        if self.acct and after.acct:
            return (after.acct[0] - self.acct[0]) / 1e9
        if self.run and after.run and self.run[1] == after.run[1]:
            return (after.run[0] - self.run[0]) / 1e9
        return (after.ticks - self.ticks) / CLK_TCK

    def figures(self, after, cores, requests):
        """{server CPU, softirq and steal on the server cores, pressure} over the window
        from self to after, per request where that is what it means."""
        window = max(after.t - self.t, 1e-9)
        cpu = self.cpu_s(after)
        if self.acct and after.acct:
            user = after.acct[1] - self.acct[1]
            both = user + after.acct[2] - self.acct[2]
        else:
            user = after.user_sys[0] - self.user_sys[0]
            both = user + after.user_sys[1] - self.user_sys[1]
        user_share = user / both if both > 0 else None
        softirq = cpu_stat_delta(self.stat, after.stat, cores, "softirq")
        steal = cpu_stat_delta(self.stat, after.stat, cores, "steal")
        pressure = (after.psi - self.psi) / 1e6 / window \
            if self.psi is not None and after.psi is not None else None
        return {
            "window_s": window,
            # No CPU seen at all (a server whose work is in children that exited unreaped
            # in the window, read in 10 ms ticks) is no figure, not a free request.
            "cpu_us_per_req": cpu * 1e6 / requests if requests and cpu > 0 else None,
            # The split (clock ticks, or the cgroup's) is applied to the exact total.
            "cpu_user_us_per_req": cpu * user_share * 1e6 / requests
            if requests and cpu > 0 and user_share is not None else None,
            "cpu_sys_us_per_req": cpu * (1 - user_share) * 1e6 / requests
            if requests and cpu > 0 and user_share is not None else None,
            "server_util": cpu / window,
            "softirq_us_per_req": softirq * 1e6 / requests if requests else None,
            "steal": steal / window / max(len(cores), 1),
            "cpu_pressure": pressure,
        }


class Sampler(threading.Thread):
    """Samples the server's VmRSS and thread count every 100 ms while wrk runs, and its
    per-thread context switches once near the end (threads of the blocking model end
    with their connections, taking their counters with them); for a server of several
    processes, its tree's Pss and threads once near the end too."""

    def __init__(self, pid, secs):
        super().__init__(daemon=True)
        self.pid, self.secs = pid, secs
        self.rss_kib, self.threads = 0, 0
        self.ctxsw = {}
        self.done = threading.Event()
        self.start()

    def run(self):
        t0 = time.monotonic()
        late = False
        while not self.done.is_set():
            try:
                s = read_status(f"/proc/{self.pid}/status", ("VmRSS", "Threads"))
                self.rss_kib = max(self.rss_kib, s.get("VmRSS", 0))
                self.threads = max(self.threads, s.get("Threads", 0))
            except OSError:
                return
            if not late and time.monotonic() - t0 > self.secs - 0.3:
                late = True
                self.ctxsw = ctxsw_by_thread(self.pid)
                # A server of several processes (bin/fork, bin/prefork): once, its whole
                # tree, each page counted once (Pss), and every process's threads.
                tree = process_tree(self.pid)
                if len(tree) > 1:
                    self.rss_kib = max(self.rss_kib, proc_pss_kib(self.pid) or 0)
                    self.threads = max(self.threads, proc_threads(self.pid) or 0)
            self.done.wait(0.1)

    def finish(self):
        self.done.set()
        self.join()


# ---- perf ----------------------------------------------------------------------------------

# ---- one measurement -----------------------------------------------------------------------

# wrk busier than this share of its threads' time was the limit, not the server.
WRK_BOUND = 0.9


def measure(target, conns, file, secs, warm, client_cores, syscalls, tmp_dir, log, label,
            server_cores=(), client_host=()):
    """Warm-up, then one measured wrk run against target; returns a results.csv row (dict).

    syscalls: "perf" (counted during the run by bench/syscalls.py) or "none".
    The server's CPU, softirq and pressure are read at the edges of the window wrk's
    request count covers: from right before wrk starts (its connects are in the window:
    wrk cannot open them earlier) to right before it is stopped."""
    url = f"http://{getattr(target, 'addr', '127.0.0.1')}:{target.port}/{file}"
    if warm > 0:
        run_wrk(url, conns, warm, client_cores, log, label + " warm-up", host=client_host)
    pid = target.pid()
    remote = getattr(target, "remote", None)
    if remote:
        return measure_remote(target, pid, remote, url, conns, file, secs, client_cores,
                              log, label, server_cores, client_host)

    counter = None
    if syscalls == "perf":
        counter = Window(process_tree(pid) or [pid], os.path.join(tmp_dir, "perf.out"))
        try:
            counter.enable()
        except (OSError, CountError):
            # perf could not attach: a process of the tree (bin/fork's child of an
            # earlier connection) exited under it. This point goes without syscalls.
            counter.finish()
            counter = None
    ctx0 = ctxsw_by_thread(pid)
    sampler = Sampler(pid, secs)
    edges = []
    try:
        w = run_wrk(url, conns, secs, client_cores, log, label, host=client_host,
                    edge=lambda: edges.append(Snapshot(pid, acct=getattr(target, "acct",
                                                                           None))))
    finally:
        sampler.finish()
        if counter:
            try:
                counter.disable()
            except (OSError, CountError):
                pass  # perf is gone: finish() finds no count
            finally:
                n_sys = counter.finish()
    if not target.alive() or len(edges) < 2:
        raise MeasureError(f"{target.name} died during the run")
    ctx1 = ctxsw_by_thread(pid)

    # A thread's last sighting is the later of the near-end sample and the final read;
    # threads born during the run start from zero.
    last = dict(sampler.ctxsw)
    last.update(ctx1)
    ctxsw = sum(v - ctx0.get(tid, 0) for tid, v in last.items())

    if counter and n_sys is not None and w["requests"]:
        per_req_sys = n_sys / w["requests"]
    else:
        per_req_sys = None

    return wrk_row(target, conns, file, w, edges, server_cores, per_req_sys,
                   ctxsw / w["requests"] if w["requests"] else None, sampler.rss_kib,
                   sampler.threads)


def measure_remote(target, pid, remote, url, conns, file, secs, client_cores, log, label,
                   server_cores, client_host):
    """measure() of a server on another host (hostproc): its CPU, VmRSS and Threads read
    there at the two edges, nothing of ours there in between; no syscalls, no context
    switches."""
    edges = []
    tree = remote.edge_tree(pid)
    w = run_wrk(url, conns, secs, client_cores, log, label, host=client_host,
                edge=lambda: edges.append(Snapshot(pid, tree, remote=remote)))
    if not target.alive() or len(edges) < 2:
        raise MeasureError(f"{target.name} died during the run")
    return wrk_row(target, conns, file, w, edges, server_cores, None, None,
                   max(e.rss_kib for e in edges), max(e.threads for e in edges))


def wrk_row(target, conns, file, w, edges, server_cores, per_req_sys, ctxsw_per_req,
            rss_kib, threads):
    """A results.csv row from wrk's report and the window's edges."""
    req = w["requests"]
    row = {
        "server": target.name, "model": target.model, "conns": conns, "file": file,
        "requests": req, "rps": w["rps"],
        "mbps": w["bytes"] / w["duration_s"] / 1e6 if w["duration_s"] else 0,
        "p50_ms": w["p50_ms"], "p90_ms": w["p90_ms"], "p99_ms": w["p99_ms"],
        "max_ms": w["max_ms"], "errors": w["errors"], "non2xx": w["non2xx"],
        "syscalls_per_req": per_req_sys, "ctxsw_per_req": ctxsw_per_req,
        "rss_kib": rss_kib, "threads": threads,
        "wrk_cpu": w["wrk_cpu"],
        "wrk_bound": int(w["wrk_cpu"] is not None and w["wrk_cpu"] >= WRK_BOUND),
    }
    row.update(edges[0].figures(edges[1], server_cores, req))
    return row
