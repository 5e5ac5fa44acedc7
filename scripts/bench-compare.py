#!/usr/bin/env python3
"""bench-compare.py - do two `make bench` runs agree?

    scripts/bench-compare.py results/RUN_A results/RUN_B [--tolerance 0.45]

Efficiency curves (openloop.csv rows with a phase, the calibrated bench): every ratio the
claims block of summary.md states (each server's CPU per request over the floor's and each
peer's, paired by repetition, at the claims' fraction of each run's own ceiling): A's median
with its interval, B's median, and whether B's lands inside A's interval. The runs agree when
every ratio on which A gives a verdict lands inside (those are what README.md states as
findings); the others are listed too.

Open loop of the older ladder runs (openloop.csv without a phase), per server at each
connection count:

  capacity at SLO   A's and B's. A run knows its capacity only to within its ladder: the
                    knee lies between the highest rate that met the SLO and the lowest that
                    missed it above it. The noise band of a capacity is that bracket; the two
                    runs agree when their brackets overlap (or, where a bracket is open, when
                    the figures differ by less than the ladder's refined step).
  CPU µs/request    at the fixed load at the most connections, measured twice in each run
                    (in the ladder and once more after it). The noise band is measured: twice
                    the largest relative spread between a run's two measurements, over all
                    servers of both runs (at least 5%); the runs agree on a server when the
                    change is inside it.

Closed loop (results.csv), as before: at each point (server, connections, file) the median
req/s over nginx's at the same point of the same run, and the server's CPU µs per request,
with the median and the worst change and the points beyond --tolerance.

Exit status, efficiency runs: 0 when every ratio with a verdict in A lands inside A's interval
in B, 1 otherwise. Ladder runs: 0 when the open-loop figures agree on at least 90% of the comparisons (or, for
runs without openloop.csv, when at most 10% of closed-loop points are beyond the tolerance);
1 otherwise; 2 on bad usage.
"""

import argparse
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))

from c10kutil import medians, read_csv  # noqa: E402
from openloop import bracket, fixed_cpu  # noqa: E402
import efficiency  # noqa: E402

MIN_CPU_BAND = 0.05


def load(run_dir, name):
    path = os.path.join(run_dir, name)
    return read_csv(path) if os.path.exists(path) else []


# ---- open loop -----------------------------------------------------------------------------

def fixed_rate(rows):
    return next((r["offered_rps"] for r in rows if r.get("fixed") and not r["close"]), None)


def open_figures(rows):
    """{(server, conns, close): (capacity, next miss)} and {server: (cpu, spread)}."""
    caps, cpus = {}, {}
    keys = {(r["server"], r["conns"], r["close"]) for r in rows}
    for key in keys:
        rs = [r for r in rows if (r["server"], r["conns"], r["close"]) == key]
        caps[key] = bracket(rs)
    many = max((r["conns"] for r in rows if not r["close"]), default=None)
    for s in {r["server"] for r in rows}:
        rs = [r for r in rows if r["server"] == s and r["conns"] == many and not r["close"]]
        cpus[s] = fixed_cpu(rs)
    return caps, cpus, many


def k(v):
    if v is None:
        return "-"
    return f"{v / 1000:.1f}k" if v < 10000 else f"{v / 1000:.0f}k"


def compare_open(a_rows, b_rows):
    """Prints the comparison; returns (agreeing, compared)."""
    ca, pa, many = open_figures(a_rows)
    cb, pb, _ = open_figures(b_rows)
    steps = [hi / lo for lo, hi in list(ca.values()) + list(cb.values()) if lo and hi]
    step = min(steps) if steps else 1.0
    spreads = [sp for _, sp in list(pa.values()) + list(pb.values()) if sp is not None]
    band = max(MIN_CPU_BAND, 2 * max(spreads)) if spreads else None
    agree = compared = 0
    print("open loop: capacity at SLO [bracket: highest pass .. lowest miss above it]")
    print(f"{'server':<10} {'conns':>7}  {'A':>6} {'[A bracket]':>15}  {'B':>6} "
          f"{'[B bracket]':>15}  {'change':>7}  verdict")
    for key in sorted(set(ca) & set(cb), key=lambda x: (x[2], x[1], x[0])):
        (a_lo, a_hi), (b_lo, b_hi) = ca[key], cb[key]
        label = "churn" if key[2] else f"{key[1]:,}"
        if a_lo is None and b_lo is None:
            print(f"{key[0]:<10} {label:>7}  no capacity in either run (refused, failed or "
                  "client-bound): not compared")
            continue
        if a_lo is None or b_lo is None:
            verdict, ch, ok = "DIFFER (one run has no capacity)", "", False
        else:
            ch = f"{b_lo / a_lo - 1:+.0%}"
            a_top = a_hi or a_lo * step
            b_top = b_hi or b_lo * step
            ok = a_lo < b_top * 1.0001 and b_lo < a_top * 1.0001 or a_lo == b_lo
            verdict = "agree" if ok else "DIFFER"
        compared += 1
        agree += ok
        print(f"{key[0]:<10} {label:>7}  {k(a_lo):>6} {'[' + k(a_lo) + '..' + k(a_hi) + ']':>15}"
              f"  {k(b_lo):>6} {'[' + k(b_lo) + '..' + k(b_hi) + ']':>15}  {ch:>7}  {verdict}")
    ra, rb = fixed_rate(a_rows), fixed_rate(b_rows)
    if ra != rb:
        print(f"\nopen loop: the fixed loads differ ({ra} and {rb} req/s): CPU per request "
              "not compared")
        pa, pb = {}, {}
    print(f"\nopen loop: CPU µs per request at the fixed load, {many:,} connections "
          f"(each run's two measurements: mean ±half their spread)")
    if band is not None:
        print(f"noise band (measured): ±{band:.0%} = twice the largest spread between a "
              f"run's two measurements of one server (at least {MIN_CPU_BAND:.0%})")
    changes = []
    for s in sorted(set(pa) & set(pb)):
        (va, sa), (vb, sb) = pa[s], pb[s]
        if va is None or vb is None:
            print(f"  {s:<10} {'-' if va is None else f'{va:.1f}':>7} "
                  f"{'-' if vb is None else f'{vb:.1f}':>7}  (no figure in one run)")
            continue
        ch = vb / va - 1
        changes.append(ch)
        ok = band is None or abs(ch) <= band
        compared += 1
        agree += ok
        sp = lambda x: "" if x is None else f" ±{x / 2:.0%}"  # noqa: E731
        print(f"  {s:<10} A {va:6.1f}{sp(sa):<5} B {vb:6.1f}{sp(sb):<5} change {ch:+6.0%}  "
              f"{'agree' if ok else 'DIFFER'}")
    if changes:
        print(f"  median |change| {statistics.median(abs(c) for c in changes):.0%}, "
              f"worst {max(changes, key=abs):+.0%}")
    return agree, compared


# ---- closed loop ---------------------------------------------------------------------------

def closed_ratios(rows):
    """{point: (ratio to nginx, cpu µs)} for every non-nginx point with nginx beside it."""
    meds = medians(rows, ("server", "conns", "file"), ("rps", "cpu_us_per_req"))
    out = {}
    for (server, conns, file), m in meds.items():
        nginx = meds.get(("nginx", conns, file))
        if server == "nginx" or not nginx or not nginx["rps"] or not m["rps"]:
            continue
        out[(server, conns, file)] = (m["rps"] / nginx["rps"], m["cpu_us_per_req"])
    return out


def compare_closed(a_rows, b_rows, tolerance):
    a, b = closed_ratios(a_rows), closed_ratios(b_rows)
    points = sorted(set(a) & set(b), key=lambda k: (k[2], k[1], k[0]))
    if not points:
        return 0, 0
    changes = {"x nginx": [], "CPU/req": []}
    beyond = []
    print("\nclosed loop (wrk): ratio to nginx and CPU µs per request")
    print(f"{'file':<11} {'conns':>6} {'server':<9} {'x nginx: A':>10} {'B':>6} {'change':>7}"
          f"  {'CPU us/req: A':>13} {'B':>6} {'change':>7}")
    for p in points:
        (ra, ca), (rb, cb) = a[p], b[p]
        ch = rb / ra - 1
        cch = cb / ca - 1 if ca and cb else None
        changes["x nginx"].append(ch)
        mark = ""
        if abs(ch) > tolerance:
            beyond.append(f"{p[0]} c={p[1]} {p[2]}: x nginx {ra:.2f} -> {rb:.2f} ({ch:+.0%})")
            mark = "  <- beyond"
        if cch is not None:
            changes["CPU/req"].append(cch)
        cpu = (f"{ca:>13.1f} {cb:>6.1f} {cch:>+7.0%}" if cch is not None
               else f"{'-':>13} {'-':>6} {'':>7}")
        print(f"{p[2]:<11} {p[1]:>6} {p[0]:<9} {ra:>10.2f} {rb:>6.2f} {ch:>+7.0%}  {cpu}{mark}")
    for name, cs in changes.items():
        if cs:
            print(f"  {name:<8} median change {statistics.median(cs):+.0%}, median |change| "
                  f"{statistics.median(abs(c) for c in cs):.0%}, "
                  f"worst {max(cs, key=abs):+.0%}")
    print(f"  beyond ±{tolerance:.0%} (x nginx): {len(beyond)} of {len(points)}")
    for line in beyond:
        print(f"    {line}")
    return len(points) - len(beyond), len(points)


def claim_ratios(rows):
    """{(conns, server, other): paired ratio interval} at the claims' fraction of a run."""
    eff = [r for r in rows if r.get("phase") in ("grid", "knee")]
    fig = efficiency.summarise(eff)
    servers = sorted({s for s, _, _ in fig})
    peers = ("nginx", "h2o", "lighttpd")  # ratios are stated for our servers only
    out = {}
    for conns in sorted({c for _, c, _ in fig}):
        at = efficiency.claim_rate(fig, conns)
        if not at:
            continue
        others = [efficiency.FLOOR] + [p for p in ("nginx", "h2o") if p in servers]
        for s in servers:
            for o in others:
                if s != o and s not in others and s not in peers:
                    ri = efficiency.paired(eff, s, o, conns, at[1])
                    if ri:
                        out[(conns, s, o)] = ri
    return out


def compare_efficiency(a_rows, b_rows):
    """Prints every claimed ratio of A against B's; returns (landed, with a verdict in A)."""
    a, b = claim_ratios(a_rows), claim_ratios(b_rows)
    print("efficiency: CPU per request over another's, paired, at the claims' fraction of "
          "each run's ceiling")
    print(f"{'conns':>11} {'server':<10} {'over':<6} {'A [interval] (n)':>26} {'B':>6}  inside")
    landed = verdicts = 0
    for key in sorted(set(a) & set(b)):
        ra, rb = a[key], b[key]
        inside = ra[1] <= rb[0] <= ra[2]
        v = efficiency.verdict(ra)
        claimed = v in ("cheaper", "dearer")
        verdicts += claimed
        landed += claimed and inside
        load = f"{key[0][0]}{' churn' if key[0][1] else ''}"
        print(f"{load:>11} {key[1]:<10} {key[2]:<6} "
              f"{efficiency.fmt_interval(ra, 2) + f' ({ra[4]})':>26} {rb[0]:>6.2f}  "
              f"{'yes' if inside else 'NO'}{' (a verdict in A: ' + v + ')' if claimed else ''}")
    print(f"\nefficiency: {landed} of {verdicts} ratios with a verdict in A land inside A's "
          f"interval in B; {sum(a[k][1] <= b[k][0] <= a[k][2] for k in set(a) & set(b))} of "
          f"{len(set(a) & set(b))} ratios in all")
    return landed, verdicts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--tolerance", type=float, default=0.45,
                    help="closed loop: largest change of a ratio to nginx that counts as "
                         "agreement (default 0.45)")
    args = ap.parse_args()
    names = [os.path.basename(d.rstrip("/")) for d in (args.run_a, args.run_b)]
    print(f"{names[0]} (A) vs {names[1]} (B)\n")
    oa, ob = load(args.run_a, "openloop.csv"), load(args.run_b, "openloop.csv")
    open_ok = open_n = 0
    if any(r.get("phase") for r in oa) and any(r.get("phase") for r in ob):
        landed, verdicts = compare_efficiency(oa, ob)
        print()
        compare_closed(load(args.run_a, "results.csv"), load(args.run_b, "results.csv"),
                       args.tolerance)
        return 0 if landed == verdicts else 1
    if oa and ob:
        open_ok, open_n = compare_open(oa, ob)
    closed_ok, closed_n = compare_closed(load(args.run_a, "results.csv"),
                                         load(args.run_b, "results.csv"), args.tolerance)
    if not open_n and not closed_n:
        print("bench-compare: no figure is in both runs", file=sys.stderr)
        return 2
    if open_n:
        print(f"\nopen loop: {open_ok} of {open_n} figures agree within their noise band")
        return 0 if open_ok >= math.ceil(0.9 * open_n) else 1
    return 0 if closed_n - closed_ok <= 0.1 * closed_n else 1


if __name__ == "__main__":
    sys.exit(main())
