#!/usr/bin/env python3
"""labs/grade.py BINARY - grades a lab server (make grade LAB=DIR builds and runs it).

Four checks, 100 points, each printed with what it measured and why it matters:

    correct        60  tests/integration.py, the suite every bin/* server passes: the
                       share of its cases that pass
    one wait       15  keep-alive, back to back: epoll_wait (or any wait) per request <= 1.15
    no epoll_ctl   10  keep-alive: epoll_ctl per request <= 0.02 (interest changes only
                       when it must; a response that fits in the socket buffer needs none)
    idle is free   15  with 100 idle connections held: no more system calls per request
                       (+0.1 at most) and no more user-space instructions per request
                       (+200 at most) than without them: the wait is O(ready)

The counts are bench/detgate.py's: system calls counted by the kernel (perf), user-space
instructions by valgrind, each per request as the difference of two run lengths, so they
do not depend on how busy the machine is. Ends with "score N/100" and PASS (>= 90) or
FAIL; the exit status is 0 on PASS.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

import detgate  # noqa: E402

PASS_SCORE = 90
MAX_WAITS = 1.15
MAX_CTL = 0.02
MAX_IDLE_CALLS = 0.1
MAX_IDLE_INSNS = 200


def integration(binary):
    """(passed, failed, the failing lines) of the integration suite against binary."""
    p = subprocess.run([sys.executable, os.path.join(REPO, "tests", "integration.py"), binary],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    m = re.search(r"^(\d+) passed, (\d+) failed", p.stdout, re.M)
    fails = [line for line in p.stdout.splitlines() if line.startswith("FAIL")]
    if not m:
        return 0, 1, fails or [p.stdout.strip()[-300:]]
    return int(m.group(1)), int(m.group(2)), fails


def counts(binary):
    """{workload: {syscall: per request}} and {workload: instructions per request}."""
    root = detgate.make_root()
    tmp = tempfile.mkdtemp(prefix="c10k-grade-")
    # valgrind writes its counts from inside the server, which, started as root, serves as
    # nobody: the directory is writable by all, sticky as /tmp is (as bench/detgate.py's).
    os.chmod(tmp, 0o1777)
    try:
        calls = {w: detgate.per_request(binary, root, w, "perf", tmp)[0]
                 for w in ("keep-alive", "idle")}
        insns = {w: detgate.per_request(binary, root, w, "valgrind", tmp)[0]["instructions"]
                 for w in ("keep-alive", "idle")}
        return calls, insns
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if len(sys.argv) != 2 or not os.access(sys.argv[1], os.X_OK):
        sys.exit("usage: labs/grade.py BINARY (make grade LAB=DIR builds it)")
    binary = os.path.abspath(sys.argv[1])
    name = os.path.basename(binary)
    score = 0

    print(f"grade: {name}: the integration suite (about 10 s)", flush=True)
    passed, failed, fails = integration(binary)
    points = round(60 * passed / max(passed + failed, 1))
    score += points
    print(f"  correct       {points:>2}/60  {passed} of {passed + failed} cases pass")
    for line in fails[:10]:
        print(f"                       {line}")
    if len(fails) > 10:
        print(f"                       ... and {len(fails) - 10} more failures")

    print(f"grade: {name}: system calls (perf) and instructions (valgrind) per request "
          "(about 20 s)", flush=True)
    calls = insns = None
    if detgate.check_tools(("syscalls", "instructions")):
        try:
            calls, insns = counts(binary)
        except (detgate.GateError, OSError) as e:  # OSError: it died before the client came
            print(f"  the profile could not be measured: {e}")
    if calls:
        keep = calls["keep-alive"]
        waits = sum(v for k, v in keep.items() if detgate.kind(k) == "wait" and ":" not in k)
        ctl = keep.get("epoll_ctl", 0.0)
        idle_calls = sum(calls["idle"].values()) - sum(keep.values())
        idle_insns = insns["idle"] - insns["keep-alive"]
        shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(keep.items()) if abs(v) >= 0.01)
        checks = [
            ("one wait", 15, waits <= MAX_WAITS,
             f"{waits:.2f} waits per request (at most {MAX_WAITS}); all calls: {shown}"),
            ("no epoll_ctl", 10, ctl <= MAX_CTL,
             f"{ctl:.2f} epoll_ctl per request (at most {MAX_CTL})"),
            ("idle is free", 15, idle_calls <= MAX_IDLE_CALLS and idle_insns <= MAX_IDLE_INSNS,
             f"with {detgate.IDLE_CONNS} idle connections: {idle_calls:+.2f} calls and "
             f"{idle_insns:+.0f} instructions per request (at most +{MAX_IDLE_CALLS} and "
             f"+{MAX_IDLE_INSNS})"),
        ]
        for label, worth, ok, what in checks:
            score += worth if ok else 0
            print(f"  {label:<13} {worth if ok else 0:>2}/{worth}  {what}")
    print(f"score {score}/100: {'PASS' if score >= PASS_SCORE else 'FAIL'}")
    return 0 if score >= PASS_SCORE else 1


if __name__ == "__main__":
    sys.exit(main())
