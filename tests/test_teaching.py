#!/usr/bin/env python3
"""test_teaching.py - the lecture's own tools run and print what the docs say they print.

    python3 tests/test_teaching.py [-k NAME]

    demo_idle   make demo-idle's script (bench/demo_idle.py), shortened: both servers, both
                idle steps, a ratio line each
    trace       scripts/trace.sh epoll prints the two requests' calls and draws the swimlane

Needs make, make bench-idlers bench-loadgen. Ends with "N passed, M failed". No timings
are judged: the figures a run prints are the lecture's, not the test's.
"""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def run(cmd, env=None, timeout=300):
    e = dict(os.environ, **(env or {}))
    p = subprocess.run(cmd, cwd=REPO, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout


@case
def demo_idle():
    rc, out = run([sys.executable, "bench/demo_idle.py"],
                  env={"DEMO_IDLE": "300", "DEMO_SECS": "0.5", "DEMO_RATE": "500"})
    assert rc == 0, f"exit {rc}:\n{out}"
    for server in ("poll", "epoll"):
        for m in (0, 300):
            assert re.search(rf"^{server}\s+{m}\s+\d+", out, re.M), f"no {server} idle={m}:\n{out}"
        assert re.search(rf"^{server}: CPU per request x[\d.]+ with 300 idle", out, re.M), out
    assert "nginx" not in out and "h2o" not in out and "lighttpd" not in out, out


@case
def trace():
    rc, out = run(["scripts/trace.sh", "epoll"],
                  env={"TRACE_SVG": os.path.join(REPO, "build", "trace", "test-epoll.svg")})
    assert rc == 0, f"exit {rc}:\n{out}"
    assert "No such file" not in out, out
    assert out.count("recvfrom(") >= 2 and "epoll_wait(" in out, out


def main():
    args = sys.argv[1:]
    pick = args[args.index("-k") + 1] if "-k" in args else ""
    passed = failed = 0
    for fn in CASES:
        if pick and pick not in fn.__name__:
            continue
        try:
            fn()
            print(f"ok   {fn.__name__}", flush=True)
            passed += 1
        except (AssertionError, subprocess.TimeoutExpired) as e:
            print(f"FAIL {fn.__name__}: {e}", flush=True)
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
