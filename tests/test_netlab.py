#!/usr/bin/env python3
"""test_netlab.py - the bench on a lab of three hosts made of network namespaces.

    python3 tests/test_netlab.py

A server host and two client hosts, each a network namespace of its own, joined by veth
pairs; the server's address 10.77.0.1 sits on its loopback, each client reaches it over
its own link (10.77.1.0/24, 10.77.2.0/24). Nothing is configured outside these namespaces,
and they are deleted at the end, also after a failure. The bench reaches the hosts through
`ip netns exec NS` (BENCH_SERVER_HOST, BENCH_CLIENT_HOSTS), as it would through ssh.

    lab run   bench.py quick, reduced to bin/epoll and nginx, the open loop only (wrk and
              the idle sweep run beside the harness), one loadgen per client host: every
              output file is written, env.txt names the three hosts, each point was offered
              by two instances and its merged request count is the sum of theirs
    Ctrl-C    SIGINT to the harness while a point runs: it exits, and no process is left in
              any of the namespaces (`ip netns pids`)

Needs root (namespaces, veth); skipped with a message otherwise. About 1 min. Ends with
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
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
TAG = os.getpid() % 100000
SERVER_NS = f"c10k-srv-{TAG}"
CLIENT_NS = [f"c10k-cli{i}-{TAG}" for i in (1, 2)]
SERVER_ADDR = "10.77.0.1"
RUN_TIMEOUT_S = 300

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


def lab_env(**extra):
    env = dict(os.environ, BUILD=BUILD, BENCH_SERVERS="epoll", BENCH_PEERS="nginx",
               BENCH_CONNS="", BENCH_IDLE="", BENCH_OPEN_CONNS="100", BENCH_OPEN_REPS="1",
               BENCH_FRACTIONS="0.25,0.5", BENCH_CEILING="4000", BENCH_OPEN_SECS="0.4",
               BENCH_OPEN_WARMUP="0.1", BENCH_PERF="0", BENCH_BUDGET="0",
               BENCH_SYSCTL="0",  # the host's own sysctls stay as they are
               BENCH_SERVER_HOST=f"ip netns exec {SERVER_NS}",
               BENCH_CLIENT_HOSTS=",".join(f"ip netns exec {ns}" for ns in CLIENT_NS),
               BENCH_SERVER_ADDR=SERVER_ADDR)
    env.update(extra)
    return env


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


def test_run():
    p = harness(lab_env())
    try:
        output, _ = p.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        output, _ = p.communicate()
    d = run_dir(output)
    check(p.returncode == 0 and d is not None,
          f"bench quick in the lab exits 0 (exit {p.returncode})")
    if p.returncode != 0 or d is None:
        print(output[-3000:])
        return
    want = ["openloop.csv", "summary.md", "env.txt", "logs/config.json", "logs/loadgen.log",
            "cpu_per_request_c100.png", "p99_latency_c100.png", "achieved_vs_offered_c100.png",
            "plots/cpu_per_request_c100.gp"]
    missing = [f for f in want if not os.path.exists(os.path.join(d, f))]
    check(not missing, f"every output file written (missing: {missing or 'none'})")
    with open(os.path.join(d, "env.txt")) as f:
        env_txt = f.read()
    hosts = [("server host", SERVER_NS)] + \
        [(f"client host {i}", ns) for i, ns in enumerate(CLIENT_NS, 1)]
    named = [re.search(rf"^{what}:\s+ip netns exec {ns}: kernel \S+.* via \S+", env_txt,
                       re.M) for what, ns in hosts]
    check(all(named), "env.txt names the server host and both client hosts, their kernel "
          f"and the path to the server ({[m and m[0] for m in named]})")
    with open(os.path.join(d, "openloop.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    servers = {r["server"] for r in rows}
    check(rows and all(r.get("instances") == "2" for r in rows) and {"epoll", "nginx"} <= servers,
          f"every point offered by two instances, one per client host ({len(rows)} points, "
          f"servers {sorted(servers)})")
    ok = [r for r in rows if r["status"] == "ok"]
    check(ok and all(r["cpu_us_per_req"] for r in ok),
          f"the server's CPU read through the lab's shared /proc ({len(ok)} points met the SLO)")
    with open(os.path.join(d, "logs", "loadgen.log")) as f:
        blocks = merged_blocks(f.read())
    good = [m == sum(parts) and len(parts) == 2 for m, parts in blocks]
    check(blocks and all(good),
          f"merged request counts equal the sum of the instances' ({sum(good)} of "
          f"{len(blocks)} points; first: {blocks[:1]})")
    check(not any(ns_pids(ns) for ns in [SERVER_NS] + CLIENT_NS),
          "nothing left running in the namespaces after the run")
    shutil.rmtree(d, ignore_errors=True)


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
        test_run()
        test_ctrl_c()
    finally:
        remove_lab()
    check(not any(os.path.exists(f"/run/netns/{ns}") for ns in [SERVER_NS] + CLIENT_NS),
          "the lab's namespaces are gone")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
