#!/usr/bin/env python3
"""history.py - make bench-history: the counted work of every server, commit by commit.

    python3 bench/history.py [WORKLOAD]        (default: keep-alive)

Reads results/profile.json as every commit that changed it left it (git log, oldest
first; and the working tree's, if it differs from HEAD's), and draws, for each server, its
syscalls per request (every call the profile judges, io_uring operations apart) and its
user-space instructions per request in WORKLOAD, one point per commit: a drift that no
single commit's tolerance catches shows as a slope. Writes results/history/: history.csv
(commit, date, server, syscalls, io_uring_ops, instructions) and the plots
syscalls_per_request and instructions_per_request (PNG and SVG; their gnuplot scripts in
plots/). Needs git and gnuplot.
"""

import csv
import json
import os
import subprocess
import sys

import plots

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE = "results/profile.json"
OUT = os.path.join(REPO, "results", "history")
URING_OP = "io_uring_op:"


def git(*args):
    return subprocess.run(["git", "-C", REPO] + list(args), capture_output=True, text=True,
                          check=True).stdout


def profiles():
    """[(label, date, profile)], oldest first; the working tree's last if it differs."""
    out = []
    for line in git("log", "--reverse", "--format=%h %cs", "--", PROFILE).splitlines():
        commit, date = line.split()
        try:
            out.append((commit, date, json.loads(git("show", f"{commit}:{PROFILE}"))))
        except (subprocess.CalledProcessError, json.JSONDecodeError):
            continue  # the commit that deleted it, or a broken one: no point
    try:
        with open(os.path.join(REPO, PROFILE)) as f:
            now = json.load(f)
        if not out or now != out[-1][2]:
            out.append(("work tree", "now", now))
    except (OSError, json.JSONDecodeError):
        pass
    return out


def figures(prof, workload):
    """{server: (syscalls, io_uring ops, instructions)} per request in workload; None
    where the profile has no such figure."""
    out = {}
    for server, by_workload in prof.get("syscalls", {}).items():
        counts = by_workload.get(workload)
        if counts is None:
            continue
        # The judged calls: a spinning server's failed calls (tolerance None) grow with
        # time, not work.
        per = {k: v["per_request"] for k, v in counts.items()
               if not isinstance(v, dict) or v.get("tolerance") is not None}
        calls = sum(v for k, v in per.items() if not k.startswith(URING_OP))
        ops = sum(v for k, v in per.items() if k.startswith(URING_OP))
        insns = prof.get("instructions", {}).get(server, {}).get(workload)
        if isinstance(insns, dict):  # the first profiles kept the bare figure
            insns = insns.get("per_request")
        out[server] = (calls, ops if ops else None, insns)
    return out


def main():
    workload = sys.argv[1] if len(sys.argv) > 1 else "keep-alive"
    points = profiles()
    if not points:
        print(f"bench-history: no {PROFILE} in the git history")
        return 1
    os.makedirs(OUT, exist_ok=True)
    rows = []
    for i, (label, date, prof) in enumerate(points):
        for server, fig in sorted(figures(prof, workload).items()):
            rows.append((i, label, date, server) + fig)
    with open(os.path.join(OUT, "history.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["commit", "date", "server", "syscalls", "io_uring_ops", "instructions"])
        w.writerows(r[1:] for r in rows)
    servers = sorted({r[3] for r in rows})
    tics = "set xtics rotate by -30 (" + ", ".join(
        plots.gp_str(label) + f" {i}" for i, (label, _, _) in enumerate(points)) + ")"
    for name, column, ylabel in (("syscalls_per_request", 4, "syscalls per request"),
                                 ("instructions_per_request", 6,
                                  "user-space instructions per request")):
        series = {s: [(r[0], r[column], None, None) for r in rows if r[3] == s]
                  for s in servers}
        plots.line_plot(OUT, name, f"{ylabel} ({workload}), one point per commit of {PROFILE}",
                        "commit", ylabel, series, servers, logx=False, xtics=tics)
    print(f"bench-history: {len(points)} profiles, {len(servers)} servers; "
          f"{os.path.relpath(OUT)}/syscalls_per_request.png, instructions_per_request.png, "
          "history.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
