#!/usr/bin/env python3
"""readme-results.py - copies a run's results into README.md, so no figure there is typed.

    python3 scripts/readme-results.py results/RUN_ID            rewrites README.md
    python3 scripts/readme-results.py results/RUN_ID --rerun results/RUN_B
                                        only the ratios RUN_B, made later, reproduced
    python3 scripts/readme-results.py --check results/RUN_ID    exit 1 if README.md differs
    python3 scripts/readme-results.py --readme FILE RUN_DIR     another file (tests)

The run's summary.md holds, between the lines `<!-- results:begin -->` and
`<!-- results:end -->`, the ratios it supports, each with its interval and a verdict only
where the intervals are apart (bench/efficiency.py, claims()). README.md holds the same two
markers; what lies between them there is replaced by the run's block, headed by a line that
names the run and the load average at its start (from its env.txt). Standard library only.
"""

import json
import os
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))

import c10kutil  # noqa: E402
import efficiency  # noqa: E402

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def block(text, where):
    """The lines strictly between the markers of text; SystemExit if they are missing."""
    try:
        start = text.index(BEGIN) + len(BEGIN)
        end = text.index(END, start)
    except ValueError:
        sys.exit(f"readme-results: {where} has no {BEGIN} ... {END} block")
    return start, end


def env_value(run_dir, key):
    try:
        with open(os.path.join(run_dir, "env.txt")) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() == key:
                    return v.strip()
    except OSError:
        pass
    return "unknown"


def load_average(run_dir):
    """'a b c' at the run's start, and '→ d e f' at its end where env.txt has it."""
    out = " ".join(env_value(run_dir, "load average at start").split()[:3])
    end = env_value(run_dir, "load average at end")
    return out + (f" → {' '.join(end.split()[:3])}" if end != "unknown" else "")


def reproduced(run_dir, rerun_dir):
    """The claims block of run_dir regenerated from its CSV with rerun_dir's rows: a ratio
    only where the rerun's median lands inside run_dir's interval (efficiency.claims)."""
    with open(os.path.join(run_dir, "logs", "config.json")) as f:
        cfg = SimpleNamespace(**json.load(f))

    def rows(d):
        return [r for r in c10kutil.read_csv(os.path.join(d, "openloop.csv"))
                if r.get("phase") in ("grid", "knee")]

    a = rows(run_dir)
    text = "\n".join(efficiency.claims(cfg, efficiency.summarise(a), a,
                                       cfg.servers + cfg.peers, rerun=rows(rerun_dir)))
    return text.replace("(this run)", "(this run, checked against a second)")


def render(readme_text, run_dir, repo_dir, rerun_dir=None):
    if rerun_dir:
        summary = reproduced(run_dir, rerun_dir)
    else:
        with open(os.path.join(run_dir, "summary.md")) as f:
            summary = f.read()
    s, e = block(summary, os.path.join(run_dir, "summary.md"))
    rel = os.path.relpath(os.path.abspath(run_dir), os.path.abspath(repo_dir))
    name = os.path.basename(os.path.normpath(run_dir))
    head = (f"\n*Copied by `scripts/readme-results.py` from [{rel}/summary.md]({rel}/summary.md)"
            f" (run {name}, load average at its start and end: {load_average(run_dir)}")
    if rerun_dir:
        rel_b = os.path.relpath(os.path.abspath(rerun_dir), os.path.abspath(repo_dir))
        head += (f", each ratio checked against [{os.path.basename(os.path.normpath(rerun_dir))}]"
                 f"({rel_b}/summary.md) (load average: {load_average(rerun_dir)})")
    head += "); do not edit by hand.*\n"
    rs, re_ = block(readme_text, "README.md")
    return readme_text[:rs] + head + summary[s:e].rstrip("\n") + "\n" + readme_text[re_:]


def main(argv):
    check = "--check" in argv
    argv = [a for a in argv if a != "--check"]
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "README.md")
    if len(argv) >= 2 and argv[0] == "--readme":
        readme, argv = argv[1], argv[2:]
    rerun = None
    if "--rerun" in argv:
        i = argv.index("--rerun")
        if i + 1 >= len(argv):
            sys.exit("readme-results: --rerun needs a run directory")
        rerun, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    if len(argv) != 1:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    with open(readme) as f:
        old = f.read()
    new = render(old, argv[0], os.path.dirname(os.path.abspath(readme)), rerun)
    if check:
        same = new == old
        print(f"readme-results: {readme} {'matches' if same else 'differs from'} {argv[0]}")
        return 0 if same else 1
    with open(readme, "w") as f:
        f.write(new)
    print(f"readme-results: {readme}: results copied from {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
