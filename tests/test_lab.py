#!/usr/bin/env python3
"""test_lab.py - the lab "write a poller" can be passed and can be failed.

    python3 tests/test_lab.py

    reference   make grade LAB=tests/lab (the reference solution): PASS, exit 0
    skeleton    make grade LAB=labs/poller (as shipped to students): FAIL, exit != 0

About 25 s (the grader runs the integration suite and the counted profile). Needs perf
and valgrind, as make bench-ci does. Ends with "N passed, M failed".
"""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def grade(lab):
    p = subprocess.run(["make", "-s", "grade", f"LAB={lab}"], cwd=REPO, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    m = re.search(r"^score (\d+)/100: (PASS|FAIL)$", p.stdout, re.M)
    return p.returncode, (int(m.group(1)), m.group(2)) if m else None, p.stdout


def main():
    passed = failed = 0
    for name, lab, want in (("reference", "tests/lab", "PASS"),
                            ("skeleton", "labs/poller", "FAIL")):
        rc, verdict, out = grade(lab)
        ok = verdict is not None and verdict[1] == want and (rc == 0) == (want == "PASS")
        if ok:
            print(f"ok   {name}: score {verdict[0]}/100, {verdict[1]} (exit {rc})", flush=True)
            passed += 1
        else:
            print(f"FAIL {name}: wanted {want}, got {verdict} (exit {rc}):\n{out[-2000:]}",
                  flush=True)
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
