#!/usr/bin/env python3
"""detgate.py - the deterministic layer of make bench-ci: work counted, not timed.

    python3 bench/detgate.py check     make bench-ci (first; it alone decides pass or fail)
    python3 bench/detgate.py update    make bench-ci-update: rewrites results/profile.json
    python3 bench/detgate.py show      measures once and prints the profile, judges nothing

A client (this process; fixed counts) drives every bin/* server through five workloads:

    keep-alive  one connection, n requests for a 4 KiB file (serial, as all but batch)
    churn       n connections, one request each (Connection: close)
    idle        IDLE_CONNS connections opened and held, then one connection, n requests
    batch       BATCH_CONNS connections; rounds of: server stopped (SIGSTOP), one request
                on each, server resumed, every answer read (a wake-up finds them all)
    large       one connection, n requests for a 1 MiB file (LENGTHS: 4 and 44)

and counts per request come out of it, independent of how busy the machine is:

    syscalls      by name, counted by the kernel: the server runs under `perf record`
                  (the raw_syscalls:sys_exit tracepoint: every call and its result), and
                  io_uring operations by opcode (io_uring:io_uring_submit_req)
    instructions  user-space instructions, counted by valgrind (cachegrind, no cache
                  simulation), in the first three workloads; for the servers valgrind
                  runs faithfully (VALGRIND_SKIP: servers/models.tsv)

and a third layer, memory: the server's Pss with 0, 1,000 and 2,000 idle connections
(MEM_CONNS), whose slope is its memory per connection (memory_per_conn()).

Each count is taken at two run lengths (n = SHORT and LONG), each a fresh server, and the
difference divided by LONG - SHORT: start-up, shutdown and the first request's cache fill
cancel. The results are compared with results/profile.json: a syscall fails when its count
per request moves by more than its tolerance, set by its kind (kind(): a call or a
sleep, counted exactly; a lock, futex and sched_yield; a wait for I/O, whose count
follows timing) or by the spread over the runs that wrote the profile where that asks
for more, in every workload; instructions fail when they move by more than TOL_INSNS
(2%; in the churn workload TOL_INSNS_CHURN, 10%: how often the server wakes per
connection follows timing, and sigio's count there moved by 6% between a quiet and a
loaded machine), or 3 x their spread over those runs where that is wider; memory when
it moves by more than TOL_MEM_KIB per connection or 3 x its spread. Fewer
counts as a change too: a drop often means a path not taken (a 404 instead of a 200); an
intended change is committed with make bench-ci-update.

The servers inherit this process's environment (an LD_PRELOAD given to make bench-ci
reaches them: tests/test_detgate.py relies on that). A server in bin/ with no profile is
measured and reported ("no profile, run make bench-ci-update") but does not fail the gate:
adding a server must not fail an unrelated change. Knobs: BENCH_SERVERS (a comma list),
DETGATE_JOBS (servers measured at a time, 2),
DETGATE_RUNS (update: repetitions measured to set the timing-dependent tolerances, 5),
DETGATE_LAYERS (syscalls,instructions,memory: any of them). Standard library and
bench/'s c10kutil.py, procs.py, http_client.py and syscalls.py only; needs perf, valgrind
and ss (iproute2).
"""

import concurrent.futures
import difflib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import http_client
import syscalls
from c10kutil import model_traits, models, proc_pss_kib, process_tree
from procs import StartError, StderrLines, children, threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.join(REPO, "bin")
PROFILE = os.path.join(REPO, "results", "profile.json")

FILE_NAME = "index.html"
FILE_SIZE = 4096
LARGE_NAME = "large.bin"  # the large workload's file: 1 MiB, so a request is a MiB
LARGE_SIZE = 1 << 20
IDLE_CONNS = 100          # held open during the idle workload (bin/select's limit is 1024)
BATCH_CONNS = 20          # connections that send at once in the batch workload
SHORT, LONG = 40, 440     # requests (or connections) in the two run lengths
WORKLOADS = ("keep-alive", "churn", "idle", "batch", "large")
INSNS_WORKLOADS = WORKLOADS[:3]  # batch and large: syscalls only, to keep the gate short
LENGTHS = {"large": (4, 44)}     # 40 MiB between its two runs (in 1 to 3 s)
LONG_RUNS = ("batch", "large")   # workloads whose runs last seconds: TOL_EXACT_LONG
ASLEEP_TIMEOUT = 0.1      # s a batch round waits for the server to sleep (bin/busypoll never)

# Every call is judged by name in every workload, each by its kind (kind()):
#
#   call   counted exactly: TOL_EXACT per request (8 calls in 400); a thread's start and
#          end (THREAD_CALLS) in a model with the `locks` trait are judged as a lock
#   sleep  nanosleep, clock_nanosleep, and a poll/ppoll/select/pselect6 that returned 0
#          (its timeout ran out: "poll:timeout"): no server sleeps while it has a request,
#          so these are counted exactly too, TOL_EXACT
#   lock   futex and sched_yield: how often threads meet on a lock follows timing (bin/aio's
#          futex calls per request ranged from 6.3 to 11.4 between identical runs), so where
#          the profile has them, TOL_WAIT or TOL_LOCK_SHARE of their count, whichever is
#          more; where it has none (a single-threaded server), TOL_EXACT
#   wait   the calls that block on I/O, and the calls that failed (a nonblocking call that
#          found nothing to do, EAGAIN): how often a server waits follows the timing of the
#          client and of the machine, not only the work: two CPU-burning processes moved
#          epoll's wakeups in the churn workload from 2.02 to 2.48 per request, sigio's
#          from 1.01 to 1.34 (docs/bench.md). TOL_WAIT; in the churn workload
#          TOL_WAIT_CHURN, since a new connection's request arrives before or after the
#          server wakes for its accept (bin/coro: 2.0 to 3.0 epoll_wait per connection
#          between identical runs)
#
# and at least TOL_SPREAD_FACTOR times the spread between the runs of an update. One
# exception: a failed call whose spread is past TOL_TIMING_MAX is shown, not judged (a
# count that grows with time, not work). bin/busypoll's spinning reads and accepts, the
# most of them, are not even recorded (the spins trait: run_once()).
TOL_EXACT = 0.02          # per request: a count that should not move at all (8 calls in 400)
TOL_EXACT_LONG = 0.1      # the same in batch and large, whose runs last seconds: the file
                          # cache's revalidation once a second in each of bin/prefork's
                          # processes (openat2, newfstatat, close) made 0.06 per request
# Once-a-second work: the open-file cache resolves a path again at most once a second in
# each process (an openat2, a newfstatat and a close), so how many such calls a run makes
# follows its length in seconds, not its requests: bin/busypoll's idle workload made close
# 0.01 per request on a quiet machine, half of TOL_EXACT. Every call is allowed one more
# (or one fewer) per second of the longer run, plus one, in each of the server's processes,
# divided by the requests between the two runs: measured in each run, so a run slowed by a
# loaded machine widens its own tolerance (0.005 per request in a one-second run of one
# process; "tolerance" in a failure includes it).
TOL_SPREAD_FACTOR = 3     # counts that moved between the runs of an update: 3 x their spread
TOL_WAIT = 0.6            # per request, at least, for the calls whose count follows timing
TOL_WAIT_CHURN = 1.25     # the same for the waits of the churn workload: one more or one
                          # less per connection is timing (bin/epoll: 1.92 and 2.93 per
                          # request in runs of the same binary), and a little over
TOL_LOCK_SHARE = 0.5      # futex and sched_yield, where the server has them: this share
TOL_TIMING_MAX = 0.5      # a failed call whose spread is wider than this is not judged
WAITS = {"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6",
         "rt_sigtimedwait", "io_uring_enter"}
SLEEPS = {"nanosleep", "clock_nanosleep"}
TIMED_WAITS = syscalls.TIMED_WAITS  # returning 0: "name:timeout", a sleep
LOCKS = {"futex", "sched_yield"}
# A thread's start and end: pthread_create's clone3 with its stack (mmap, mprotect) and the
# signals it blocks around it (rt_sigprocmask), the new thread's rseq and set_robust_list,
# and the stack given back at its exit (madvise, munmap). Counted exactly, except in a model
# of several threads or processes (the `locks` trait), where, like a lock, they follow
# timing where the profile has them: glibc starts its aio helper threads on demand and lets
# them go after an idle second, and bin/aio's batch workload made clone3 1.27 per request in
# a profile's five runs and 0.95 in a fresh clone's.
THREAD_CALLS = {"clone", "clone3", "mmap", "mprotect", "munmap", "madvise", "rseq",
                "set_robust_list", "rt_sigprocmask"}
KIND_LABEL = {"call": "call", "sleep": "sleep", "lock": "lock", "wait": "I/O wait"}


def kind(name):
    """"call", "sleep", "lock" or "wait": what a count of name means (see above)."""
    call, _, result = name.partition(":")
    if call in SLEEPS or result == "timeout":
        return "sleep"
    if call in LOCKS:
        return "lock"
    if call in WAITS or result == "failed":
        return "wait"
    return "call"
# Memory: the server's Pss (c10kutil.proc_pss_kib, summed over its processes) with
# MEM_CONNS connections held open, each answered once; the least-squares slope is its
# memory per connection. What a connection costs is mostly fixed (buffers, a thread's
# stack), but the allocator and the kernel's page accounting move it a little:
# TOL_MEM_KIB, or 3 x the spread over the update's runs.
MEM_CONNS = (0, 1000, 2000)
MEM_CONNS_FDSET = (0, 450, 900)   # the fdset trait (bin/select): FD_SETSIZE is 1024
TOL_MEM_KIB = 1.0         # KiB per connection, at least
TOL_INSNS = 0.02          # instructions per request, as a fraction (or 3 x the spread)
TOL_INSNS_CHURN = 0.10    # the same in the churn workload, where wakeups follow timing


def insns_floor(server, workload):
    """The least instruction tolerance: TOL_INSNS_CHURN in churn, and in every workload for
    a model whose wakeups follow timing (the `wakeups` trait in servers/models.tsv: bin/sigio's
    queued signals coalesce, and its keep-alive count moved 2.1% between two updates' runs
    that each agreed within 0.7%); else TOL_INSNS."""
    timed = workload == "churn" or "wakeups" in model_traits(server)
    return TOL_INSNS_CHURN if timed else TOL_INSNS
UPDATE_RUNS = 5           # make bench-ci-update: runs whose spread sets the tolerances

# Servers whose user-space instructions valgrind cannot count faithfully, and why (the
# valgrind_skip column of servers/models.tsv); they are judged on their syscall profile only.
VALGRIND_SKIP = {name: row["valgrind_skip"] for name, row in models().items()
                 if row["valgrind_skip"]}

START_TIMEOUT = 30        # seconds for a listening line (valgrind starts slowly)
STOP_TIMEOUT = 30
SETTLE_TIMEOUT = 2
IO_TIMEOUT = 20


LIVE = set()  # the runs in progress, killed however the gate ends


class GateError(Exception):
    """A server that cannot be measured: it did not start, answered wrongly, or hung."""


# ---------------------------------------------------------------------------------------
# The document root and the client

def make_root():
    root = tempfile.mkdtemp(prefix="c10k-detgate-")
    os.chmod(root, 0o755)   # not mkdtemp's 0700: a server started as root serves as nobody
    line = b"<p>c10k deterministic gate: the same 4096 bytes in every run.</p>\n"
    body = (line * (FILE_SIZE // len(line) + 1))[:FILE_SIZE - 1] + b"\n"
    with open(os.path.join(root, FILE_NAME), "wb") as f:
        f.write(body)
    with open(os.path.join(root, LARGE_NAME), "wb") as f:
        f.write(bytes(range(256)) * (LARGE_SIZE // 256))
    return root


def request(close=False, name=FILE_NAME):
    return http_client.get("/" + name, close=close)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s, buf, until_eof=False, size=FILE_SIZE):
    """Reads one response of size bytes from s (buf: bytes already read); returns the rest
    of buf."""
    try:
        r, rest = http_client.read_response(s, buf)
        if until_eof:
            rest += http_client.read_to_eof(s)
    except http_client.BadResponse as e:
        raise GateError(str(e)) from None
    if r.status != 200 or len(r.body) != size:
        raise GateError(f"answered {r.status} instead of 200 with {size} bytes")
    if until_eof and rest:
        raise GateError("bytes after the response")
    return rest


def keep_alive(port, n, held, pid):
    """n requests on one connection; the connection stays open (in held) until the server
    has stopped, so its end is the same in every run."""
    s = connect(port)
    held.append(s)
    buf = b""
    for _ in range(n):
        s.sendall(request())
        buf = read_response(s, buf)


def churn(port, n, held, pid):
    for _ in range(n):
        with connect(port) as s:
            s.sendall(request(close=True))
            read_response(s, b"", until_eof=True)


def idle(port, n, held, pid):
    """IDLE_CONNS connections, each answered once and then left idle, then n requests on
    one more. One request per idle connection, one at a time: each is then accepted and
    set up on its own, the same way in every run, and none is still arriving while the
    measured requests run."""
    for _ in range(IDLE_CONNS):
        s = connect(port)
        held.append(s)
        s.sendall(request())
        read_response(s, b"")
    keep_alive(port, n, held, pid)


def batch(port, n, held, pid):
    """BATCH_CONNS connections, each answered once (so their accepts are not in the
    count), then n / BATCH_CONNS rounds of: stop the server (SIGSTOP, once it sleeps),
    one request on every connection, wait until the server's kernel has them all,
    resume it (SIGCONT) and read every answer. Each round the server finds BATCH_CONNS
    ready connections at its first wake-up, the same in every run: a server that
    takes one event per wake-up makes BATCH_CONNS times the waits."""
    conns, bufs = [], []
    for _ in range(BATCH_CONNS):
        s = connect(port)
        held.append(s)
        s.sendall(request())
        bufs.append(read_response(s, b""))
        conns.append(s)
    received = {s.getsockname()[1]: len(request()) for s in conns}
    for _ in range(n // BATCH_CONNS):
        procs = process_tree(pid)
        wait_threads(procs, "SDI", ASLEEP_TIMEOUT)  # a spinning server never sleeps: go on
        try:
            for p in procs:
                os.kill(p, signal.SIGSTOP)
            if not wait_threads(procs, "Tt", IO_TIMEOUT):
                raise GateError("did not stop on SIGSTOP")
            for s in conns:
                s.sendall(request())
            for cport in received:
                received[cport] += len(request())
            wait_received(port, received)
        finally:
            for p in procs:
                os.kill(p, signal.SIGCONT)
        bufs = [read_response(s, buf) for s, buf in zip(conns, bufs)]


def large(port, n, held, pid):
    """n requests for the 1 MiB file on one connection: the calls per MiB served
    (sendfile, splice, read and write, setsockopt for TCP_CORK) show the size of each
    chunk and how it is copied."""
    s = connect(port)
    held.append(s)
    buf = b""
    for _ in range(n):
        s.sendall(request(name=LARGE_NAME))
        buf = read_response(s, buf, size=LARGE_SIZE)


def memory_per_conn(binary, root):
    """{"kib_per_conn": slope, "pss_kib": [Pss at each count]}: the server alone (no
    counter), its Pss with MEM_CONNS connections open, each answered once and then idle."""
    counts = MEM_CONNS_FDSET if "fdset" in model_traits(os.path.basename(binary)) else MEM_CONNS
    proc = subprocess.Popen([binary, "--port", "0", "--root", root, "--idle-timeout", "120",
                             "--max-conns", str(max(counts) + 100)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    LIVE.add(proc)
    held, err = [], None
    try:
        port, err = wait_listening(proc)
        pss = []
        for n in counts:
            while len(held) < n:
                s = connect(port)
                held.append(s)
                s.sendall(request())
                read_response(s, b"")
            kib = proc_pss_kib(proc.pid)
            if kib is None:
                raise GateError(f"exited with {n} connections open")
            pss.append(kib)
    finally:
        for s in held:
            s.close()
        stop_group(proc)
        if err:
            err.finish()
    mean_n, mean_p = sum(counts) / len(counts), sum(pss) / len(pss)
    slope = (sum((n - mean_n) * (p - mean_p) for n, p in zip(counts, pss))
             / sum((n - mean_n) ** 2 for n in counts))
    return {"kib_per_conn": slope, "pss_kib": pss, "conns": list(counts)}


DRIVERS = {"keep-alive": keep_alive, "churn": churn, "idle": idle, "batch": batch,
           "large": large}


def wait_threads(pids, states, timeout):
    """Waits (up to timeout s) until every thread of pids is in one of states (letters
    of /proc/PID/task/TID/stat); True if they all were. No event tells another
    process's state, so /proc is read again every millisecond."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ok = all(open(f"/proc/{p}/task/{t}/stat").read().rpartition(")")[2].split()[0]
                     in states for p in pids for t in os.listdir(f"/proc/{p}/task"))
        except OSError:
            ok = False  # a thread or process ended while being read: read again
        if ok or time.monotonic() > deadline:
            return ok
        time.sleep(0.001)


def wait_received(port, want):
    """Waits until the server's side of each connection (by client port) has received
    want[port] bytes, by the kernel's count (ss -i: bytes_received): its data is then
    in the server's socket, or already taken by io_uring, before the server resumes."""
    deadline = time.monotonic() + IO_TIMEOUT
    while True:
        out = subprocess.run(["ss", "-Htin", "state", "established", f"sport = :{port}"],
                             capture_output=True, text=True).stdout
        got = {int(m.group(1)): int(m.group(2)) for m in re.finditer(
            r":(\d+)\s*\n\s.*?bytes_received:(\d+)", out)}
        if all(got.get(p, 0) >= n for p, n in want.items()):
            return
        if time.monotonic() > deadline:
            raise GateError("requests sent to the stopped server did not arrive")
        time.sleep(0.001)


# ---------------------------------------------------------------------------------------
# One server run under a counter

def run_once(binary, root, workload, n, counter, out_path):
    """Starts binary under counter ("perf" or "valgrind"), drives workload with n, stops it
    with SIGTERM; the counter's report is in out_path afterwards. Returns the seconds the
    workload took and the server's processes at its end (per_request(): the once-a-second
    work they allow for)."""
    server = [binary, "--port", "0", "--root", root, "--idle-timeout", "120"]
    if counter == "perf":
        # The batch workload stops the server: it runs under a shell (syscalls.record_argv).
        # A spinning server's EAGAIN failures are not judged (TOL_TIMING_MAX), nor recorded.
        argv = syscalls.record_argv(out_path, server, under_shell=workload == "batch",
                                    drop_eagain="spins" in model_traits(
                                        os.path.basename(binary)))
    else:
        argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                f"--cachegrind-out-file={out_path}", f"--log-file={out_path}.log"] + server
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    LIVE.add(proc)
    try:
        port, err = wait_listening(proc)
        pid = proc.pid
        if counter == "perf":
            kids = children(proc.pid)
            if workload == "batch" and len(kids) == 1:
                kids = children(kids[0])
            if len(kids) != 1:
                raise GateError("cannot find the server under perf")
            pid = kids[0]
        held = []
        try:
            started = threads(pid)
            t0 = time.monotonic()
            DRIVERS[workload](port, n, held, pid)
            seconds, procs = time.monotonic() - t0, max(1, len(process_tree(pid)))
            # At most one thread per connection still open (the blocking model's).
            settle(pid, started + len(held))
            os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise GateError(f"did not stop within {STOP_TIMEOUT} s of SIGTERM") from None
        finally:
            for s in held:
                s.close()
        err.finish()
        if proc.returncode != 0:
            raise GateError(f"exit status {proc.returncode} after SIGTERM: {err.tail()}")
    finally:
        stop_group(proc)
    return seconds, procs


def stop_group(proc):
    """Kills what a run started (the counter and the server, one process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    LIVE.discard(proc)


def settle(pid, most):
    """Waits (up to SETTLE_TIMEOUT) until the server has no more threads than most: a
    thread per connection ends after the client has its answer, and its last calls must
    be counted in every run or in none."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while threads(pid) > most and time.monotonic() < deadline:
        time.sleep(0.01)  # no event tells when another process's thread has ended


def wait_listening(proc):
    """(port, the server's StderrLines) once it has printed its readiness line."""
    err = StderrLines(proc)
    try:
        return int(err.wait_listening(START_TIMEOUT)[2]), err
    except StartError as e:
        raise GateError(f"{e}: {err.tail()}") from None


def read_syscalls(path):
    """{name: calls} of a perf record (syscalls.read_record())."""
    try:
        return syscalls.read_record(path)
    except syscalls.CountError as e:
        raise GateError(str(e)) from None


def read_instructions(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise GateError("cachegrind wrote no summary")


def per_request(binary, root, workload, counter, tmp):
    """The counter's figures per request, {syscall: calls} or {"instructions": n}, and
    what once-a-second work may add to a call's count per request (TICK_CALLS)."""
    figures, ticks = [], 0
    short_n, long_n = LENGTHS.get(workload, (SHORT, LONG))
    for n in (short_n, long_n):
        out = os.path.join(tmp, f"{os.path.basename(binary)}.{workload}.{counter}.{n}")
        seconds, procs = run_once(binary, root, workload, n, counter, out)
        ticks = max(ticks, (math.ceil(seconds) + 1) * procs)
        figures.append(read_syscalls(out) if counter == "perf"
                       else {"instructions": read_instructions(out)})
    short, long_ = figures
    return {k: (long_.get(k, 0) - short.get(k, 0)) / (long_n - short_n)
            for k in sorted(set(short) | set(long_))}, ticks / (long_n - short_n)


# ---------------------------------------------------------------------------------------
# Measuring every server

def servers():
    names = sorted(f for f in os.listdir(BIN_DIR) if os.access(os.path.join(BIN_DIR, f), os.X_OK)) \
        if os.path.isdir(BIN_DIR) else []
    wanted = [n for n in os.environ.get("BENCH_SERVERS", "").split(",") if n and n != "nginx"]
    if wanted:
        names = [n for n in names if n in wanted]
    return names


LAYERS = ("syscalls", "instructions", "memory")
JOBS = int(os.environ.get("DETGATE_JOBS", 2))  # servers measured at a time


def run_pool(fn, items):
    """fn(item) for every item, JOBS at a time; an interrupt starts no new one and waits
    for those under way (each stops the server it started)."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=JOBS)
    try:
        for job in [pool.submit(fn, item) for item in items]:
            job.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def measure(names, layers=LAYERS, log=print):
    """{"syscalls": {server: {workload: {name: per_req}}}, "instructions": {server:
    {workload: per_req}}, "memory": {server: memory_per_conn()}, "errors": {server:
    message}}."""
    root = make_root()
    tmp = tempfile.mkdtemp(prefix="c10k-detgate-out-")
    # valgrind writes its counts from inside the server, which, started as root, serves
    # as nobody: the directory is writable by all, sticky as /tmp is.
    os.chmod(tmp, 0o1777)
    result = {"syscalls": {}, "instructions": {}, "memory": {}, "errors": {}, "ticks": {}}
    try:
        # Syscalls of two servers at a time (DETGATE_JOBS): a server beside another is one
        # more neighbour, and the gate must stand neighbours anyway (bench/detgate_soak.py
        # runs it beside two CPU-burning loops); the waits' tolerances allow for them.
        if "syscalls" in layers:
            def count(s):
                t0 = time.monotonic()
                try:
                    for w in WORKLOADS:
                        counts, ticks = per_request(os.path.join(BIN_DIR, s), root, w,
                                                    "perf", tmp)
                        result["syscalls"].setdefault(s, {})[w] = counts
                        result["ticks"].setdefault(s, {})[w] = ticks
                except GateError as e:
                    result["errors"][s] = f"under perf: {e}"
                log(f"detgate: {s}: syscalls counted ({time.monotonic() - t0:.1f} s)")
            run_pool(count, names)
        for s in names if "memory" in layers else []:
            t0 = time.monotonic()
            try:
                result["memory"][s] = memory_per_conn(os.path.join(BIN_DIR, s), root)
            except GateError as e:
                result["errors"].setdefault(s, f"memory: {e}")
            log(f"detgate: {s}: memory measured ({time.monotonic() - t0:.1f} s)")
        if "instructions" in layers:
            # Instructions hardly depend on timing (the wakeups in churn aside, which the
            # tolerance allows for): JOBS runs at a time.
            jobs = {}
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=JOBS)
            try:
                for s in names:
                    if s in VALGRIND_SKIP:
                        continue
                    for w in INSNS_WORKLOADS:
                        jobs[(s, w)] = pool.submit(per_request, os.path.join(BIN_DIR, s), root,
                                                   w, "valgrind", tmp)
                for (s, w), job in jobs.items():
                    try:
                        insns = job.result()[0]["instructions"]
                        result["instructions"].setdefault(s, {})[w] = insns
                    except GateError as e:
                        result["errors"].setdefault(s, f"under valgrind ({w}): {e}")
            finally:
                # Interrupted: no new run starts; the ones under way stop their servers.
                pool.shutdown(wait=True, cancel_futures=True)
            log("detgate: instructions counted")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return result


# ---------------------------------------------------------------------------------------
# The profile and the verdict

def floor(workload, name, names, mean=None, server=None):
    """The least tolerance of a syscall in workload (names: the calls measured there;
    mean: its count in the profile, None where it has none): by kind() (see the top of
    this file); the
    successful half of a call that sometimes fails counts as a wait (a nonblocking read
    that finds data one time in 25 and nothing the rest: bin/sigio's reads in the idle
    workload moved between 0 and 0.04 per request)."""
    k = kind(name)
    exact = TOL_EXACT_LONG if workload in LONG_RUNS else TOL_EXACT
    if k == "lock":
        # A model of several threads or processes (the `locks` trait in servers/models.tsv)
        # can meet on a lock now and then whether or not the profile's runs saw it
        # (bin/prefork's batch workload: futex 0.00 in 5 runs, 0.14 in a fresh clone's).
        if mean is None and "locks" not in model_traits(server or ""):
            return exact
        return max(TOL_WAIT, TOL_LOCK_SHARE * abs(mean or 0.0))
    if k == "wait" or (k == "call" and name + ":failed" in names):
        return TOL_WAIT_CHURN if workload == "churn" else TOL_WAIT
    if name in THREAD_CALLS and mean is not None and "locks" in model_traits(server or ""):
        return max(TOL_WAIT, TOL_LOCK_SHARE * abs(mean))
    return exact


def make_profile(runs):
    """The committed profile from one or more measurements: the mean of each figure, and
    for each syscall its tolerance: floor() by its kind, or TOL_SPREAD_FACTOR times the
    runs' spread if that is more, or None (shown, not judged) for a failed call whose
    spread is past TOL_TIMING_MAX (a spinning server's)."""
    prof = {"about": "syscalls and user-space instructions per request; bench/detgate.py "
                     "writes it (make bench-ci-update) and judges against it (make bench-ci)",
            "workloads": {"file": FILE_NAME, "size": FILE_SIZE, "idle_conns": IDLE_CONNS,
                          "batch_conns": BATCH_CONNS, "large_file": LARGE_NAME,
                          "large_size": LARGE_SIZE, "short": SHORT, "long": LONG,
                          "lengths": LENGTHS, "runs": len(runs)},
            "tolerance": {"memory_kib": TOL_MEM_KIB, "exact": TOL_EXACT, "exact_long": TOL_EXACT_LONG, "wait": TOL_WAIT, "wait_churn": TOL_WAIT_CHURN,
                          "lock_share": TOL_LOCK_SHARE, "spread_factor": TOL_SPREAD_FACTOR,
                          "timing_max": TOL_TIMING_MAX, "instructions": TOL_INSNS,
                          "instructions_churn": TOL_INSNS_CHURN},
            "valgrind_skip": VALGRIND_SKIP, "syscalls": {}, "instructions": {}}
    for s in sorted({s for r in runs for s in r["syscalls"]}):
        prof["syscalls"][s] = {}
        for w in WORKLOADS:
            samples = [r["syscalls"][s][w] for r in runs if s in r["syscalls"]]
            out = {}
            names = {k for x in samples for k in x}
            for name in sorted(names):
                vals = [x.get(name, 0.0) for x in samples]
                mean = sum(vals) / len(vals)
                spread = max(vals) - min(vals)
                least = TOL_EXACT_LONG if w in LONG_RUNS else TOL_EXACT
                if abs(mean) < least / 2 and spread < least:
                    continue  # absent in effect: a call now and then outside the requests
                tol = max(floor(w, name, names, mean, s), TOL_SPREAD_FACTOR * spread)
                ok = spread <= TOL_TIMING_MAX or not name.endswith(":failed")
                out[name] = {"per_request": round(mean, 3),
                             "tolerance": round(tol, 3) if ok else None}
            prof["syscalls"][s][w] = out
    prof["memory"] = {}
    for s in sorted({s for r in runs for s in r.get("memory", {})}):
        samples = [r["memory"][s] for r in runs if s in r.get("memory", {})]
        vals = [m["kib_per_conn"] for m in samples]
        prof["memory"][s] = {
            "kib_per_conn": round(sum(vals) / len(vals), 2),
            "tolerance": round(max(TOL_MEM_KIB, TOL_SPREAD_FACTOR * (max(vals) - min(vals))), 2),
            "conns": samples[0]["conns"], "pss_kib": samples[0]["pss_kib"]}
    for s in sorted({s for r in runs for s in r["instructions"]}):
        prof["instructions"][s] = {}
        for w in WORKLOADS:
            vals = [r["instructions"][s][w] for r in runs if w in r["instructions"].get(s, {})]
            if vals:
                mean = sum(vals) / len(vals)
                spread = (max(vals) - min(vals)) / mean
                prof["instructions"][s][w] = {
                    "per_request": round(mean, 1),
                    "tolerance": round(max(insns_floor(s, w), TOL_SPREAD_FACTOR * spread), 4)}
    return prof


def judge(prof, now, names):
    """Compares a measurement with the profile: (failures, warnings), each a list of lines
    such as "epoll, keep-alive: fstat +1.00/request"."""
    fails, warns = [], []
    for s, err in sorted(now["errors"].items()):
        fails.append(f"{s}: {err}")
    for s in names:
        if s in now["errors"]:
            continue
        if s not in prof["syscalls"]:
            warns.append(f"{s}: no profile, run make bench-ci-update (measured, not judged)")
            continue
        for w in WORKLOADS if s in now["syscalls"] else ():
            base = prof["syscalls"][s].get(w, {})
            got = now["syscalls"][s][w]
            for name in sorted(set(base) | set(got)):
                b = base.get(name, {"per_request": 0.0,
                                    "tolerance": floor(w, name, set(base) | set(got),
                                                       server=s)})
                g = got.get(name, 0.0)
                delta = g - b["per_request"]
                if b["tolerance"] is None:
                    continue
                # The floor as this file states it, if the profile was written with less.
                tol = max(b["tolerance"], floor(w, name, set(base) | set(got),
                                                b["per_request"] if name in base else None,
                                                s))
                if kind(name) == "call":
                    tol += now.get("ticks", {}).get(s, {}).get(w, 0.0)  # once-a-second work
                if abs(delta) > tol + 1e-9:
                    what = " (new)" if name not in base else " (gone)" if g == 0 else ""
                    fails.append(f"{s}, {w}: {name} {delta:+.2f}/request{what}, "
                                 f"{KIND_LABEL[kind(name)]} ({b['per_request']:.2f} -> "
                                 f"{g:.2f}, tolerance {tol:.2f})")
        base_m, got_m = prof.get("memory", {}).get(s), now.get("memory", {}).get(s)
        if got_m and base_m is None:
            warns.append(f"{s}, memory: no memory profile, run make bench-ci-update")
        elif got_m:
            delta = got_m["kib_per_conn"] - base_m["kib_per_conn"]
            if abs(delta) > base_m["tolerance"] + 1e-9:
                fails.append(f"{s}, memory: Pss {delta:+.1f} KiB/connection "
                             f"({base_m['kib_per_conn']:.1f} -> {got_m['kib_per_conn']:.1f}, "
                             f"tolerance {base_m['tolerance']:.1f}; idle connections "
                             f"{'/'.join(map(str, got_m['conns']))})")
        base_i = prof["instructions"].get(s, {})
        for w, g in sorted(now["instructions"].get(s, {}).items()):
            b = base_i.get(w)
            if b is None:
                warns.append(f"{s}, {w}: no instruction profile, run make bench-ci-update")
                continue
            change = g / b["per_request"] - 1
            tol = max(b["tolerance"], insns_floor(s, w))  # the table may widen a profile's
            if abs(change) > tol + 1e-9:
                fails.append(f"{s}, {w}: user-space instructions {change * 100:+.1f}%/request "
                             f"({b['per_request']:,.0f} -> {g:,.0f}, tolerance "
                             f"{tol * 100:.1f}%)")
    for s in sorted(set(prof["syscalls"]) - set(os.listdir(BIN_DIR) if os.path.isdir(BIN_DIR)
                                                  else [])):
        warns.append(f"{s}: in the profile but not in bin/")
    return fails, warns


def table(prof, now, names):
    """The measurement beside the profile, one line per server and workload."""
    lines = [f"  {'server':<10} {'workload':<11} {'syscalls/request (profile -> now)':<58} "
             "instructions/request"]
    for s in names:
        for w in WORKLOADS:
            got = now["syscalls"].get(s, {}).get(w)
            if got is None:
                continue
            base = prof.get("syscalls", {}).get(s, {}).get(w, {})
            top = sorted(got, key=lambda k: -got[k])[:4]
            cells = ", ".join(f"{k} {got[k]:.2f}" for k in top if got[k] >= 0.005)
            tot_b = sum(v["per_request"] for v in base.values())
            tot = sum(got.values())
            insn = now["instructions"].get(s, {}).get(w)
            insn_b = prof.get("instructions", {}).get(s, {}).get(w, {}).get("per_request")
            icell = "-" if insn is None else f"{insn:,.0f}" + (
                f" ({insn / insn_b - 1:+.1%})" if insn_b else "")
            lines.append(f"  {s:<10} {w:<11} {tot_b:5.2f} -> {tot:5.2f}: {cells:<42} {icell}")
    return lines


def load_profile():
    try:
        with open(PROFILE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"syscalls": {}, "instructions": {}}


def write_profile(prof):
    with open(PROFILE, "w") as f:
        json.dump(prof, f, indent=1, sort_keys=True)
        f.write("\n")


def check_tools(layers):
    missing = [tool for layer, tool in (("syscalls", "perf"), ("instructions", "valgrind"))
               if layer in layers and not shutil.which(tool)]
    if missing:
        print(f"detgate: FAIL: {' and '.join(missing)} not installed (make deps)")
        return False
    return True


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    if mode not in ("check", "update", "show"):
        sys.exit(f"usage: {sys.argv[0]} [check|update|show]")
    layers = os.environ.get("DETGATE_LAYERS", ",".join(LAYERS)).split(",")
    if not check_tools(layers):
        return 1
    names = servers()
    if not names:
        print("detgate: FAIL: no server binaries in bin/ (run make)")
        return 1
    t0 = time.monotonic()
    print(f"detgate: {' '.join(names)}: {', '.join(WORKLOADS)} ({IDLE_CONNS} idle), "
          f"{SHORT} and {LONG} requests, syscalls under perf, instructions under valgrind",
          flush=True)

    def log(message):
        print(message, flush=True)

    prof = load_profile()

    if mode == "update":
        layers = list(LAYERS)  # a profile is always written whole
        if not check_tools(layers):
            return 1
        runs = [measure(names, layers, log)
                for _ in range(int(os.environ.get("DETGATE_RUNS", UPDATE_RUNS)))]
        errors = {s: e for r in runs for s, e in r["errors"].items()}
        if errors:
            for s, e in sorted(errors.items()):
                print(f"detgate: FAIL: {s}: {e}")
            print("detgate: profile not written")
            return 1
        new = make_profile(runs)
        old_text = json.dumps(prof, indent=1, sort_keys=True).splitlines()
        write_profile(new)
        fails, _ = judge(prof, runs[0], names) if prof.get("syscalls") else ([], [])
        print(f"detgate: wrote {os.path.relpath(PROFILE)} ({len(runs)} runs, "
              f"{time.monotonic() - t0:.0f} s); what changed against the old profile:")
        for f in fails or ["nothing beyond the tolerances"]:
            print(f"  {f}")
        new_text = json.dumps(new, indent=1, sort_keys=True).splitlines()
        sys.stdout.writelines(line + "\n" for line in difflib.unified_diff(
            old_text, new_text, "profile.json (before)", "profile.json (after)", lineterm="", n=1))
        return 0

    now = measure(names, layers, log)
    print("\n".join(table(prof, now, names)))
    if mode == "show":
        print(json.dumps(make_profile([now]), indent=1, sort_keys=True))
        return 0
    fails, warns = judge(prof, now, names)
    for w in warns:
        print(f"detgate: warning: {w}")
    for f in fails:
        print(f"detgate: FAIL: {f}")
    took = time.monotonic() - t0
    # make bench-ci prints this file again after the wall-clock layer's minutes of output,
    # so that the last lines of a failed CI log say what failed.
    if os.environ.get("DETGATE_SUMMARY"):
        with open(os.environ["DETGATE_SUMMARY"], "w") as f:
            f.writelines(f"detgate: FAIL: {line}\n" for line in fails)
    if fails:
        print(f"detgate: FAIL ({len(fails)} changes; if intended, make bench-ci-update and "
              f"commit results/profile.json) in {took:.0f} s")
        return 1
    print(f"detgate: PASS ({len(names)} server(s) x {len(WORKLOADS)} workloads match "
          f"results/profile.json) in {took:.0f} s")
    return 0


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("detgate: interrupted; every server it started is stopped")
        sys.exit(130)
    finally:
        for p in list(LIVE):
            stop_group(p)
