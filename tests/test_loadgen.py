#!/usr/bin/env python3
"""test_loadgen.py - checks build/bench/loadgen, the open-loop load generator, for correctness.

- its --selftest (histogram error bound, response parsing), also under ASan+UBSan;
- the last line is one JSON object with the documented keys and consistent counts, for
  keep-alive, --close and Poisson runs; a refused connect is reported and exits 1;
- --merge of two histogram files gives the percentiles of the union of their buckets;
- against httperf (Debian, written elsewhere), both opening one connection per request at
  1,000 req/s against bin/epoll: achieved rates within 2%, p50 within 1.5 ms (httperf's
  latencies come in 1 ms bins). Their p99s are printed, not judged: on this shared machine a
  p99 under light load is scheduling noise, loadgen's 3.8-74 ms and httperf's 4.5-99.5 ms
  over 16 interleaved rounds (docs/loadgen.md);
- coordinated omission: bin/epoll is stopped for 200 ms every second (SIGSTOP/SIGCONT). At
  1,000 req/s over 10 connections, the requests due during a stall wait up to 200 ms, so
  counted from their due time p90 is about 100 ms and p99 about 190 ms. A client that timed
  from the actual send would see only the 10 requests in flight per stall, 1% of them, and a
  p90 near 0.1 ms: the p90 bound catches that. Under the same stalls httperf (open loop too,
  with a new connection per request) and loadgen --close agree closely, the sharp check:
  p90 and p99 within 35% (over 12 rounds they differed by at most 16 ms, 13.5%, and 52 ms,
  20%, that one at load average 61). wrk's figures are printed for comparison, not judged.
- honest books, against a small server in this file that answers only the first N requests
  of each connection: requests never sent before the window closes are in the histogram at
  (window end - due) (p99 near the window's length, not the few answered ones' 0.1 ms);
  every connection carries one request before the schedule (primed), however few requests
  the warm-up and window hold; the JSON line has the steady-state check of both halves.
Plain pytest functions (`pytest-3 tests/test_loadgen.py`). Benchmarks are not tests: the
bounds are wide on purpose.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import fixtures

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BUILD = os.environ.get("BUILD", "build")
LOADGEN = os.path.join(REPO, BUILD, "bench", "loadgen")
LOADGEN_ASAN = os.path.join(REPO, "build-asan", "bench", "loadgen")
SERVER = os.path.join(REPO, "bin", "epoll")
KEYS = ("offered_rps", "achieved_rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
        "mean_ms", "errors", "behind_ms", "client_cpu", "client_bound", "conns", "requests",
        "statuses", "errors_by_kind", "late_sends", "duration_s", "unsent", "conn_waits",
        "late_p999_ms", "primed", "steady")
ERROR_KINDS = ("connect", "read", "write", "timeout", "closed", "parse")

def run(binary, *args, timeout=60):
    """Runs loadgen; returns (exit code, parsed last stdout line or None, stderr)."""
    p = subprocess.run([binary, *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    lines = p.stdout.strip().splitlines()
    try:
        last = json.loads(lines[-1]) if lines else None
    except ValueError:
        last = None
    return p.returncode, last, p.stderr


def load(binary, port, *args):
    code, out, err = run(binary, "--host", "127.0.0.1", "--port", port, *args)
    if code != 0 or out is None:
        print(f"     loadgen {' '.join(map(str, args))}: exit {code}, stderr {err.strip()!r}")
        return {}
    return out


def consistent(out, offered, tolerance):
    """The JSON line is whole and adds up: every answer counted once, none lost."""
    if not out:
        return False
    statuses = sum(out["statuses"].values())
    errors = sum(out["errors_by_kind"][k] for k in ERROR_KINDS)
    return (all(k in out for k in KEYS) and statuses == out["requests"]
            and errors == out["errors"] and out["offered_rps"] == offered
            and abs(out["achieved_rps"] - offered) <= tolerance * offered
            and out["p50_ms"] <= out["p90_ms"] <= out["p99_ms"] <= out["p999_ms"]
            <= out["max_ms"])


# ---- the histogram file, read the way loadgen reads it ------------------------------------

def read_hist(path):
    buckets, fields = {}, {}
    with open(path) as f:
        f.readline()
        for line in f:
            parts = line.split()
            if parts[0] == "bucket":
                buckets[int(parts[1])] = int(parts[2])
            else:
                fields[parts[0]] = float(parts[1])
    return buckets, fields


def bucket_mid(idx, sub=128):
    if idx < 2 * sub:
        return idx
    shift = idx // sub - 1
    return ((sub + idx % sub) << shift) + (1 << shift) // 2


def percentile_ms(buckets, max_ns, pct):
    total = sum(buckets.values())
    rank = max(1, -(-pct * total // 100))
    seen = 0
    for idx in sorted(buckets):
        seen += buckets[idx]
        if seen >= rank:
            return round(min(bucket_mid(idx), max_ns) / 1e6, 3)
    return round(max_ns / 1e6, 3)


# ---- httperf ------------------------------------------------------------------------------

def httperf_close(port, rate, secs):
    """httperf, one connection per request at a fixed rate; returns its rate and p50/p90/p99
    (ms) from its connection-lifetime histogram (1 ms bins, read at their centres), or None.
    httperf picks its own source ports with bind(), so it leaves rate x secs sockets in
    TIME_WAIT and can spin when the port range is full of them: hence the timeout."""
    try:
        out = subprocess.run(["httperf", "--server", "127.0.0.1", "--port", str(port),
                              "--uri", "/index.html", "--rate", str(rate),
                              "--num-conns", str(rate * secs), "--num-calls", "1",
                              "--timeout", "5", "--hog", "-v", "-v"],
                             capture_output=True, text=True, timeout=secs + 20).stdout
    except subprocess.TimeoutExpired:
        print("     httperf did not finish (ephemeral ports all in TIME_WAIT?)")
        return None
    hist = [(float(a), int(b)) for a, b in
            re.findall(r"^\s+(\d+\.5)\s+(\d+)$", out.split("Connection lifetime histogram")[-1],
                       re.M)]
    rate_m = re.search(r"^Request rate: ([\d.]+)", out, re.M)
    if not hist or not rate_m:
        return None
    total = sum(n for _, n in hist)

    def pct(p):
        seen = 0
        for centre, n in hist:
            seen += n
            if seen >= p / 100 * total:
                return centre
        return hist[-1][0]
    return {"rps": float(rate_m[1]), "p50": pct(50), "p90": pct(90), "p99": pct(99)}


# ---- the tests ----------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def built():
    assert os.access(LOADGEN, os.X_OK) and os.access(SERVER, os.X_OK), (
        f"{LOADGEN} and {SERVER} must be built (make all build/bench/loadgen)")


@pytest.fixture(scope="module")
def server():
    """bin/epoll over the integration suite's root and a 1 MiB big.bin, for the module."""
    root, _ = fixtures.build_root()
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
    s = fixtures.Server(SERVER, root, extra_args=["--quiet"], idle_timeout=60)
    try:
        s.start()
        yield s
    finally:
        s.stop()
        fixtures.remove_root(root)


@pytest.fixture
def port(server):
    return server.port


@pytest.fixture
def tmp(tmp_path):
    return str(tmp_path)


def selftest(binary, label):
    p = subprocess.run([binary, "--selftest"], capture_output=True, text=True, timeout=60)
    m = re.search(r"^(\d+) passed, (\d+) failed$", p.stdout, re.M)
    assert p.returncode == 0 and m and int(m[1]) > 0 and m[2] == "0", (
        f"{label}: --selftest (histogram within 1/256, parser split at every byte)")


def test_selftest():
    selftest(LOADGEN, "loadgen")


def test_usage():
    code, _, _ = run(LOADGEN, "--rate", "10")
    assert code == 2, "no --port: exit 2"
    code, _, _ = run(LOADGEN, "--port", "1", "--rate", "10", "--arrivals", "bursty")
    assert code == 2, "unknown --arrivals: exit 2"


def test_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    code, _, err = run(LOADGEN, "--port", port, "--conns", "5", "--rate", "10", "--duration",
                       "0.1")
    assert code == 1 and "5 failed to connect: Connection refused" in err, (
        "nothing listening: the connect failures are reported, exit 1")


def test_json(port):
    out = load(LOADGEN, port, "--conns", "20", "--rate", "500", "--duration", "1",
               "--warmup", "0.2")
    assert (consistent(out, 500, 0.05) and out["requests"] == 500 and out["errors"] == 0
            and out["statuses"]["2xx"] == 500 and out["conns"] == 20), (
        "keep-alive, 500 req/s for 1 s: 500 answers, all 2xx, JSON complete")
    out = load(LOADGEN, port, "--conns", "20", "--rate", "500", "--duration", "1", "--close")
    assert consistent(out, 500, 0.05) and out["statuses"]["2xx"] == 500 and out["errors"] == 0, (
        "--close, 500 req/s for 1 s: 500 answers on new connections")
    out = load(LOADGEN, port, "--conns", "10", "--rate", "200", "--duration", "1",
               "--path", "/missing")
    assert consistent(out, 200, 0.05) and out["statuses"]["4xx"] == 200, (
        "a missing file: every answer counted as 4xx")
    out = load(LOADGEN, port, "--conns", "4", "--rate", "50", "--duration", "1",
               "--path", "/big.bin")
    assert consistent(out, 50, 0.1) and out["statuses"]["2xx"] == 50, (
        "a 1 MiB body: read to its Content-Length, 50 answers")
    out = load(LOADGEN, port, "--conns", "50", "--rate", "1000", "--duration", "2",
               "--arrivals", "poisson", "--seed", "7")
    # 2,000 Poisson arrivals: the count's standard deviation is sqrt(2000) = 2.2%.
    assert consistent(out, 1000, 0.10), "Poisson arrivals: achieved within 10% of offered"


def test_merge(port, tmp):
    a, b = os.path.join(tmp, "a.hist"), os.path.join(tmp, "b.hist")
    out_a = load(LOADGEN, port, "--conns", "10", "--rate", "300", "--duration", "1",
                 "--hist-out", a)
    out_b = load(LOADGEN, port, "--conns", "10", "--rate", "200", "--duration", "1",
                 "--close", "--hist-out", b)
    code, merged, _ = run(LOADGEN, "--merge", a, b)
    assert code == 0 and merged and out_a and out_b, "--merge of two histogram files runs"
    ha, fa = read_hist(a)
    hb, fb = read_hist(b)
    union = {k: ha.get(k, 0) + hb.get(k, 0) for k in set(ha) | set(hb)}
    max_ns = max(fa["max_ns"], fb["max_ns"])
    want = {f"p{p}_ms": percentile_ms(union, max_ns, q)
            for p, q in (("50", 50), ("90", 90), ("99", 99), ("999", 99.9))}
    got = {k: merged[k] for k in want}
    assert got == want, f"--merge: percentiles of the union of the buckets {got} == {want}"
    assert (merged["requests"] == out_a["requests"] + out_b["requests"]
            and merged["offered_rps"] == 500 and merged["conns"] == 20
            and merged["instances"] == 2), (
        "--merge: requests, offered rate and connections add up")
    code, twice, _ = run(LOADGEN, "--merge", a, a)
    assert (code == 0 and twice["requests"] == 2 * out_a["requests"]
            and all(twice[k] == out_a[k] for k in ("p50_ms", "p99_ms", "max_ms"))), (
        "--merge of a file with itself: same percentiles, twice the requests")
    bad = os.path.join(tmp, "bad.hist")
    with open(bad, "w") as f:
        f.write("not a histogram\n")
    code, _, _ = run(LOADGEN, "--merge", bad)
    assert code == 1, "--merge of a file that is not a histogram: exit 1"


def test_start_on_stdin(port):
    """--start-on-stdin: held after the set-up until a line arrives; stdin closed first
    (the harness gone) is no run at all."""
    args = ["--host", "127.0.0.1", "--port", str(port), "--conns", "4", "--rate", "200",
            "--duration", "0.3", "--start-on-stdin"]
    p = subprocess.run([LOADGEN, *args], input="", capture_output=True, text=True, timeout=60)
    assert (p.returncode == 1 and "stdin closed before the start line" in p.stderr
            and not p.stdout.strip()), "--start-on-stdin, stdin closed at once: exit 1, no run"
    p = subprocess.run([LOADGEN, *args], input="go\n", capture_output=True, text=True,
                       timeout=60)
    lines = p.stdout.strip().splitlines()
    assert (p.returncode == 0 and "ready; waiting for the start line" in p.stderr and lines
            and json.loads(lines[-1])["offered_rps"] == 200), (
        "--start-on-stdin, then a line: the ready line, then the run")


def test_split(server):
    """The harness's point split over K loadgen instances (bench/openloop.py): together
    they offer the same rate over the same connections as one, and the merged counts are
    the sums of the instances'."""
    import types

    import openloop

    target = types.SimpleNamespace(port=server.port, name="epoll", model="epoll",
                                   pid=lambda: server.proc.pid, alive=lambda: True,
                                   cores=[0], workers=None)
    cpus = sorted(os.sched_getaffinity(0))
    log = open(os.devnull, "w")
    rows = {}
    for k in (1, 2, 3):
        cfg = types.SimpleNamespace(open_secs=0.5, open_warm=0.1, open_timeout=2.0,
                                    open_connect_timeout=30.0, client_rt=False,
                                    server_cores=[0], client_cores=cpus, client_instances=k,
                                    client_hosts=[], server_addr="127.0.0.1")
        try:
            rows[k] = openloop.run_point(LOADGEN, target, 20, 1000.0, False, cfg, log,
                                         f"split {k}", None)
        except Exception as e:  # noqa: BLE001 (reported as a failed check)
            print(f"     split over {k}: {e!r}")
    log.close()
    for k, row in rows.items():
        parts = row.get("parts") or []
        assert (len(parts) == k and None not in parts
                and abs(row["offered_rps"] - 1000) < 0.2  # the JSON's rounding
                and abs(sum(p["offered_rps"] for p in parts) - 1000) < 0.2
                and sum(p["conns"] for p in parts) == 20
                and row["instances"] == k), (
            f"a point split over {k} instance(s): {k} runs offering 1000 req/s in all "
            "over 20 connections")
        assert (len(parts) == k and None not in parts
                and row["requests"] == sum(p["requests"] for p in parts)
                and row["achieved_rps"] > 0), (
            f"a point split over {k} instance(s): merged requests ({row.get('requests')}) "
            f"= the instances' sum ({[p and p['requests'] for p in parts]})")
    assert len(rows) == 3, f"every split ran ({sorted(rows)} of 1, 2, 3)"


def test_asan(port, tmp):
    assert os.access(LOADGEN_ASAN, os.X_OK), f"{LOADGEN_ASAN} is built (make test builds it)"
    selftest(LOADGEN_ASAN, "ASan")
    h = os.path.join(tmp, "asan.hist")
    clean = True
    for args in (["--conns", "50", "--rate", "1000", "--duration", "1", "--hist-out", h],
                 ["--conns", "20", "--rate", "500", "--duration", "1", "--close"],
                 ["--conns", "4", "--rate", "20", "--duration", "0.5", "--path", "/big.bin"]):
        code, out, err = run(LOADGEN_ASAN, "--port", port, *args)
        clean &= code == 0 and bool(out) and "Sanitizer" not in err and "runtime error" not in err
    code, _, err = run(LOADGEN_ASAN, "--merge", h, h)
    clean &= code == 0 and "Sanitizer" not in err
    assert clean, "ASan+UBSan: keep-alive, --close, 1 MiB bodies and --merge run clean"


def test_httperf(port):
    """Both clients open one connection per request at 1,000 req/s for 2 s."""
    rate, secs = 1000, 2
    assert shutil.which("httperf"), "httperf is installed (make deps)"
    lg = load(LOADGEN, port, "--conns", "400", "--rate", rate, "--duration", secs, "--close")
    hp = httperf_close(port, rate, secs)
    assert lg and hp, "httperf agreement: loadgen --close and httperf both ran"
    print(f"     loadgen: {lg['achieved_rps']:.0f} req/s p50 {lg['p50_ms']:.3f} "
          f"p99 {lg['p99_ms']:.3f} ms; httperf: {hp['rps']:.0f} req/s p50 {hp['p50']} "
          f"p99 {hp['p99']} ms")
    assert abs(lg["achieved_rps"] - hp["rps"]) <= 0.02 * rate, (
        "httperf agreement: achieved rates within 2%")
    assert abs(lg["p50_ms"] - hp["p50"]) <= 1.5, "httperf agreement: p50 within 1.5 ms"
    # p99 is not judged here: at this light load it is the machine's scheduling noise, in
    # either tool (loadgen 3.8-74 ms, httperf 4.5-99.5 ms over 16 rounds). It is judged under
    # the stalls below, where the server sets it.


class Answerer:
    """A keep-alive server that answers the first `limit` requests of each connection (all,
    if None) and then reads on without answering: a server that stalls for good. Counts
    the connections that received at least one request."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self, limit=None):
        self.limit, self.touched, self.lock = limit, 0, threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        answered, buf = 0, b""
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    if answered == 0:
                        with self.lock:
                            self.touched += 1
                    if self.limit is None or answered < self.limit:
                        conn.sendall(self.ANSWER)
                    answered += 1

    def close(self):
        self.sock.close()


def test_books():
    stalled = Answerer(limit=1)
    try:
        out = load(LOADGEN, stalled.port, "--conns", "5", "--rate", "200", "--duration", "1",
                   "--timeout", "2")
    finally:
        stalled.close()
    if not out:
        assert False, "books: loadgen ran against a server that stops answering"
    else:
        print(f"     a server that stops answering: {out['requests']} answers, "
              f"{out['unsent']} unsent, {out['errors']} errors, p50 {out['p50_ms']:.1f} "
              f"p99 {out['p99_ms']:.1f} ms")
        assert out["unsent"] >= 150 and out["p99_ms"] >= 500 and out["p50_ms"] >= 200, (
            "books: requests never sent are in the histogram at (window end - due): "
            "p50 >= 200 ms, p99 >= 500 ms")
        assert out["errors_by_kind"]["timeout"] == 5 and out["requests"] == 0, (
            "books: the 5 sent and never answered (within --timeout 2 s) are timeouts; "
            "no answers in the window")
        assert out.get("steady", {}).get("answers") == [0, 0], (
            "books: the steady-state check counts answers in both halves")
    fine = Answerer()
    try:
        out = load(LOADGEN, fine.port, "--conns", "200", "--rate", "50", "--duration", "0.5",
                   "--warmup", "0.1")
        touched = fine.touched
    finally:
        fine.close()
    assert out and out.get("primed") == 200 and touched == 200 and out["requests"] == 25, (
        f"books: 30 scheduled requests over 200 connections, yet every connection carried "
        f"one (primed {out.get('primed')}, the server saw {touched})")
    assert (out and out.get("steady", {}).get("ok") is True
            and sum(out["steady"]["answers"]) == out["window_answers"]), (
        "books: a steady server passes the steady-state check, both halves add up")


class Staller:
    """Stops a process for 200 ms of every second until stopped itself."""

    def __init__(self, pid):
        self.pid, self.done = pid, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.done.is_set():
            os.kill(self.pid, signal.SIGSTOP)
            time.sleep(0.2)
            os.kill(self.pid, signal.SIGCONT)
            self.done.wait(0.8)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        os.kill(self.pid, signal.SIGCONT)


def test_stall(server):
    port, secs = server.port, 3
    with Staller(server.proc.pid):
        out = load(LOADGEN, port, "--conns", "10", "--rate", "1000", "--duration", secs)
        churn = load(LOADGEN, port, "--conns", "400", "--rate", "1000", "--duration", secs,
                     "--close")
        hp = httperf_close(port, 1000, secs) if shutil.which("httperf") else None
        wrk = None
        if shutil.which("wrk"):
            wrk = subprocess.run(["wrk", "-t1", "-c10", f"-d{secs}s", "--latency",
                                  f"http://127.0.0.1:{port}/index.html"],
                                 capture_output=True, text=True, timeout=60).stdout
    assert out, "stall: loadgen ran against the stalling server"
    print(f"     loadgen, 200 ms stall every second: p50 {out['p50_ms']:.3f} p90 "
          f"{out['p90_ms']:.1f} p99 {out['p99_ms']:.1f} max {out['max_ms']:.1f} ms, "
          f"{out['conn_waits']} waited for a connection")
    assert out["p99_ms"] >= 100, "stall: p99 >= 100 ms (about 190 expected)"
    assert out["p90_ms"] >= 30, (
        "stall: p90 >= 30 ms (about 100 expected; timing from the send would give ~0.1)")
    assert out["max_ms"] < 1000 and out["errors"] == 0, "stall: no errors, max below 1 s"
    if churn and hp:
        print(f"     --close: p90 {churn['p90_ms']:.1f} p99 {churn['p99_ms']:.1f} ms; "
              f"httperf: p90 {hp['p90']} p99 {hp['p99']} ms")
        assert abs(churn["p90_ms"] - hp["p90"]) <= 0.35 * max(churn["p90_ms"], hp["p90"]), (
            "stall, httperf agreement: p90 within 35%")
        assert abs(churn["p99_ms"] - hp["p99"]) <= 0.35 * max(churn["p99_ms"], hp["p99"]), (
            "stall, httperf agreement: p99 within 35%")
    else:
        assert False, "stall: loadgen --close and httperf both ran"
    if wrk:
        dist = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", wrk, re.M))
        rps = re.search(r"^Requests/sec:\s+(\S+)", wrk, re.M)
        print(f"     wrk -c10 (closed loop, corrected after the fact), same stalls: "
              f"{rps[1] if rps else '?'} req/s, p50 {dist.get('50')} p90 {dist.get('90')} "
              f"p99 {dist.get('99')}")
    stalled_p90 = out["p90_ms"]
    out = load(LOADGEN, port, "--conns", "10", "--rate", "1000", "--duration", "2")
    assert out and out["p90_ms"] < stalled_p90 / 2, (
        f"no stall: p90 {out.get('p90_ms')} ms, under half the stalled one (the same run "
        "without SIGSTOP)")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__] + sys.argv[1:]))
