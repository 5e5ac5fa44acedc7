#!/usr/bin/env python3
"""ab.py - bin/uring and bin/corouring sending large file bodies three ways, measured
against each other inside the servers (README.md here says why this is not in them).

    python3 bench/experiments/send_zc/ab.py [--conns 10] [--rate 400] [--secs 4]
                                            [--rounds 5] [--path /1m.bin] [--out DIR]
                                            [--base COMMIT] [--user USER]

Builds the servers with send-zc.patch applied (a git worktree of BASE, the commit it was
made against, under DIR), then in
interleaved rounds runs each server three ways, chosen by C10K_FILE_SEND: splice (as the
servers are), zc (the file mapped, SEND_ZC of at most 256 KiB per operation) and copy (the
file mapped, a plain SEND). Each run: the server on CPU 0, build/bench/loadgen on CPU 1,
open loop at --rate over --conns keep-alive connections for --path; the server's CPU and
context switches (every thread, io-wq workers included, read as the bench reads them:
measure.Snapshot) over a window that starts 0.5 s after the load does. Prints each way's server CPU per request (median of rounds), its
ratio to splice paired by round with interval and verdict, and what the server's log said
(a refused SEND_ZC is warned). Writes DIR/ab.csv and DIR/ab.txt.

Started as root, the servers serve as nobody, whose RLIMIT_MEMLOCK the pinned pages of a
SEND_ZC count against: run it as root to see what the bench's servers would see. --user
root keeps them root, whose pinned pages are not counted (CAP_IPC_LOCK).
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "bench"))
import efficiency  # noqa: E402
from c10kutil import ctxsw_by_thread, median  # noqa: E402
from measure import Snapshot  # noqa: E402

MODES = ("splice", "zc", "copy")
BASE = "e0525d2"  # the commit send-zc.patch was made against (--base HEAD: try the tree now)
SERVERS = ("uring", "corouring")


def build(tree, base):
    """A worktree of base at tree, send-zc.patch applied, its two servers built."""
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", "-q", tree, base],
                   check=True)
    subprocess.run(["git", "-C", tree, "apply", os.path.join(HERE, "send-zc.patch")],
                   check=True)
    subprocess.run(["make", "-C", tree, "-j2", "bin/uring", "bin/corouring"], check=True,
                   stdout=subprocess.DEVNULL)


def one(binary, mode, args, log):
    """One run: (server µs per request, context switches per request, loadgen's JSON)."""
    env = dict(os.environ, C10K_FILE_SEND=mode)
    p = subprocess.Popen(["taskset", "-c", "0", binary, "--port", "0", "--root",
                          os.path.join(REPO, "www")] + (["--user", args.user] if args.user else []),
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = int(p.stderr.readline().split()[2].rsplit(":", 1)[1])
        lg = subprocess.Popen(["taskset", "-c", "1", os.path.join(REPO, "build", "bench",
                                                                  "loadgen"),
                               "--host", "127.0.0.1", "--port", str(port), "--conns",
                               str(args.conns), "--rate", str(args.rate), "--duration",
                               str(args.secs + 1), "--warmup", "0", "--path", args.path],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.5)
        x0, e0 = ctxsw_by_thread(p.pid), Snapshot(p.pid, tree=[p.pid])
        time.sleep(args.secs)
        e1, x1 = Snapshot(p.pid, tree=[p.pid]), ctxsw_by_thread(p.pid)
        out = json.loads(lg.communicate()[0].strip().splitlines()[-1])
    finally:
        p.terminate()
        log.write(p.communicate(timeout=10)[1])
    # Snapshot.cpu_s(): schedstat's nanoseconds, or clock ticks if an io-wq worker came or
    # went between the edges; a thread born meanwhile starts its switches from zero.
    requests = args.rate * (e1.t - e0.t)
    switches = sum(v - x0.get(tid, 0) for tid, v in x1.items())
    return e0.cpu_s(e1) * 1e6 / requests, switches / requests, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=10)
    ap.add_argument("--rate", type=int, default=400)
    ap.add_argument("--secs", type=float, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--path", default="/1m.bin")
    ap.add_argument("--out", default=None)
    ap.add_argument("--base", default=BASE)
    ap.add_argument("--user", default=None, help="the servers' --user (default: theirs)")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="send-zc-")
    os.makedirs(out, exist_ok=True)
    tree = os.path.join(out, "tree")
    build(tree, args.base)
    rows = []
    try:
        with open(os.path.join(out, "servers.log"), "w") as log:
            for rnd in range(args.rounds):
                for server in SERVERS:
                    for mode in MODES:
                        us, cs, lg = one(os.path.join(tree, "bin", server), mode, args, log)
                        rows.append({"server": server, "mode": mode, "round": rnd,
                                     "us_per_req": round(us, 1), "ctxsw_per_req": round(cs, 2),
                                     "achieved_rps": lg["achieved_rps"], "p99_ms": lg["p99_ms"],
                                     "errors": lg["errors"], "client_bound": lg["client_bound"]})
                        print(f"round {rnd} {server} {mode}: {us:.1f} µs/request, "
                              f"{cs:.2f} context switches/request, p99 {lg['p99_ms']} ms",
                              file=sys.stderr, flush=True)
    finally:
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", tree])
    with open(os.path.join(out, "ab.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [f"{args.path} over {args.conns} connections at {args.rate}/s, {args.rounds} "
             f"rounds, server CPU per request (µs, median), ratio to splice paired by round"
             + (f", servers as --user {args.user}" if args.user else "")]
    for server in SERVERS:
        cpu = {m: {r["round"]: r["us_per_req"] for r in rows
                   if r["server"] == server and r["mode"] == m} for m in MODES}
        for mode in MODES:
            mine = [r for r in rows if r["server"] == server and r["mode"] == mode]
            line = (f"  {server:<10}{mode:<8}{median([r['us_per_req'] for r in mine]):>8.1f}"
                    f"{median([r['ctxsw_per_req'] for r in mine]):>7.2f} ctxsw"
                    f"  client-bound {sum(bool(r['client_bound']) for r in mine)}/{len(mine)}")
            if mode != "splice":
                line += "   " + efficiency.fmt_ratio(efficiency.ratio_by_key(cpu[mode],
                                                                            cpu["splice"]))
            lines.append(line)
    with open(os.path.join(out, "servers.log")) as f:
        refused = sum(1 for line in f if "SEND_ZC refused" in line)
    lines.append(f"  servers that warned of a refused SEND_ZC: {refused}")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "ab.txt"), "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
