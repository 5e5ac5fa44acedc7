#!/usr/bin/env python3
"""test_gate.py - the judging rules of make bench-ci (bench/gate.py), on made-up figures.

No server, no wrk: it feeds gate.summarise() rows as run_round() writes them and checks
what is_low()/low_figures() decide against a baseline, including the busy-machine rule
(a throughput figure measured under high CPU pressure is not judged; efficiency still is).
Ends with "N passed, M failed".
"""

import os
import sys
import tempfile
from types import SimpleNamespace

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import gate  # noqa: E402

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}")


def rows(server, conns, ratios, cpu_ratios, pressures):
    return [{"server": server, "conns": conns, "rep": i + 1, "rps": 1000.0 * r,
             "nginx_rps": 1000.0, "ratio": r, "cpu_us": 10.0, "nginx_cpu_us": 10.0 * c,
             "cpu_ratio": c, "cpu_pressure": p}
            for i, (r, c, p) in enumerate(zip(ratios, cpu_ratios, pressures))]


CFG = SimpleNamespace(tolerance=0.40, cpu_tolerance=0.30, busy_pressure=0.30)
BASE = {("epoll", 100): {"ratio": 2.0, "cpu_ratio": 2.5}}


def figure(ratios, cpu_ratios, pressures):
    return gate.summarise(rows("epoll", 100, ratios, cpu_ratios, pressures))[("epoll", 100)]


def test_medians():
    fig = figure([2.0, 1.0, 3.0], [2.5, 2.4, 2.6], [0.02, 0.50, 0.03])
    check(fig["ratio"] == 2.0 and fig["ratio_min"] == 1.0 and fig["ratio_max"] == 3.0,
          "summarise: median, min and max of the throughput ratio")
    check(fig["cpu_ratio"] == 2.5, "summarise: median of the efficiency ratio")
    check(fig["pressure"] == 0.03, "summarise: median CPU pressure")
    check(fig["reps"] == 3, "summarise: repetitions counted")


def test_quiet_machine_judges_both():
    ok = figure([1.9, 2.0, 2.1], [2.4, 2.5, 2.6], [0.03] * 3)
    check(not gate.is_low(ok, BASE[("epoll", 100)], "ratio", CFG), "quiet, in tolerance: ok")
    slow = figure([1.0, 1.1, 1.0], [2.4, 2.5, 2.6], [0.03] * 3)  # -50% throughput
    check(gate.is_low(slow, BASE[("epoll", 100)], "ratio", CFG), "quiet, -50% throughput: low")
    check(not gate.is_low(slow, BASE[("epoll", 100)], "cpu_ratio", CFG),
          "quiet, efficiency in tolerance: not low")
    check(gate.low_figures({("epoll", 100): slow}, BASE, CFG) == {("epoll", 100)},
          "quiet, -50% throughput: a suspect for the confirming round")
    edge = figure([1.21] * 3, [1.76] * 3, [0.03] * 3)  # just inside 40% and 30%
    check(gate.low_figures({("epoll", 100): edge}, BASE, CFG) == set(),
          "figures just inside both tolerances pass")


def test_busy_machine_judges_efficiency_only():
    squeezed = figure([1.0, 1.1, 1.0], [2.4, 2.5, 2.6], [0.65, 0.70, 0.60])
    check(gate.busy(squeezed, CFG), "pressure 65% over 30%: busy")
    check(not gate.is_low(squeezed, BASE[("epoll", 100)], "ratio", CFG),
          "busy: a -50% throughput figure is not judged")
    check(gate.low_figures({("epoll", 100): squeezed}, BASE, CFG) == set(),
          "busy, efficiency fine: no suspect")
    slower = figure([1.0, 1.1, 1.0], [1.2, 1.3, 1.2], [0.65, 0.70, 0.60])  # -52% efficiency
    check(gate.is_low(slower, BASE[("epoll", 100)], "cpu_ratio", CFG),
          "busy: a -52% efficiency figure is still low")
    check(gate.low_figures({("epoll", 100): slower}, BASE, CFG) == {("epoll", 100)},
          "busy, efficiency low: a suspect")


def test_without_psi_every_figure_is_judged():
    fig = figure([1.0, 1.1, 1.0], [2.4, 2.5, 2.6], [None] * 3)
    check(fig["pressure"] is None and not gate.busy(fig, CFG), "no PSI: never busy")
    check(gate.is_low(fig, BASE[("epoll", 100)], "ratio", CFG), "no PSI: throughput judged")


def test_baseline_round_trip():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "baseline.csv")
        with open(path, "w") as f:
            f.write(",".join(gate.BASELINE_HEADER) + "\n")
            f.write("epoll,100,2.206,2.526,64195,29393,run\n")
            f.write("aio,1000,0.330,,9439,26674,run\n")
        base = gate.read_baseline(path)
        check(base[("epoll", 100)] == {"ratio": 2.206, "cpu_ratio": 2.526},
              "read_baseline: both figures")
        check(base[("aio", 1000)] == {"ratio": 0.33}, "read_baseline: a missing figure is left out")
        check(gate.read_baseline(os.path.join(d, "none.csv")) == {},
              "read_baseline: no file, no baseline")


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
