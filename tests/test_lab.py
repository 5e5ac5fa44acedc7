#!/usr/bin/env python3
"""test_lab.py - the lab "write a poller" can be passed and can be failed.

    pytest-3 tests/test_lab.py

    reference   make grade LAB=tests/lab (the reference solution): PASS, exit 0
    skeleton    make grade LAB=labs/poller (as shipped to students): FAIL, exit != 0

About 25 s (the grader runs the integration suite and the counted profile). Needs perf
and valgrind, as make bench-ci does. Plain pytest functions, one per lab.
"""

import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def grade(lab):
    """make grade LAB=lab: (exit status, (score, PASS|FAIL) or None, output)."""
    p = subprocess.run(["make", "-s", "grade", f"LAB={lab}"], cwd=REPO, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    m = re.search(r"^score (\d+)/100: (PASS|FAIL)$", p.stdout, re.M)
    return p.returncode, (int(m.group(1)), m.group(2)) if m else None, p.stdout


@pytest.mark.parametrize("lab, want", [("tests/lab", "PASS"), ("labs/poller", "FAIL")],
                         ids=["reference", "skeleton"])
def test_grade(lab, want):
    rc, verdict, out = grade(lab)
    assert verdict is not None and verdict[1] == want and (rc == 0) == (want == "PASS"), \
        f"wanted {want}, got {verdict} (exit {rc}):\n{out[-2000:]}"
    print(f"score {verdict[0]}/100, {verdict[1]} (exit {rc})")
