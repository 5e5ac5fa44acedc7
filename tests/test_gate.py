#!/usr/bin/env python3
"""test_gate.py - the judging rules of make bench-ci, on made-up figures.

No server, no wrk, no perf. The deterministic layer (bench/detgate.py): make_profile() sets
each syscall's tolerance from repeated runs (exact, wait, spread, unjudged), and judge()
fails a change in either direction, naming server, workload and syscall, warns about a
server without a profile. The wall-clock layer (bench/gate.py): it feeds gate.summarise()
rows as run_round() writes them and checks what is_low()/low_figures() decide against a
baseline, including the busy-machine rule (a throughput figure measured under high CPU
pressure is not judged; efficiency still is), and that its failure only warns unless
BENCH_STRICT=1. Plain pytest functions (`pytest-3 tests/test_gate.py`).
"""

import json
import os
import sys
import tempfile
from types import SimpleNamespace

import detgate
import gate

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
    assert fig["ratio"] == 2.0 and fig["ratio_min"] == 1.0 and fig["ratio_max"] == 3.0, (
        "summarise: median, min and max of the throughput ratio")
    assert fig["cpu_ratio"] == 2.5, "summarise: median of the efficiency ratio"
    assert fig["pressure"] == 0.03, "summarise: median CPU pressure"
    assert fig["reps"] == 3, "summarise: repetitions counted"


def test_quiet_machine_judges_both():
    ok = figure([1.9, 2.0, 2.1], [2.4, 2.5, 2.6], [0.03] * 3)
    assert not gate.is_low(ok, BASE[("epoll", 100)], "ratio", CFG), "quiet, in tolerance: ok"
    slow = figure([1.0, 1.1, 1.0], [2.4, 2.5, 2.6], [0.03] * 3)  # -50% throughput
    assert gate.is_low(slow, BASE[("epoll", 100)], "ratio", CFG), "quiet, -50% throughput: low"
    assert not gate.is_low(slow, BASE[("epoll", 100)], "cpu_ratio", CFG), (
        "quiet, efficiency in tolerance: not low")
    assert gate.low_figures({("epoll", 100): slow}, BASE, CFG) == {("epoll", 100)}, (
        "quiet, -50% throughput: a suspect for the confirming round")
    edge = figure([1.21] * 3, [1.76] * 3, [0.03] * 3)  # just inside 40% and 30%
    assert gate.low_figures({("epoll", 100): edge}, BASE, CFG) == set(), (
        "figures just inside both tolerances pass")


def test_busy_machine_judges_efficiency_only():
    squeezed = figure([1.0, 1.1, 1.0], [2.4, 2.5, 2.6], [0.65, 0.70, 0.60])
    assert gate.busy(squeezed, CFG), "pressure 65% over 30%: busy"
    assert not gate.is_low(squeezed, BASE[("epoll", 100)], "ratio", CFG), (
        "busy: a -50% throughput figure is not judged")
    assert gate.low_figures({("epoll", 100): squeezed}, BASE, CFG) == set(), (
        "busy, efficiency fine: no suspect")
    slower = figure([1.0, 1.1, 1.0], [1.2, 1.3, 1.2], [0.65, 0.70, 0.60])  # -52% efficiency
    assert gate.is_low(slower, BASE[("epoll", 100)], "cpu_ratio", CFG), (
        "busy: a -52% efficiency figure is still low")
    assert gate.low_figures({("epoll", 100): slower}, BASE, CFG) == {("epoll", 100)}, (
        "busy, efficiency low: a suspect")


def test_without_psi_every_figure_is_judged():
    fig = figure([1.0, 1.1, 1.0], [2.4, 2.5, 2.6], [None] * 3)
    assert fig["pressure"] is None and not gate.busy(fig, CFG), "no PSI: never busy"
    assert gate.is_low(fig, BASE[("epoll", 100)], "ratio", CFG), "no PSI: throughput judged"


def test_baseline_round_trip():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "baseline.csv")
        with open(path, "w") as f:
            f.write(",".join(gate.BASELINE_HEADER) + "\n")
            f.write("epoll,100,2.206,2.526,64195,29393,run\n")
            f.write("aio,1000,0.330,,9439,26674,run\n")
        base = gate.read_baseline(path)
        assert base[("epoll", 100)] == {"ratio": 2.206, "cpu_ratio": 2.526}, (
            "read_baseline: both figures")
        assert base[("aio", 1000)] == {"ratio": 0.33}, "read_baseline: a missing figure is left out"
        assert gate.read_baseline(os.path.join(d, "none.csv")) == {}, (
            "read_baseline: no file, no baseline")


def test_wall_clock_warns_unless_strict():
    ci = SimpleNamespace(mode="ci")
    saved = os.environ.pop("BENCH_STRICT", None)
    try:
        assert gate.layer_status(ci, 1) == 0, "wall clock, not strict: a failure only warns"
        assert gate.layer_status(SimpleNamespace(mode="baseline"), 1) == 1, (
            "bench-baseline still fails on a bad run")
        os.environ["BENCH_STRICT"] = "1"
        assert gate.layer_status(ci, 1) == 1, "BENCH_STRICT=1: the wall clock fails bench-ci"
        assert gate.layer_status(ci, 0) == 0, "BENCH_STRICT=1: a pass is a pass"
    finally:
        os.environ.pop("BENCH_STRICT", None)
        if saved is not None:
            os.environ["BENCH_STRICT"] = saved


def measurement(per_workload, insns=None, server="epoll"):
    """A detgate measurement: the same syscalls in every workload."""
    return {"syscalls": {server: {w: dict(per_workload) for w in detgate.WORKLOADS}},
            "instructions": {server: {w: insns for w in detgate.WORKLOADS}} if insns else {},
            "errors": {}}


def test_profile_tolerances():
    runs = [measurement({"sendmsg": 1.0, "recvfrom": 1.0, "epoll_wait": 1.0, "futex": 3.0,
                         "close": 1.0, "stray": 0.003}, 4200),
            measurement({"sendmsg": 1.0, "recvfrom": 1.0, "epoll_wait": 0.9, "futex": 9.0,
                         "close": 1.1, "stray": 0.0}, 4210)]
    prof = detgate.make_profile(runs)
    ka = prof["syscalls"]["epoll"]["keep-alive"]
    assert ka["sendmsg"] == {"per_request": 1.0, "tolerance": detgate.TOL_EXACT}, (
        "profile: a count that did not move gets the exact tolerance")
    assert ka["epoll_wait"]["tolerance"] == detgate.TOL_WAIT, (
        "profile: a wait gets at least the wait tolerance")
    assert abs(ka["close"]["tolerance"] - 0.3) < 1e-9, (
        "profile: a count that moved gets 3 x its spread")
    assert abs(ka["futex"]["tolerance"] - 18) < 1e-9, (
        "profile: futex, where the server has it, is judged: 3 x its spread")
    assert "stray" not in ka, "profile: a call now and then outside the requests is left out"
    churn_wait = prof["syscalls"]["epoll"]["churn"]["epoll_wait"]["tolerance"]
    assert churn_wait == detgate.TOL_WAIT_CHURN, (
        "profile: waits in the churn workload are judged, with the churn wait tolerance")
    steady = detgate.make_profile([measurement({"futex": 4.0}), measurement({"futex": 4.0})])
    assert abs(steady["syscalls"]["epoll"]["idle"]["futex"]["tolerance"] - 2.0) < 1e-9, (
        "profile: futex that did not move gets TOL_LOCK_SHARE of its count")
    spin = detgate.make_profile([measurement({"recvfrom:failed": 90.0}),
                                 measurement({"recvfrom:failed": 99.0})])
    assert spin["syscalls"]["epoll"]["idle"]["recvfrom:failed"]["tolerance"] is None, (
        "profile: a spinning server's failed calls are shown, not judged")
    assert (prof["instructions"]["epoll"]["keep-alive"] == {"per_request": 4205.0,
                                                            "tolerance": detgate.TOL_INSNS}), (
        "profile: instructions, the mean, 2% where the runs agree")
    wide = detgate.make_profile([measurement({}, 6000), measurement({}, 6600)])
    assert abs(wide["instructions"]["epoll"]["keep-alive"]["tolerance"] - 3 * 600 / 6300) < 1e-4, (
        "profile: instructions that moved between runs get 3 x their spread")
    assert prof["instructions"]["epoll"]["churn"]["tolerance"] == detgate.TOL_INSNS_CHURN, (
        "profile: instructions in churn, where wakeups follow timing, get 10%")


def test_judge_names_what_changed():
    prof = detgate.make_profile([measurement({"sendmsg": 1.0, "recvfrom": 1.0,
                                              "epoll_wait": 1.0}, 4200)])
    same = measurement({"sendmsg": 1.0, "recvfrom": 1.005, "epoll_wait": 1.4}, 4250)
    fails, warns = detgate.judge(prof, same, ["epoll"])
    assert fails == [] and warns == [], "judge: within tolerances (wait +0.4, insns +1.2%): pass"
    extra = measurement({"sendmsg": 1.0, "recvfrom": 1.0, "epoll_wait": 1.0,
                         "getppid": 1.0}, 4200)
    fails, _ = detgate.judge(prof, extra, ["epoll"])
    assert any(f.startswith("epoll, keep-alive: getppid +1.00/request (new)") for f in fails), (
        "judge: a new syscall fails, named with server, workload and count")
    fewer = measurement({"sendmsg": 1.0, "epoll_wait": 1.0}, 4200)
    fails, _ = detgate.judge(prof, fewer, ["epoll"])
    assert any(f.startswith("epoll, idle: recvfrom -1.00/request (gone)") for f in fails), (
        "judge: a syscall gone fails too (a path not taken)")
    slower = measurement({"sendmsg": 1.0, "recvfrom": 1.0, "epoll_wait": 1.0}, 4410)
    fails, _ = detgate.judge(prof, slower, ["epoll"])
    assert any("user-space instructions +5.0%/request" in f for f in fails), (
        "judge: +5% instructions fails")
    edge = measurement({"sendmsg": 1.0, "recvfrom": 1.0, "epoll_wait": 1.0}, 4280)
    assert detgate.judge(prof, edge, ["epoll"])[0] == [], "judge: +1.9% instructions passes"
    sigio = detgate.make_profile([measurement({"read:failed": 1.0, "recvfrom": 1.0}, 4300)])
    found = measurement({"read:failed": 0.96, "read": 0.04, "recvfrom": 1.0}, 4300)
    assert detgate.judge(sigio, found, ["epoll"])[0] == [], (
        "judge: the successful half of a call that can fail has the wait tolerance")
    newcomer = measurement({"sendmsg": 1.0}, 4200, server="fork")
    fails, warns = detgate.judge(prof, newcomer, ["fork"])
    assert fails == [] and any("no profile, run make bench-ci-update" in w for w in warns), (
        "judge: a server without a profile is a warning, not a failure")
    def fails_with(extra):
        return detgate.judge(prof, measurement(dict({"sendmsg": 1.0, "recvfrom": 1.0,
                                                     "epoll_wait": 1.0}, **extra), 4200),
                             ["epoll"])[0]
    assert ("epoll, churn: nanosleep +0.50/request (new), sleep (0.00 -> 0.50, tolerance 0.02)"
            in fails_with({"nanosleep": 0.5})), (
        "judge: a sleep on every other request fails in churn too, named a sleep")
    assert (any("poll:timeout +0.03/request (new), sleep" in f
                for f in fails_with({"poll:timeout": 0.03}))), (
        "judge: a timeout-only poll is a sleep, counted exactly")
    assert (any(f.startswith("epoll, keep-alive: futex +0.05/request (new), lock")
                for f in fails_with({"futex": 0.05}))), (
        "judge: futex in a server that had none fails, named a lock")
    assert ([f for f in detgate.judge(prof, measurement(
          {"sendmsg": 1.0, "recvfrom": 1.0, "epoll_wait": 1.9}, 4200), ["epoll"])[0]
          if "epoll_wait" in f] == [f"epoll, {w}: epoll_wait +0.90/request, I/O wait (1.00 -> "
                                    "1.90, tolerance 0.60)" for w in detgate.WORKLOADS
                                    if w != "churn"]), (
        "judge: an I/O wait past its tolerance fails, except in churn (tolerance 1.0)")
    mem = dict(measurement({"sendmsg": 1.0}, 4200),
               memory={"epoll": {"kib_per_conn": 0.2, "pss_kib": [260, 460, 660],
                                 "conns": [0, 1000, 2000]}})
    mem2 = json.loads(json.dumps(mem))
    mem2["memory"]["epoll"]["kib_per_conn"] = 0.5
    mprof = detgate.make_profile([mem, mem2])
    assert (mprof["memory"]["epoll"]["kib_per_conn"] == 0.35
            and mprof["memory"]["epoll"]["tolerance"] == 1.0), (
        "profile: memory per connection, the mean, at least TOL_MEM_KIB")
    leaky = json.loads(json.dumps(mem))
    leaky["memory"]["epoll"]["kib_per_conn"] = 4.2
    assert (any(f.startswith("epoll, memory: Pss +3.9 KiB/connection (0.3 -> 4.2, tolerance 1.0")
                for f in detgate.judge(mprof, leaky, ["epoll"])[0])), (
        "judge: 4 KiB more per connection fails, naming the memory")
    assert not [f for f in detgate.judge(mprof, mem, ["epoll"])[0] if "memory" in f], (
        "judge: the same memory per connection passes")
    broken = dict(same, errors={"epoll": "under valgrind (keep-alive): answered 404"})
    fails, _ = detgate.judge(prof, broken, ["epoll"])
    assert fails == ["epoll: under valgrind (keep-alive): answered 404"], (
        "judge: a server that cannot be measured fails")


if __name__ == "__main__":
    import pytest  # Debian: python3-pytest

    sys.exit(pytest.main([__file__] + sys.argv[1:]))
