#!/usr/bin/env python3
"""bench-pair.py - one server's CPU per request over another's, at every point of a run.

    python3 scripts/bench-pair.py RESULTS_DIR A B [--metric cpu_us_per_req]

For each workload of the run's efficiency curves (openloop.csv) and each offered rate both
servers met, the ratio A/B paired by repetition (efficiency.paired(): both measured seconds
apart in each repetition), as median [interval] and n, with its verdict ("cheaper" or
"dearer" only where the interval lies wholly below or above 1, from n >= 5). A claim such as
"uring's CPU per request is at or below epoll's at every rate" is read from this table.

RESULTS_DIR may also be a `make profile` run (profile.csv): there each round ran every
server once at the one point, and the ratio is paired by round, as is each bucket's
(--metric net_us, poller_us, ...). Its rounds are all used, client-bound or not, and the
line says how many were client-bound.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import efficiency  # noqa: E402
from c10kutil import read_csv  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--metric", default="cpu_us_per_req")
    args = ap.parse_args()
    if os.path.exists(os.path.join(args.run_dir, "profile.csv")):
        profile_pair(args)
        return
    rows = [r for r in read_csv(os.path.join(args.run_dir, "openloop.csv")) if r.get("phase")]
    if not rows:
        sys.exit(f"bench-pair: no efficiency rows in {args.run_dir}/openloop.csv")
    print(f"{args.a} over {args.b}, {args.metric}, paired by repetition "
          f"({os.path.basename(os.path.normpath(args.run_dir))})")
    for w in sorted({efficiency.row_workload(r) for r in rows}):
        rates = sorted({r["offered_rps"] for r in rows if efficiency.row_workload(r) == w})
        print(f"\n{efficiency.title(w)}")
        for rate in rates:
            iv = efficiency.paired(rows, args.a, args.b, w, rate, args.metric)
            print(f"  {rate:>9,.0f} req/s  " + (
                efficiency.fmt_ratio(iv) if iv else "–  (no repetition where both were usable)"))


def profile_pair(args):
    """A `make profile` run: A over B by round, at its one point."""
    rows = read_csv(os.path.join(args.run_dir, "profile.csv"))
    a, b = ({r["rep"]: r for r in rows if r["server"] == name and r.get(args.metric)}
            for name in (args.a, args.b))
    iv = efficiency.ratio_by_key({k: r[args.metric] for k, r in a.items()},
                                 {k: r[args.metric] for k, r in b.items()})
    if not iv:
        sys.exit(f"bench-pair: no round with both {args.a} and {args.b} in {args.run_dir}")
    bound = sum(1 for k in a if k in b and (a[k].get("client_bound") or b[k].get("client_bound")))
    a0 = next(iter(a.values()))
    print(f"{args.a} over {args.b}, {args.metric}, paired by round "
          f"({os.path.basename(os.path.normpath(args.run_dir))}: {a0['conns']:.0f} connections, "
          f"{a0['offered_rps']:,.0f} req/s)")
    print(f"  {efficiency.fmt_ratio(iv)}"
          + (f"  ({bound} of {iv[4]} rounds client-bound)" if bound else ""))


if __name__ == "__main__":
    main()
