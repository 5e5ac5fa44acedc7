#!/usr/bin/env python3
"""test_netlab.py - the bench on a lab of three hosts made of network namespaces.

    pytest-3 tests/test_netlab.py

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

Needs root (namespaces, veth); skipped with a message otherwise. About 30 s. Plain pytest
functions on one lab (a module fixture); each lab run is made once and its outputs are
checked one test per property.
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

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BUILD = os.environ.get("BUILD", "build")
TAG = os.getpid() % 100000
SERVER_NS = f"c10k-srv-{TAG}"
CLIENT_NS = [f"c10k-cli{i}-{TAG}" for i in (1, 2)]
SERVER_ADDR = "10.77.0.1"
RUN_TIMEOUT_S = 300
PREFIX_LOG = os.path.join(tempfile.gettempdir(), f"c10k-netlab-{os.getpid()}.prefix.log")
# A prefix that logs each command it is given, one line, then runs it.
LOGGING = ["sh", "-c", f'printf "%s\\n" "$*" >> {PREFIX_LOG}; exec "$@"', "c10k-log"]

if os.geteuid() != 0:
    pytest.skip("the lab needs root (network namespaces and veth pairs); run as root, as CI "
                "does", allow_module_level=True)


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


def run_bench(p):
    """Waits for a start_bench() to end: (exit status, its run directory or None, output)."""
    try:
        output, _ = p.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        output, _ = p.communicate()
    output = p.first + output
    return p.returncode, run_dir(output), output


def outputs(d):
    """(every file a run wrote but its logs, the "##" and "###" headings of summary.md)."""
    files = sorted(os.path.relpath(os.path.join(top, f), d) for top, _, fs in os.walk(d)
                   for f in fs if not os.path.relpath(top, d).startswith("logs"))
    with open(os.path.join(d, "summary.md")) as f:
        heads = [line.strip() for line in f if line.startswith("##")
                 and line.strip() not in ("## Notes", "## Failures")]
    return files, heads


@pytest.fixture(scope="module", autouse=True)
def lab():
    """The three namespaces, deleted at the end (also after a failure)."""
    tools = [os.path.join(REPO, BUILD, "bench", t) for t in ("loadgen", "floor")] + \
        [os.path.join(REPO, "bin", "epoll")]
    missing = [t for t in tools if not os.access(t, os.X_OK)]
    if missing or not shutil.which("ip"):
        pytest.fail(f"needs {missing or 'ip (iproute2)'} (make all build/bench/loadgen "
                    "build/bench/floor)")
    try:
        make_lab()
    except (subprocess.CalledProcessError, OSError) as e:
        remove_lab()
        err = getattr(e, "stderr", "") or e
        pytest.skip(f"cannot build the lab here ({str(err).strip()})")
    try:
        yield
    finally:
        remove_lab()
        if os.path.exists(PREFIX_LOG):
            os.remove(PREFIX_LOG)


def test_missing():
    """A client host without loadgen: the run stops at once, naming it and the command."""
    t0 = time.monotonic()
    p = harness(lab_env(BENCH_LOADGEN="/nonexistent/loadgen"))
    output, _ = p.communicate(timeout=60)
    assert p.returncode != 0 and "client host 1" in output and "/nonexistent/loadgen" in output \
        and "make -C" in output and "bench-tools" in output and run_dir(output) is None, \
        f"({time.monotonic() - t0:.1f} s, exit {p.returncode}): {output.strip()[-300:]}"


@pytest.mark.parametrize("what, prefix", [("a prefix here", LOGGING),
                                          ("the server namespace",
                                           ["ip", "netns", "exec", SERVER_NS])],
                         ids=["here", "namespace"])
def test_readings(what, prefix):
    """The server's CPU read through a prefix equals the one read here: through a prefix
    that runs here (the cgroup made through it), and through the server's namespace (per
    process: `ip netns exec` mounts a /sys of its own, without cgroups)."""
    import hostproc
    import measure
    import procs

    busy = [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 5: pass"]
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
        assert abs(got - here) < 0.02 and got > 0, \
            f"through {what} ({host.kind or 'per process'}): {got:.3f} s of CPU read " \
            f"there, {here:.3f} s here"
    finally:
        procs.stop(p)
        host.remove()


@pytest.fixture(scope="module")
def runs():
    """bench quick in the lab and here: {"lab"|"here": (exit status, run dir, output)}.
    The reference runs at the same time as the lab's (they share the cores; no figure of
    either is judged here), started first so that their run directories differ."""
    if os.path.exists(PREFIX_LOG):
        os.remove(PREFIX_LOG)
    ref = start_bench(local_env())
    got = {"lab": run_bench(start_bench(lab_env())), "here": run_bench(ref)}
    yield got
    for _, d, _ in got.values():
        if d:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def both(runs):
    """The lab run's directory and the reference's; fails when either run did."""
    if any(rc != 0 or d is None for rc, d, _ in runs.values()):
        pytest.fail("a bench quick run failed (see test_bench_exits_0)")
    return runs["lab"][1], runs["here"][1]


@pytest.mark.parametrize("where", ["lab", "here"])
def test_bench_exits_0(runs, where):
    rc, d, output = runs[where]
    assert rc == 0 and d is not None, f"bench quick exit {rc}:\n{output[-3000:]}"


def test_same_files(both):
    d, local = both
    (want, _), (got, _) = outputs(local), outputs(d)
    assert want == got and {"results.csv", "idle.csv", "openloop.csv"} <= set(got), \
        f"only here: {sorted(set(want) - set(got))}, only in the lab: {sorted(set(got) - set(want))}"


def test_same_sections(both):
    d, local = both
    (_, want_heads), (_, got_heads) = outputs(local), outputs(d)
    assert want_heads and want_heads == got_heads, "summary.md's sections, here / in the lab"


def env_txt(d):
    with open(os.path.join(d, "env.txt")) as f:
        return f.read()


def test_env_names_hosts(both):
    """env.txt names the server host and both client hosts, their kernel and the path to
    the server."""
    text = env_txt(both[0])
    hosts = [("server host", SERVER_NS)] + \
        [(f"client host {i}", ns) for i, ns in enumerate(CLIENT_NS, 1)]
    named = [re.search(rf"^{what}:\s+.*ip netns exec {ns}: kernel \S+.* via \S+", text, re.M)
             for what, ns in hosts]
    assert all(named), [m and m[0] for m in named]


def openloop_rows(d):
    with open(os.path.join(d, "openloop.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_two_instances(both):
    """Every point offered by two instances, one per client host."""
    rows = openloop_rows(both[0])
    servers = {r["server"] for r in rows}
    assert rows and all(r.get("instances") == "2" for r in rows) \
        and {"epoll", "nginx"} <= servers, f"{len(rows)} points, servers {sorted(servers)}"


def test_cpu_read_through_prefix(both):
    """The server's CPU read through the server host's prefix, two reads per window."""
    d = both[0]
    rows = openloop_rows(d)
    measured = [r for r in rows if r["cpu_us_per_req"]]
    closed = [r for name in ("results.csv", "idle.csv")
              for r in csv.DictReader(open(os.path.join(d, name), newline=""))]
    with open(PREFIX_LOG) as f:
        edge_reads = [line for line in f if "head -v" in line and "/proc/stat" in line]
    windows = len([r for r in rows if r.get("window_s")]) + len(closed)
    read = re.search(r"^server CPU read:\s+on the server host through its prefix", env_txt(d),
                     re.M)
    assert measured and closed and all(r["cpu_us_per_req"] for r in closed) and read \
        and len(edge_reads) == 2 * windows, \
        f"{len(measured)} of {len(rows)} open-loop points with a CPU figure, " \
        f"{len(closed)} closed-loop points, {len(edge_reads)} reads for {windows} windows; " \
        f"env.txt: {read and read[0]}"


def test_idlers_held(both):
    """Idlers on both client hosts held every idle connection and said so at the end."""
    idle = list(csv.DictReader(open(os.path.join(both[0], "idle.csv"), newline="")))
    held = [r for r in idle if r["idle"] != "0"]
    assert held and all(r["idle_open"] == r["idle"] and r["idle_kept"] == r["idle"]
                        for r in held), \
        [(r["server"], r["idle_open"], r["idle_kept"]) for r in held]


def test_merged_counts(both):
    """Merged request counts equal the sum of the instances'."""
    with open(os.path.join(both[0], "logs", "loadgen.log")) as f:
        blocks = merged_blocks(f.read())
    good = [m == sum(parts) and len(parts) == 2 for m, parts in blocks]
    assert blocks and all(good), f"{sum(good)} of {len(blocks)} points; first: {blocks[:1]}"


def test_nothing_left_after_run(runs):
    left = {ns: ns_pids(ns) for ns in [SERVER_NS] + CLIENT_NS}
    assert not any(left.values()), left


@pytest.fixture(scope="module")
def interrupted():
    """SIGINT to a lab run while a point runs: (every namespace had processes before it,
    the harness's exit status, the pids left in each namespace)."""
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
    left = {ns: ns_pids(ns) for ns in [SERVER_NS] + CLIENT_NS}
    yield running, p.returncode, left
    d = run_dir(output)
    if d:
        shutil.rmtree(d, ignore_errors=True)


def test_ctrl_c_while_running(interrupted):
    assert interrupted[0], "a lab run had processes in every namespace before the SIGINT"


def test_ctrl_c_leaves_nothing(interrupted):
    _, rc, left = interrupted
    assert rc == 130 and not any(left.values()), \
        f"SIGINT: the harness exits 130 (exit {rc}) leaving no process in any namespace ({left})"


def test_namespaces_gone():
    """Last: the lab's namespaces are gone once it is removed (the fixture removes it
    again, harmlessly)."""
    remove_lab()
    assert not any(os.path.exists(f"/run/netns/{ns}") for ns in [SERVER_NS] + CLIENT_NS)
