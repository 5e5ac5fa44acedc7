#!/usr/bin/env python3
"""bench-noise.py - how much does a bench-ci figure move between runs of an unchanged tree?

    scripts/bench-noise.py 4                      run bench-ci 4 times, then report
    scripts/bench-noise.py results/*-ci/          report on bench-ci runs already made

For each of the gate's two figures (throughput: req/s ratio to nginx; efficiency: nginx's
CPU per request over the server's) and every (server, conns), it shows each run's figure
and the worst drop between any two runs: min / max - 1. The gate compares one run with
another (the baseline), so a tolerance has to sit beyond the drops seen here; docs/bench.md
records what was measured and the tolerances chosen. Runs made before the efficiency figure
existed are recomputed from their results.csv.
"""

import os
import statistics
import subprocess
import sys
from collections import defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

from c10kutil import median, read_csv  # noqa: E402


def run_ci(n):
    """Runs bench-ci n times; returns the run directories (its last output line names each)."""
    dirs = []
    for i in range(n):
        print(f"bench-noise: bench-ci run {i + 1}/{n}", flush=True)
        p = subprocess.run([sys.executable, os.path.join(REPO, "bench", "bench.py"), "ci"],
                           cwd=REPO, capture_output=True, text=True)
        for line in p.stdout.splitlines():
            if line.startswith("bench: done") and "results in " in line:
                dirs.append(os.path.join(REPO, line.split("results in ", 1)[1].rstrip("/")))
        print(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr[-300:])
    return dirs


def figures(run_dir, key):
    """{(server, conns): median of key} from a bench-ci run's ci.csv (the efficiency figure
    is recomputed from results.csv for runs whose ci.csv lacks it)."""
    by = defaultdict(list)
    rows = read_csv(os.path.join(run_dir, "ci.csv"))
    if key == "cpu_ratio" and rows and "cpu_ratio" not in rows[0]:
        rows = cpu_ratios(run_dir)
    for r in rows:
        if r.get(key):
            by[(r["server"], r["conns"])].append(float(r[key]))
    return {k: median(v) for k, v in by.items()}


def cpu_ratios(run_dir):
    """Per server run: mean CPU/req of the nginx runs beside it over its own."""
    rows = read_csv(os.path.join(run_dir, "results.csv"))
    out = []
    for i, r in enumerate(rows):
        if r["server"] == "nginx" or not r["cpu_us_per_req"]:
            continue
        ref = [x["cpu_us_per_req"] for x in rows[i - 1:i + 2:2]
               if x["server"] == "nginx" and x["cpu_us_per_req"]]
        if ref:
            out.append({"server": r["server"], "conns": r["conns"],
                        "cpu_ratio": statistics.mean(ref) / r["cpu_us_per_req"]})
    return out


def report(dirs):
    print(f"\nbench-noise: {len(dirs)} bench-ci runs: " +
          ", ".join(os.path.basename(d) for d in dirs))
    for key, what in (("ratio", "throughput (req/s ratio to nginx)"),
                      ("cpu_ratio", "efficiency (nginx CPU/req over the server's)")):
        runs = [figures(d, key) for d in dirs]
        keys = sorted(set().union(*runs))
        print(f"\n{what}")
        print(f"{'server':<10} {'conns':>6}  " + " ".join(f"{'run' + str(i + 1):>6}"
                                                         for i in range(len(runs)))
              + f"  {'median':>6} {'worst drop':>10}")
        worst = []
        for k in keys:
            vals = [r.get(k) for r in runs]
            have = [v for v in vals if v is not None]
            drop = min(have) / max(have) - 1 if len(have) > 1 else 0.0
            worst.append((drop, k))
            print(f"{k[0]:<10} {k[1]:>6}  " + " ".join("     –" if v is None else f"{v:6.2f}"
                                                      for v in vals)
                  + f"  {statistics.median(have):6.2f} {drop * 100:9.1f}%")
        worst.sort()
        drops = sorted(-d for d, _ in worst)
        print(f"worst drop between two runs: {worst[0][0] * 100:.1f}% ({worst[0][1][0]} "
              f"c={worst[0][1][1]}); median of the per-figure worst drops: "
              f"{statistics.median(drops) * 100:.1f}%")


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    dirs = run_ci(int(args[0])) if len(args) == 1 and args[0].isdigit() else args
    if len(dirs) < 2:
        sys.exit("bench-noise: need at least two bench-ci runs")
    report(dirs)


if __name__ == "__main__":
    main()
