#!/usr/bin/env python3
"""detgate.py - the deterministic layer of make bench-ci: work counted, not timed.

    python3 bench/detgate.py check     make bench-ci (first; it alone decides pass or fail)
    python3 bench/detgate.py update    make bench-ci-update: rewrites results/profile.json
    python3 bench/detgate.py show      measures once and prints the profile, judges nothing

A serial client (this process; one request at a time, fixed counts) drives every bin/*
server through three workloads on a 4 KiB file:

    keep-alive  one connection, n requests
    churn       n connections, one request each (Connection: close)
    idle        IDLE_CONNS connections opened and held, then one connection, n requests

and two counts per request come out of it, both independent of how busy the machine is:

    syscalls      by name, counted by the kernel: the server runs under `perf record`
                  (the raw_syscalls:sys_exit tracepoint: every call and its result)
    instructions  user-space instructions, counted by valgrind (cachegrind, no cache
                  simulation); for the servers valgrind runs faithfully (VALGRIND_SKIP)

Each count is taken at two run lengths (n = SHORT and LONG), each a fresh server, and the
difference divided by LONG - SHORT: start-up, shutdown and the first request's cache fill
cancel. The results are compared with results/profile.json: a syscall fails when its count
per request moves by more than its stated tolerance (exact counts: TOL_EXACT; counts that
depend on timing, such as epoll_wait's amortisation, TOL_WAIT or what the spread over
repeated runs when the profile was written asks for), instructions when they move by more
than TOL_INSNS (2%; in the churn workload TOL_INSNS_CHURN, 10%: how often the server
wakes per connection follows timing, and sigio's count there moved by 6% between a quiet
and a loaded machine), or 3 x their spread over those runs where that is wider. Fewer
counts as a change too: a drop often means a path not taken (a 404 instead of a 200); an
intended change is committed with make bench-ci-update.

The servers inherit this process's environment (an LD_PRELOAD given to make bench-ci
reaches them: tests/test_detgate.py relies on that). A server in bin/ with no profile is
measured and reported ("no profile, run make bench-ci-update") but does not fail the gate:
adding a server must not fail an unrelated change. Knobs: BENCH_SERVERS (a comma list),
DETGATE_RUNS (update: repetitions measured to set the timing-dependent tolerances, 3),
DETGATE_LAYERS (syscalls,instructions: either or both). Standard library only; needs perf
and valgrind.
"""

import concurrent.futures
import difflib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.join(REPO, "bin")
PROFILE = os.path.join(REPO, "results", "profile.json")

FILE_NAME = "index.html"
FILE_SIZE = 4096
IDLE_CONNS = 100          # held open during the idle workload (bin/select's limit is 1024)
SHORT, LONG = 40, 440     # requests (or connections) in the two run lengths
WORKLOADS = ("keep-alive", "churn", "idle")

TOL_EXACT = 0.02          # per request: a count that should not move at all (8 calls in 400)
TOL_SPREAD_FACTOR = 3     # counts that moved between the runs of an update: 3 x their spread
TOL_WAIT = 0.6            # per request, at least, for the calls whose count follows timing
TOL_TIMING_MAX = 0.5      # a spread wider than this per request is too wide to judge
# How often a server waits, and how often a nonblocking call finds nothing to do, follow
# the timing of the client and of the machine, not only the work: two CPU-burning
# processes moved epoll's wakeups in the churn workload from 2.02 to 2.48 per request,
# sigio's from 1.01 to 1.34 (docs/bench.md). Every other call is counted exactly.
WAITS = {"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6",
         "rt_sigtimedwait", "io_uring_enter", "nanosleep", "clock_nanosleep"}
# Shown, never judged: how often threads meet on a lock or yield is all timing (bin/aio's
# futex calls per request ranged from 6.3 to 11.4 between identical runs); and in the
# churn workload the waits and the calls that find nothing to do, because a new
# connection's request arrives before or after the server wakes for its accept (bin/coro:
# 2.0 to 3.0 epoll_wait per connection between identical runs). The same loops are judged
# in the keep-alive and idle workloads, where the client is strictly serial.
UNJUDGED = {"futex", "sched_yield"}


def judged(workload, name):
    return name.split(":")[0] not in UNJUDGED and not (workload == "churn" and is_wait(name))
TOL_INSNS = 0.02          # instructions per request, as a fraction (or 3 x the spread)
TOL_INSNS_CHURN = 0.10    # the same in the churn workload, where wakeups follow timing
UPDATE_RUNS = 3

# Servers whose user-space instructions valgrind cannot count faithfully; they are judged
# on their syscall profile only.
VALGRIND_SKIP = {
    "aio": "glibc runs each aio_read on a thread of its pool, and how many threads it starts "
           "and wakes follows timing: its idle workload came out between 8,969 and 9,654 "
           "instructions per request (7%) in identical runs",
    "uring": "under valgrind 3.19 it answers, but is still running 30 s after SIGTERM "
             "(measured), so valgrind never writes its counts",
    "busypoll": "it spins: its instructions grow with the time a request takes, not with "
                "the work it does",
    "fork": "its requests are served in child processes, which valgrind does not follow "
            "unless told to, and then writes one count per child",
    "prefork": "likewise: its requests are served in the processes it forks at start",
    "corouring": "it drives io_uring, like bin/uring, which valgrind 3.19 cannot stop",
}

START_TIMEOUT = 30        # seconds for a listening line (valgrind starts slowly)
STOP_TIMEOUT = 30
SETTLE_TIMEOUT = 2
IO_TIMEOUT = 20
LISTEN_RE = re.compile(rb"listening on ([0-9.]+):([0-9]+)")
RAW_RE = re.compile(r"raw_syscalls:sys_exit: NR (\d+) = (-?\d+)")
UNISTD_PATHS = ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h")
SYSCALL_NAMES = {}


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
    return root


def request(close=False):
    return (f"GET /{FILE_NAME} HTTP/1.1\r\nHost: localhost\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode()


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s, buf, until_eof=False):
    """Reads one response from s (buf: bytes already read); returns the rest of buf."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise GateError("the server closed the connection before answering")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/1.1 ") else head[:20]
    m = re.search(rb"\r\ncontent-length: *([0-9]+)", head, re.I)
    if status != b"200" or not m or int(m.group(1)) != FILE_SIZE:
        raise GateError(f"answered {status.decode(errors='replace')} instead of 200 with "
                        f"{FILE_SIZE} bytes")
    while len(buf) < FILE_SIZE:
        chunk = s.recv(65536)
        if not chunk:
            raise GateError("the server closed the connection in the middle of a body")
        buf += chunk
    rest = buf[FILE_SIZE:]
    if until_eof:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        if rest:
            raise GateError("bytes after the response")
    return rest


def keep_alive(port, n, held):
    """n requests on one connection; the connection stays open (in held) until the server
    has stopped, so its end is the same in every run."""
    s = connect(port)
    held.append(s)
    buf = b""
    for _ in range(n):
        s.sendall(request())
        buf = read_response(s, buf)


def churn(port, n, held):
    for _ in range(n):
        with connect(port) as s:
            s.sendall(request(close=True))
            read_response(s, b"", until_eof=True)


def idle(port, n, held):
    """IDLE_CONNS connections, each answered once and then left idle, then n requests on
    one more. One request per idle connection, one at a time: each is then accepted and
    set up on its own, the same way in every run, and none is still arriving while the
    measured requests run."""
    for _ in range(IDLE_CONNS):
        s = connect(port)
        held.append(s)
        s.sendall(request())
        read_response(s, b"")
    keep_alive(port, n, held)


DRIVERS = {"keep-alive": keep_alive, "churn": churn, "idle": idle}


# ---------------------------------------------------------------------------------------
# One server run under a counter

def children_of(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def run_once(binary, root, workload, n, counter, out_path):
    """Starts binary under counter ("perf" or "valgrind"), drives workload with n, stops it
    with SIGTERM; the counter's report is in out_path afterwards."""
    server = [binary, "--port", "0", "--root", root, "--idle-timeout", "120"]
    if counter == "perf":
        # Exits only: each names its call and its result, and half the events keep
        # bin/busypoll's spinning within what perf can write. No build-ids and no BPF
        # events: perf would spend a second on them at each start or exit.
        argv = ["perf", "record", "-q", "-B", "-N", "--no-bpf-event", "-m", "1024",
                "-e", "raw_syscalls:sys_exit", "-o", out_path, "--"] + server
    else:
        argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                f"--cachegrind-out-file={out_path}", f"--log-file={out_path}.log"] + server
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    LIVE.add(proc)
    try:
        port = wait_listening(proc)
        pid = proc.pid
        if counter == "perf":
            kids = children_of(proc.pid)
            if len(kids) != 1:
                raise GateError("cannot find the server under perf")
            pid = kids[0]
        held = []
        try:
            threads = thread_count(pid)
            DRIVERS[workload](port, n, held)
            # At most one thread per connection still open (the blocking model's).
            settle(pid, threads + len(held))
            os.kill(pid, signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise GateError(f"did not stop within {STOP_TIMEOUT} s of SIGTERM") from None
        finally:
            for s in held:
                s.close()
        if proc.returncode != 0:
            raise GateError(f"exit status {proc.returncode} after SIGTERM: "
                            f"{err.decode(errors='replace').strip()[-200:]}")
    finally:
        stop_group(proc)


def stop_group(proc):
    """Kills what a run started (the counter and the server, one process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    LIVE.discard(proc)


def thread_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def settle(pid, threads):
    """Waits (up to SETTLE_TIMEOUT) until the server has no more threads than threads: a
    thread per connection ends after the client has its answer, and its last calls must
    be counted in every run or in none."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while thread_count(pid) > threads and time.monotonic() < deadline:
        time.sleep(0.01)  # no event tells when another process's thread has ended


def wait_listening(proc):
    deadline = time.monotonic() + START_TIMEOUT
    seen = b""
    os.set_blocking(proc.stderr.fileno(), False)
    while time.monotonic() < deadline:
        chunk = proc.stderr.read()
        if chunk:
            seen += chunk
            m = LISTEN_RE.search(seen)
            if m:
                os.set_blocking(proc.stderr.fileno(), True)
                return int(m.group(2))
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.02)  # polling a pipe: the line has no other way to announce itself
    raise GateError("no listening line: " + seen.decode(errors="replace").strip()[-200:])


def syscall_names():
    """{number: name} from the kernel headers (x86-64: asm/unistd_64.h)."""
    names = {}
    for path in UNISTD_PATHS:
        try:
            with open(path) as f:
                for line in f:
                    m = re.match(r"#define __NR_(\w+)\s+(\d+)", line)
                    if m:
                        names[int(m.group(2))] = m.group(1)
        except FileNotFoundError:
            continue
        if names:
            return names
    raise GateError(f"no syscall table in {' or '.join(UNISTD_PATHS)}")


def read_syscalls(path):
    """{name: calls} summed over every thread and process that perf recorded (a call
    counts when it returns: clone3 twice, exit never); calls that failed (EAGAIN and the
    like) count apart, as "name:failed"."""
    done = subprocess.run(["perf", "script", "-i", path, "-F", "event,trace"],
                          capture_output=True, text=True)
    if done.returncode != 0 or "lost" in done.stderr.lower():
        raise GateError("perf script: " + (done.stderr.strip()[-200:] or "failed"))
    if not SYSCALL_NAMES:
        SYSCALL_NAMES.update(syscall_names())
    names = SYSCALL_NAMES
    counts = {}
    for m in RAW_RE.finditer(done.stdout):
        name = names.get(int(m.group(1)), f"syscall_{m.group(1)}")
        if m.group(2).startswith("-"):
            name += ":failed"
        counts[name] = counts.get(name, 0) + 1
    if not counts:
        raise GateError("perf recorded no syscalls")
    return counts


def read_instructions(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise GateError("cachegrind wrote no summary")


def per_request(binary, root, workload, counter, tmp):
    """The counter's figures per request: {syscall: calls} or {"instructions": n}."""
    figures = []
    for n in (SHORT, LONG):
        out = os.path.join(tmp, f"{os.path.basename(binary)}.{workload}.{counter}.{n}")
        run_once(binary, root, workload, n, counter, out)
        figures.append(read_syscalls(out) if counter == "perf"
                       else {"instructions": read_instructions(out)})
    short, long_ = figures
    return {k: (long_.get(k, 0) - short.get(k, 0)) / (LONG - SHORT)
            for k in sorted(set(short) | set(long_))}


# ---------------------------------------------------------------------------------------
# Measuring every server

def servers():
    names = sorted(f for f in os.listdir(BIN_DIR) if os.access(os.path.join(BIN_DIR, f), os.X_OK)) \
        if os.path.isdir(BIN_DIR) else []
    wanted = [n for n in os.environ.get("BENCH_SERVERS", "").split(",") if n and n != "nginx"]
    if wanted:
        names = [n for n in names if n in wanted]
    return names


def measure(names, layers=("syscalls", "instructions"), log=print):
    """{"syscalls": {server: {workload: {name: per_req}}}, "instructions": {server:
    {workload: per_req}}, "errors": {server: message}}."""
    root = make_root()
    tmp = tempfile.mkdtemp(prefix="c10k-detgate-out-")
    # valgrind writes its counts from inside the server, which, started as root, serves
    # as nobody: the directory is writable by all, sticky as /tmp is.
    os.chmod(tmp, 0o1777)
    result = {"syscalls": {}, "instructions": {}, "errors": {}}
    try:
        # Syscalls one server at a time: the counts of epoll_wait and the like depend on
        # timing, which a second server beside it would disturb.
        for s in names if "syscalls" in layers else []:
            t0 = time.monotonic()
            try:
                result["syscalls"][s] = {
                    w: per_request(os.path.join(BIN_DIR, s), root, w, "perf", tmp)
                    for w in WORKLOADS}
            except GateError as e:
                result["errors"][s] = f"under perf: {e}"
            log(f"detgate: {s}: syscalls counted ({time.monotonic() - t0:.1f} s)")
        if "instructions" in layers:
            # Instructions hardly depend on timing (the wakeups in churn aside, which the
            # tolerance allows for): two servers at a time.
            jobs = {}
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
            try:
                for s in names:
                    if s in VALGRIND_SKIP:
                        continue
                    for w in WORKLOADS:
                        jobs[(s, w)] = pool.submit(per_request, os.path.join(BIN_DIR, s), root,
                                                   w, "valgrind", tmp)
                for (s, w), job in jobs.items():
                    try:
                        insns = job.result()["instructions"]
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

def is_wait(name):
    return name.endswith(":failed") or name in WAITS


def floor(name, names):
    """The least tolerance of a syscall: TOL_WAIT for a wait, a failed call, or the
    successful half of a call that sometimes fails (a nonblocking read that finds data
    one time in 25 and nothing the rest: bin/sigio's reads in the idle workload moved
    between 0 and 0.04 per request); TOL_EXACT for the rest."""
    return TOL_WAIT if is_wait(name) or name + ":failed" in names else TOL_EXACT


def make_profile(runs):
    """The committed profile from one or more measurements: the mean of each figure, and
    for each syscall its tolerance: TOL_EXACT (TOL_WAIT for waits and calls that can
    fail: floor()), or
    TOL_SPREAD_FACTOR times the runs' spread if that is more, or None (shown, not judged)
    where the spread is past TOL_TIMING_MAX."""
    prof = {"about": "syscalls and user-space instructions per request; bench/detgate.py "
                     "writes it (make bench-ci-update) and judges against it (make bench-ci)",
            "workloads": {"file": FILE_NAME, "size": FILE_SIZE, "idle_conns": IDLE_CONNS,
                          "short": SHORT, "long": LONG, "runs": len(runs)},
            "tolerance": {"exact": TOL_EXACT, "wait": TOL_WAIT, "spread_factor": TOL_SPREAD_FACTOR,
                          "timing_max": TOL_TIMING_MAX, "instructions": TOL_INSNS},
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
                if abs(mean) < TOL_EXACT / 2 and spread < TOL_EXACT:
                    continue  # absent in effect: a call now and then outside the requests
                tol = max(floor(name, names), TOL_SPREAD_FACTOR * spread)
                ok = spread <= TOL_TIMING_MAX and judged(w, name)
                out[name] = {"per_request": round(mean, 3),
                             "tolerance": round(tol, 3) if ok else None}
            prof["syscalls"][s][w] = out
    for s in sorted({s for r in runs for s in r["instructions"]}):
        prof["instructions"][s] = {}
        for w in WORKLOADS:
            vals = [r["instructions"][s][w] for r in runs if w in r["instructions"].get(s, {})]
            if vals:
                mean = sum(vals) / len(vals)
                spread = (max(vals) - min(vals)) / mean
                prof["instructions"][s][w] = {
                    "per_request": round(mean, 1),
                    "tolerance": round(max(TOL_INSNS_CHURN if w == "churn" else TOL_INSNS,
                                           TOL_SPREAD_FACTOR * spread), 4)}
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
                b = base.get(name, {"per_request": 0.0, "tolerance": None
                                    if not judged(w, name) else
                                    floor(name, set(base) | set(got))})
                g = got.get(name, 0.0)
                delta = g - b["per_request"]
                if b["tolerance"] is None:
                    continue
                if abs(delta) > b["tolerance"] + 1e-9:
                    what = " (new)" if name not in base else " (gone)" if g == 0 else ""
                    fails.append(f"{s}, {w}: {name} {delta:+.2f}/request{what} "
                                 f"({b['per_request']:.2f} -> {g:.2f}, tolerance "
                                 f"{b['tolerance']:.2f})")
        base_i = prof["instructions"].get(s, {})
        for w, g in sorted(now["instructions"].get(s, {}).items()):
            b = base_i.get(w)
            if b is None:
                warns.append(f"{s}, {w}: no instruction profile, run make bench-ci-update")
                continue
            change = g / b["per_request"] - 1
            if abs(change) > b["tolerance"] + 1e-9:
                fails.append(f"{s}, {w}: user-space instructions {change * 100:+.1f}%/request "
                             f"({b['per_request']:,.0f} -> {g:,.0f}, tolerance "
                             f"{b['tolerance'] * 100:.1f}%)")
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
    layers = os.environ.get("DETGATE_LAYERS", "syscalls,instructions").split(",")
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
        layers = ["syscalls", "instructions"]  # a profile is always written whole
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
