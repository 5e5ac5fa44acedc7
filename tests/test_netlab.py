#!/usr/bin/env python3
"""test_netlab.py - the bench on a lab of three hosts made of network namespaces.

    python3 tests/test_netlab.py

A server host and two client hosts, each a network namespace of its own, joined by veth
pairs; the server's address 10.77.0.1 sits on its loopback, each client reaches it over
its own link (10.77.1.0/24, 10.77.2.0/24). Nothing is configured outside these namespaces,
and they are deleted at the end, also after a failure. The bench reaches the hosts through
`ip netns exec NS` (BENCH_SERVER_HOST, BENCH_CLIENT_HOSTS), as it would through ssh.

    lab run   bench.py quick, reduced to bin/epoll and nginx and short windows, every phase:
              the open loop with one loadgen per client host, the closed loop (wrk on the
              first client host), the idle sweep (idlers on both): the same output files
              and summary.md sections as the same run made here without hosts, env.txt
              names the three hosts, each open-loop point was offered by two instances and
              its merged request count is the sum of theirs, the server's CPU was read on
              the server host through its prefix (a prefix that logs what it is given:
              two reads per measured window, no more)
    readings  a busy process started through a prefix: the CPU read through the prefix
              (the cgroup made there, or per process in the namespace) equals the one read
              here, within 20 ms
    missing   a client host without loadgen: the run stops at once, before any server
              starts, naming the host and the command to run there
    Ctrl-C    SIGINT to the harness while a point runs: it exits, and no process is left in
              any of the namespaces (`ip netns pids`)

Needs root (namespaces, veth); skipped with a message otherwise. About 30 s. Ends with
"N passed, M failed" (", 1 skipped" when it cannot run).
"""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

BUILD = os.environ.get("BUILD", "build")
TAG = os.getpid() % 100000
SERVER_NS = f"c10k-srv-{TAG}"
CLIENT_NS = [f"c10k-cli{i}-{TAG}" for i in (1, 2)]
SERVER_ADDR = "10.77.0.1"
RUN_TIMEOUT_S = 300
PREFIX_LOG = os.path.join(tempfile.gettempdir(), f"c10k-netlab-{os.getpid()}.prefix.log")
# A prefix that logs each command it is given, one line, then runs it.
LOGGING = ["sh", "-c", f'printf "%s\\n" "$*" >> {PREFIX_LOG}; exec "$@"', "c10k-log"]

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {what}", flush=True)
    else:
        failed += 1
        print(f"FAIL {what}", flush=True)


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def ns_pids(ns):
    p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30)
    return [int(x) for x in p.stdout.split()]


def make_lab():
    """The three namespaces and their links; raises on the first step that fails."""
    for ns in [SERVER_NS] + CLIENT_NS:
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", SERVER_NS, "addr", "add", f"{SERVER_ADDR}/32", "dev", "lo")
    for i, ns in enumerate(CLIENT_NS, 1):
        near, far = f"c10k{i}s{TAG}"[:15], f"c10k{i}c{TAG}"[:15]
        ip("link", "add", near, "netns", SERVER_NS, "type", "veth", "peer", "name", far,
           "netns", ns)
        ip("-n", SERVER_NS, "addr", "add", f"10.77.{i}.1/24", "dev", near)
        ip("-n", ns, "addr", "add", f"10.77.{i}.2/24", "dev", far)
        ip("-n", SERVER_NS, "link", "set", near, "up")
        ip("-n", ns, "link", "set", far, "up")
        ip("-n", ns, "route", "add", f"{SERVER_ADDR}/32", "via", f"10.77.{i}.1")


def remove_lab():
    """Stops whatever is left in the namespaces (by pid) and deletes them (their veth
    pairs go with them)."""
    for ns in [SERVER_NS] + CLIENT_NS:
        for pid in ns_pids(ns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def local_env(**extra):
    """bench quick reduced to two servers and short windows, every phase; here."""
    env = dict(os.environ, BUILD=BUILD, BENCH_SERVERS="epoll", BENCH_PEERS="nginx",
               BENCH_CONNS="50", BENCH_SECS="0.3", BENCH_WARMUP="0.1", BENCH_IDLE="100",
               BENCH_IDLE_SECS="0.3", BENCH_OPEN_CONNS="100", BENCH_OPEN_REPS="1",
               BENCH_FRACTIONS="0.5", BENCH_CEILING="4000", BENCH_OPEN_SECS="0.4",
               BENCH_OPEN_WARMUP="0.1", BENCH_PERF="0", BENCH_BUDGET="0",
               BENCH_SYSCTL="0")  # the host's own sysctls stay as they are
    for k in ("BENCH_SERVER_HOST", "BENCH_CLIENT_HOSTS", "BENCH_SERVER_ADDR"):
        env.pop(k, None)
    env.update(extra)
    return env


def lab_env(**extra):
    """local_env() on the lab's hosts; the server's prefix logs what it is given."""
    import shlex

    return local_env(BENCH_SERVER_HOST=shlex.join(LOGGING + ["ip", "netns", "exec",
                                                             SERVER_NS]),
                     BENCH_CLIENT_HOSTS=",".join(f"ip netns exec {ns}" for ns in CLIENT_NS),
                     BENCH_SERVER_ADDR=SERVER_ADDR, **extra)


def harness(env):
    return subprocess.Popen([sys.executable, os.path.join(REPO, "bench", "bench.py"), "quick"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run_dir(output):
    """The run's directory, from the harness's first line ("bench: RUN_ID: N servers")."""
    m = re.search(r"^bench: (\S+): \d+ servers", output, re.M)
    return os.path.join(REPO, "results", m[1]) if m else None


def merged_blocks(log_text):
    """[(merged requests, [each instance's requests])] from loadgen.log: every instance's
    JSON line, then the merged one."""
    out, parts = [], []
    for block in re.split(r"^==== ", log_text, flags=re.M)[1:]:
        jsons = [json.loads(line) for line in block.splitlines() if line.startswith("{")]
        if block.startswith("merged "):
            out.append((jsons[-1]["requests"] if jsons else None, parts))
            parts = []
        elif jsons:
            parts.append(jsons[-1]["requests"])
    return out


def start_bench(env):
    """bench.py quick, started; returns once it has made its run directory."""
    p = harness(env)
    p.first = p.stdout.readline()  # "bench: RUN_ID: N servers" (or why it stopped)
    return p


def run_bench(p, what):
    """Waits for a start_bench() to end: its run directory, or None (said why)."""
    try:
        output, _ = p.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        output, _ = p.communicate()
    output = p.first + output
    d = run_dir(output)
    check(p.returncode == 0 and d is not None, f"bench quick {what} exits 0 (exit {p.returncode})")
    if p.returncode != 0 or d is None:
        print(output[-3000:])
        return None
    return d


def outputs(d):
    """(every file a run wrote but its logs, the "##" and "###" headings of summary.md)."""
    files = sorted(os.path.relpath(os.path.join(top, f), d) for top, _, fs in os.walk(d)
                   for f in fs if not os.path.relpath(top, d).startswith("logs"))
    with open(os.path.join(d, "summary.md")) as f:
        heads = [line.strip() for line in f if line.startswith("##")
                 and line.strip() not in ("## Notes", "## Failures")]
    return files, heads


def test_run():
    # The reference runs at the same time as the lab's (they share the cores; no figure
    # of either is judged here), started first so that their run directories differ.
    if os.path.exists(PREFIX_LOG):
        os.remove(PREFIX_LOG)
    ref = start_bench(local_env())
    d = run_bench(start_bench(lab_env()), "in the lab")
    local = run_bench(ref, "here (the reference)")
    if d is None or local is None:
        return
    (want, want_heads), (got, got_heads) = outputs(local), outputs(d)
    check(want == got and {"results.csv", "idle.csv", "openloop.csv"} <= set(got),
          f"the same {len(want)} output files as the run here (only here: "
          f"{sorted(set(want) - set(got))}, only in the lab: {sorted(set(got) - set(want))})")
    check(want_heads == got_heads and want_heads,
          f"summary.md has the same {len(want_heads)} sections as the run here "
          f"({want_heads if want_heads != got_heads else 'same'} / {got_heads})")
    with open(os.path.join(d, "env.txt")) as f:
        env_txt = f.read()
    hosts = [("server host", SERVER_NS)] + \
        [(f"client host {i}", ns) for i, ns in enumerate(CLIENT_NS, 1)]
    named = [re.search(rf"^{what}:\s+.*ip netns exec {ns}: kernel \S+.* via \S+", env_txt,
                       re.M) for what, ns in hosts]
    check(all(named), "env.txt names the server host and both client hosts, their kernel "
          f"and the path to the server ({[m and m[0] for m in named]})")
    with open(os.path.join(d, "openloop.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    servers = {r["server"] for r in rows}
    check(rows and all(r.get("instances") == "2" for r in rows) and {"epoll", "nginx"} <= servers,
          f"every point offered by two instances, one per client host ({len(rows)} points, "
          f"servers {sorted(servers)})")
    measured = [r for r in rows if r["cpu_us_per_req"]]
    closed = [r for name in ("results.csv", "idle.csv")
              for r in csv.DictReader(open(os.path.join(d, name), newline=""))]
    with open(PREFIX_LOG) as f:
        edge_reads = [line for line in f if "head -v" in line and "/proc/stat" in line]
    windows = len([r for r in rows if r.get("window_s")]) + len(closed)
    read = re.search(r"^server CPU read:\s+on the server host through its prefix", env_txt, re.M)
    check(measured and closed and all(r["cpu_us_per_req"] for r in closed) and read
          and len(edge_reads) == 2 * windows,
          f"the server's CPU read through the server host's prefix, two reads per window "
          f"({len(measured)} of {len(rows)} open-loop points with a CPU figure, "
          f"{len(closed)} closed-loop points, "
          f"{len(edge_reads)} reads for {windows} windows; env.txt: {read and read[0]})")
    idle = list(csv.DictReader(open(os.path.join(d, "idle.csv"), newline="")))
    held = [r for r in idle if r["idle"] != "0"]
    check(held and all(r["idle_open"] == r["idle"] and r["idle_kept"] == r["idle"]
                       for r in held),
          f"idlers on both client hosts held every idle connection and said so at the end "
          f"({[(r['server'], r['idle_open'], r['idle_kept']) for r in held]})")
    with open(os.path.join(d, "logs", "loadgen.log")) as f:
        blocks = merged_blocks(f.read())
    good = [m == sum(parts) and len(parts) == 2 for m, parts in blocks]
    check(blocks and all(good),
          f"merged request counts equal the sum of the instances' ({sum(good)} of "
          f"{len(blocks)} points; first: {blocks[:1]})")
    check(not any(ns_pids(ns) for ns in [SERVER_NS] + CLIENT_NS),
          "nothing left running in the namespaces after the run")
    shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(local, ignore_errors=True)


def test_readings():
    """The server's CPU read through a prefix equals the one read here: through a prefix
    that runs here (the cgroup made through it), and through the server's namespace (per
    process: `ip netns exec` mounts a /sys of its own, without cgroups)."""
    try:
        import hostproc
        import measure
        import procs
    except ImportError as e:
        check(False, f"the harness reads a server on another host ({e})")
        return
    busy = [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 5: pass"]
    for what, prefix in (("a prefix here", LOGGING), ("the server namespace",
                                                       ["ip", "netns", "exec", SERVER_NS])):
        host = hostproc.ServerHost(prefix, f"c10k-netlab-{os.getpid()}")
        p = procs.spawn(busy, host=prefix, wrap=host.wrap(), stdout=subprocess.PIPE)
        try:
            pid = int(p.stdout.readline().split()[1])
            tree = host.edge_tree(pid)
            edges = []
            for _ in range(2):
                remote = measure.Snapshot(pid, tree, remote=host)
                local = measure.Snapshot(pid, [pid])
                edges.append((remote, local))
                time.sleep(0.3)
            got = edges[0][0].cpu_s(edges[1][0])
            here = edges[0][1].cpu_s(edges[1][1])
            check(abs(got - here) < 0.02 and got > 0,
                  f"through {what} ({host.kind or 'per process'}): {got:.3f} s of CPU read "
                  f"there, {here:.3f} s here")
        finally:
            procs.stop(p)
            host.remove()


def test_missing():
    t0 = time.monotonic()
    p = harness(lab_env(BENCH_LOADGEN="/nonexistent/loadgen"))
    output, _ = p.communicate(timeout=60)
    check(p.returncode != 0 and "client host 1" in output and "/nonexistent/loadgen" in output
          and "make -C" in output and "bench-tools" in output and run_dir(output) is None,
          f"a client host without loadgen: stopped at once ({time.monotonic() - t0:.1f} s, "
          f"exit {p.returncode}), naming it and the command: {output.strip()[-300:]}")


def test_ctrl_c():
    # Long windows, so that SIGINT lands while the server and the loadgens run.
    p = harness(lab_env(BENCH_OPEN_SECS="5", BENCH_FRACTIONS="0.25,0.5,0.9"))
    deadline = time.monotonic() + 60
    running = False
    while time.monotonic() < deadline and p.poll() is None:
        if ns_pids(SERVER_NS) and all(ns_pids(ns) for ns in CLIENT_NS):
            running = True
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    try:
        output, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        output, _ = p.communicate()
    check(running, "a lab run had processes in every namespace before the SIGINT")
    left = {ns: ns_pids(ns) for ns in [SERVER_NS] + CLIENT_NS}
    check(p.returncode == 130 and not any(left.values()),
          f"SIGINT: the harness exits 130 (exit {p.returncode}) leaving no process in any "
          f"namespace ({left})")
    d = run_dir(output)
    if d:
        shutil.rmtree(d, ignore_errors=True)


def main():
    tools = [os.path.join(REPO, BUILD, "bench", t) for t in ("loadgen", "floor")] + \
        [os.path.join(REPO, "bin", "epoll")]
    if os.geteuid() != 0:
        print("skipped: the lab needs root (network namespaces and veth pairs); "
              "run as root, as CI does")
        print("0 passed, 0 failed, 1 skipped")
        return 0
    missing = [t for t in tools if not os.access(t, os.X_OK)]
    if missing or not shutil.which("ip"):
        print(f"FAIL needs {missing or 'ip (iproute2)'} (make all build/bench/loadgen "
              "build/bench/floor)")
        print("0 passed, 1 failed")
        return 1
    try:
        make_lab()
    except (subprocess.CalledProcessError, OSError) as e:
        remove_lab()
        err = getattr(e, "stderr", "") or e
        print(f"skipped: cannot build the lab here ({str(err).strip()})")
        print("0 passed, 0 failed, 1 skipped")
        return 0
    try:
        test_missing()
        test_readings()
        test_run()
        test_ctrl_c()
    finally:
        remove_lab()
        if os.path.exists(PREFIX_LOG):
            os.remove(PREFIX_LOG)
    check(not any(os.path.exists(f"/run/netns/{ns}") for ns in [SERVER_NS] + CLIENT_NS),
          "the lab's namespaces are gone")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
