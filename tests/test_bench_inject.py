#!/usr/bin/env python3
"""test_bench_inject.py - the bench sees a server made ~30% dearer per request.

Runs the harness of `make bench-quick` (bench/bench.py quick), reduced to what the check
needs: bin/epoll and bin/epoll under tests/inject/busy_send.c (LD_PRELOAD: 8 us of busy work
before the one sendmsg that sends each answer, ~30% net), no peers, no
closed loop, no idle sweep, 100 connections, one offered rate, 15,000 req/s (75% of a
ceiling given as 20,000 rather than measured, which on a busy machine can come out far too
low; near it a request costs bin/epoll ~20 us, while at low rates each request is its own
wake-up and costs two to three times that, and the noise with it), 9 interleaved
repetitions, a client-bound one measured once more. Passes when the slowed server's CPU per request comes out above
bin/epoll's: the ratio within each repetition (both measured seconds apart), its median and
order-statistics interval ([x(2), x(8)] of 9, 96% coverage; fewer when client-bound
repetitions were dropped), the interval wholly above 1; and summary.md says "dearer than
epoll" rather than "no verdict". The two unpaired intervals are printed too: on a machine
whose load drifts they are wider than the difference, which is why the bench pairs.

This is a benchmark run (about 30 s), not a unit test: it is `make bench-check`, outside
`make test`, and on a busy machine it can fail for want of quiet (it says so). Its negative
control: with C10K_INJECT_BUSY_NS=0 (the preload spins for nothing) it must fail.
Plain pytest functions over one run (`pytest-3 -s tests/test_bench_inject.py`: -s shows
the figures it prints).
"""

import glob
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
import c10kutil
import efficiency

BUILD = os.environ.get("BUILD", "build")
SLOW = "epoll@busy_send"
BUSY_NOTE = ("(a timing check: on a busy machine the intervals can overlap; see the load "
             "average printed above)")


@pytest.fixture(scope="module")
def run():
    """The reduced bench-quick run: (its directory, its grid rows, their summarise())."""
    need = [os.path.join(REPO, "bin", "epoll"),
            os.path.join(REPO, BUILD, "inject", "busy_send.so"),
            os.path.join(REPO, BUILD, "bench", "floor"),
            os.path.join(REPO, BUILD, "bench", "loadgen")]
    missing = [p for p in need if not os.path.exists(p)]
    assert not missing, (f"not built: {', '.join(missing)} "
                         "(make all inject bench-floor bench-loadgen)")
    env = dict(os.environ, BUILD=BUILD, BENCH_SERVERS=f"epoll,{SLOW}", BENCH_PEERS="",
               BENCH_CONNS="", BENCH_IDLE="", BENCH_PERF="0", BENCH_OPEN_CONNS="100",
               BENCH_FRACTIONS="0.75", BENCH_OPEN_REPS="9", BENCH_CEILING="20000",
               BENCH_KNEE_REPS="0", BENCH_OPEN_SECS="1", BENCH_OPEN_WARMUP="0.3")
    before = set(glob.glob(os.path.join(REPO, "results", "*-quick*")))
    p = subprocess.run([sys.executable, os.path.join(REPO, "bench", "bench.py"), "quick"],
                       env=env, capture_output=True, text=True, timeout=600)
    runs = sorted(set(glob.glob(os.path.join(REPO, "results", "*-quick*"))) - before)
    assert runs, ("the reduced bench-quick run wrote a results directory: "
                  f"{p.stdout[-2000:]} {p.stderr[-2000:]}")
    run_dir = runs[-1]
    print(f"     run: {os.path.relpath(run_dir, REPO)} (load average at start: "
          f"{open('/proc/loadavg').read().split()[0]})")
    rows = [r for r in c10kutil.read_csv(os.path.join(run_dir, "openloop.csv"))
            if r.get("phase") == "grid"]
    fig = efficiency.summarise(rows)
    for (server, conns, rate), f in fig.items():
        print(f"     {server} @ {rate:,.0f}/s: CPU µs/req "
              f"{efficiency.fmt_interval(f['cpu_us_per_req'])} over {f['n']} repetitions "
              f"({f['dropped']} client-bound dropped)")
    return run_dir, rows, fig


def test_both_have_a_cpu_figure(run):
    _, _, fig = run
    cpu = {server: f["cpu_us_per_req"] for (server, _, _), f in fig.items()}
    assert cpu.get(SLOW) and cpu.get("epoll"), "both servers have a CPU figure"


def test_slowed_server_is_dearer(run):
    _, rows, fig = run
    cpu = {server: f["cpu_us_per_req"] for (server, _, _), f in fig.items()}
    a, b = cpu.get(SLOW), cpu.get("epoll")
    rate = next(iter(fig))[2] if fig else None
    ratio = efficiency.paired(rows, SLOW, "epoll", 100, rate)
    assert a and b and ratio, "both servers have a paired ratio"
    print(f"     {SLOW} × epoll, paired by repetition: {efficiency.fmt_interval(ratio, 2)} "
          f"(n={ratio[4]}); "
          f"unpaired intervals {'apart' if efficiency.compare(a, b) == 'higher' else 'overlap'}")
    assert efficiency.verdict(ratio) == "dearer", (
        f"{SLOW} costs more CPU per request than epoll: the interval of the per-repetition "
        f"ratios lies above 1 {BUSY_NOTE}")


def test_summary_says_dearer(run):
    run_dir, _, _ = run
    with open(os.path.join(run_dir, "summary.md")) as f:
        summary = f.read()
    assert f"- {SLOW}:" in summary and "dearer than epoll" in summary.split(f"- {SLOW}:")[1] \
        .splitlines()[0], f"summary.md: the slowed server is 'dearer than epoll' {BUSY_NOTE}"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__] + sys.argv[1:]))
