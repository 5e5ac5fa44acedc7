"""sendpath.py - which way a file body should leave an io_uring server, per size:
`make sendpath`, over build/bench/sendpath (bench/c/sendpath.c says what each way is).

For each body size and each round, one sendpath process sends --mib MiB as bodies of that
size by every method in turn (the order rotated each round, so no method always goes
first), over one loopback connection, sender on CPU 0 and sink on CPU 1. The figure is the
CPU of both per MiB moved; on loopback the receiving side's TCP work runs in the sender's
context, so neither side alone is the method's cost.

    python3 bench/sendpath.py [--sizes 4k,16k,64k,256k,1m,4m,16m] [--mib 256] [--reps 5]
                              [--methods splice,send,zc,zc-fixed,map-send,map-zc] [--out DIR]

Prints, per size, each method's µs of CPU per MiB as median [interval] over the rounds,
and its ratio to splice paired by round with a verdict ("cheaper"/"dearer" only where the
interval lies wholly on one side of 1, from 5 rounds: efficiency.verdict). Writes
DIR/sendpath.csv (a row per transfer) and DIR/sendpath.txt (the table).
"""

import argparse
import csv
import os
import subprocess
import sys

import efficiency
from c10kutil import median

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.path.join(REPO, os.environ.get("BUILD", "build"))
FIELDS = ["method", "size", "round", "mib", "sender_us_per_mib", "sink_us_per_mib", "wall_s"]
METHODS = ["splice", "send", "zc", "zc-fixed", "map-send", "map-zc"]


def parse_size(text):
    """'4k' -> 4096, '1m' -> 1048576, '300' -> 300."""
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:].lower(), 1)
    return int(text[:-1] if mult > 1 else text) * mult


def fmt_size(n):
    for unit, mult in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= mult and n % mult == 0:
            return f"{n // mult} {unit}"
    return f"{n} B"


def run_round(binary, size, rnd, methods, mib, tmp):
    """One sendpath process: every method once, in an order rotated by round."""
    order = methods[rnd % len(methods):] + methods[:rnd % len(methods)]
    out = subprocess.run([binary, "--size", str(size), "--mib", str(mib), "--round", str(rnd),
                          "--dir", tmp] + order, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"sendpath --size {size}: exit {out.returncode}: "
                           f"{out.stderr.strip()}")
    rows = []
    for line in out.stdout.splitlines():
        r = dict(zip(FIELDS, line.split(",")))
        for k in FIELDS[1:]:
            r[k] = float(r[k])
        r["total_us_per_mib"] = r["sender_us_per_mib"] + r["sink_us_per_mib"]
        rows.append(r)
    return rows


def table(rows, methods):
    """The text table: per size, per method, CPU per MiB and the ratio to the first method."""
    base = methods[0]
    lines = ["CPU per MiB moved (µs, sender + sink; median [interval] over rounds), "
             f"and the ratio to {base} paired by round"]
    for size in sorted({r["size"] for r in rows}):
        at = [r for r in rows if r["size"] == size]
        lines.append(f"\n{fmt_size(int(size))} bodies")
        lines.append(f"  {'method':<10}{'sender+sink':>24}{'sender':>10}{'sink':>10}"
                     f"{'GB/s':>8}   ratio to {base}")
        by_round = {m: {r["round"]: r["total_us_per_mib"] for r in at if r["method"] == m}
                    for m in methods}
        for m in methods:
            mine = [r for r in at if r["method"] == m]
            if not mine:
                continue
            total = efficiency.interval([r["total_us_per_mib"] for r in mine])
            sender = median([r["sender_us_per_mib"] for r in mine])
            sink = median([r["sink_us_per_mib"] for r in mine])
            gbs = median([r["mib"] * (1 << 20) / r["wall_s"] / 1e9 for r in mine])
            ratio = ""
            if m != base:
                ratio = efficiency.fmt_ratio(efficiency.ratio_by_key(by_round[m],
                                                                     by_round[base]))
            lines.append(f"  {m:<10}{efficiency.fmt_interval(total, 0):>24}{sender:>10.0f}"
                         f"{sink:>10.0f}{gbs:>8.2f}   {ratio}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4k,16k,64k,256k,1m,4m,16m")
    ap.add_argument("--mib", type=float, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    binary = os.path.join(BUILD_DIR, "bench", "sendpath")
    if not os.access(binary, os.X_OK):
        sys.exit(f"sendpath: no {binary} (run make)")
    methods = args.methods.split(",")
    unknown = set(methods) - set(METHODS)
    if unknown:
        sys.exit(f"sendpath: unknown method {', '.join(sorted(unknown))} "
                 f"(methods: {', '.join(METHODS)})")
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    out = args.out or os.path.join(REPO, "results", "sendpath")
    os.makedirs(out, exist_ok=True)
    rows = []
    for rnd in range(args.reps):
        for size in sizes:
            rows += run_round(binary, size, rnd, methods, args.mib, out)
            print(f"sendpath: round {rnd}, {fmt_size(size)}: done", file=sys.stderr)
    with open(os.path.join(out, "sendpath.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS + ["total_us_per_mib"])
        w.writeheader()
        w.writerows(rows)
    text = table(rows, methods)
    with open(os.path.join(out, "sendpath.txt"), "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
