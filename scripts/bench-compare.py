#!/usr/bin/env python3
"""bench-compare.py - do two `make bench` runs agree?

    scripts/bench-compare.py results/RUN_A results/RUN_B [--tolerance 0.45]

Absolute req/s moves with the machine's load, so the runs are compared the way the bench
reports them: at each point (server, connections, file) the median req/s over the median of
nginx at the same point of the same run, and the server's own CPU µs per request. For each
point it prints both runs' figures and the change B / A - 1; then, per figure, the median
and the worst change, and the points whose change is beyond the tolerance (default 45%,
the largest move measured between identical bench-ci runs: docs/bench.md).
Exit status 0 when at most 10% of the points are beyond it, 1 otherwise, 2 on bad usage.
"""

import argparse
import csv
import os
import statistics
import sys
from collections import defaultdict


def medians(run_dir):
    """{(server, conns, file): (median rps, median cpu_us)} from a run's results.csv."""
    rows = defaultdict(list)
    with open(os.path.join(run_dir, "results.csv"), newline="") as f:
        for r in csv.DictReader(f):
            rows[(r["server"], int(r["conns"]), r["file"])].append(r)
    out = {}
    for key, rs in rows.items():
        cpu = [float(r["cpu_us_per_req"]) for r in rs if r["cpu_us_per_req"]]
        out[key] = (statistics.median(float(r["rps"]) for r in rs),
                    statistics.median(cpu) if cpu else None)
    return out


def ratios(meds):
    """{point: (ratio to nginx, cpu µs)} for every non-nginx point with a live nginx beside it."""
    out = {}
    for (server, conns, file), (rps, cpu) in meds.items():
        nginx = meds.get(("nginx", conns, file))
        if server == "nginx" or not nginx or not nginx[0] or not rps:
            continue
        out[(server, conns, file)] = (rps / nginx[0], cpu)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--tolerance", type=float, default=0.45)
    args = ap.parse_args()
    a, b = ratios(medians(args.run_a)), ratios(medians(args.run_b))
    points = sorted(set(a) & set(b), key=lambda k: (k[2], k[1], k[0]))
    if not points:
        print("bench-compare: no point is in both runs", file=sys.stderr)
        return 2

    changes = {"x nginx": [], "CPU/req": []}
    beyond = []
    print(f"{'file':<11} {'conns':>6} {'server':<9} {'x nginx: A':>10} {'B':>6} {'change':>7}"
          f"  {'CPU us/req: A':>13} {'B':>6} {'change':>7}")
    for p in points:
        (ra, ca), (rb, cb) = a[p], b[p]
        ch = rb / ra - 1
        cch = cb / ca - 1 if ca and cb else None
        changes["x nginx"].append(ch)
        mark = ""
        if abs(ch) > args.tolerance:
            beyond.append(f"{p[0]} c={p[1]} {p[2]}: x nginx {ra:.2f} -> {rb:.2f} ({ch:+.0%})")
            mark = "  <- beyond"
        if cch is not None:
            changes["CPU/req"].append(cch)
        cpu = (f"{ca:>13.1f} {cb:>6.1f} {cch:>+7.0%}" if cch is not None else f"{'-':>13} {'-':>6} {'':>7}")
        print(f"{p[2]:<11} {p[1]:>6} {p[0]:<9} {ra:>10.2f} {rb:>6.2f} {ch:>+7.0%}  {cpu}{mark}")

    print(f"\n{os.path.basename(args.run_a.rstrip('/'))} (A) vs "
          f"{os.path.basename(args.run_b.rstrip('/'))} (B), {len(points)} points:")
    for name, cs in changes.items():
        if cs:
            worst = max(cs, key=abs)
            print(f"  {name:<8} median change {statistics.median(cs):+.0%}, median |change| "
                  f"{statistics.median(abs(c) for c in cs):.0%}, worst {worst:+.0%}")
    print(f"  beyond ±{args.tolerance:.0%} (x nginx): {len(beyond)} of {len(points)}")
    for line in beyond:
        print(f"    {line}")
    return 0 if len(beyond) <= 0.1 * len(points) else 1


if __name__ == "__main__":
    sys.exit(main())
