#!/usr/bin/env python3
"""test_sendpath.py - the io_uring measurement tools that answer where uring's CPU goes:
build/bench/sendpath (bench/c/sendpath.c) and bench/sendpath.py's table, and
scripts/bench-pair.py on a `make profile` run.

Small transfers only: these check that each way of sending moves every byte and that the
figures are read the way the docs say, not what the figures are (`make sendpath` measures).
Plain pytest functions (`pytest-3 tests/test_sendpath.py`).
"""

import csv
import os
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.path.join(REPO, os.environ.get("BUILD", "build"))
SENDPATH = os.path.join(BUILD, "bench", "sendpath")
import sendpath  # noqa: E402  (bench/, from pytest.ini's pythonpath)


def run_sendpath(*args):
    if not os.access(SENDPATH, os.X_OK):
        pytest.skip(f"no {SENDPATH} (make)")
    with tempfile.TemporaryDirectory() as tmp:
        return subprocess.run([SENDPATH, "--dir", tmp] + list(args), capture_output=True,
                              text=True, timeout=120)


@pytest.mark.parametrize("size", [4096, 100_000, 1 << 20])
def test_every_method_moves_every_byte(size):
    """Each method sends its bodies whole (the sink has read them all before the row is
    printed, or the tool would not return), and prints one row with positive CPU figures.
    100,000 bytes is no multiple of a page or of the pipe: the splice's last pipeful is
    short."""
    out = run_sendpath("--size", str(size), "--mib", "2", "--round", "3",
                       "splice", "send", "zc", "zc-fixed")
    assert out.returncode == 0, f"sendpath --size {size}: {out.stderr}"
    rows = out.stdout.splitlines()
    assert [r.split(",")[0] for r in rows] == ["splice", "send", "zc", "zc-fixed"], rows
    for r in rows:
        method, rsize, rnd, mib, sender, sink, wall = r.split(",")
        assert int(rsize) == size and rnd == "3", r
        bodies = max(1, int(2 * (1 << 20) // size))
        assert abs(float(mib) - bodies * size / (1 << 20)) < 0.06, f"MiB moved: {r}"
        assert float(sender) > 0 and float(sink) > 0 and float(wall) > 0, r


def test_unknown_method_is_refused():
    out = run_sendpath("--size", "4096", "sendfile")
    assert out.returncode == 2 and "usage" in out.stderr, out.stderr


def test_table_ratios_and_verdicts():
    """The table pairs each method with splice round by round: five rounds all below 1 give
    'cheaper'; four rounds give no verdict."""
    rows = []
    for rnd in range(5):
        for method, total in (("splice", 100.0 + rnd), ("send", 80.0 + rnd),
                              ("zc", 150.0 + rnd)):
            rows.append({"method": method, "size": 65536.0, "round": float(rnd), "mib": 256.0,
                         "sender_us_per_mib": total * 0.6, "sink_us_per_mib": total * 0.4,
                         "wall_s": 0.1, "total_us_per_mib": total})
    text = sendpath.table(rows, ["splice", "send", "zc"])
    send = next(line for line in text.splitlines() if line.strip().startswith("send "))
    zc = next(line for line in text.splitlines() if line.strip().startswith("zc "))
    assert "64 KiB bodies" in text
    assert "n=5  cheaper" in send and "0.80" in send, send
    assert "n=5  dearer" in zc and "1.50" in zc, zc
    text4 = sendpath.table([r for r in rows if r["round"] < 4], ["splice", "send", "zc"])
    assert "n=4  no verdict" in text4, text4


def test_sizes_parse():
    assert [sendpath.parse_size(s) for s in ("4k", "1m", "300", "2M")] == [
        4096, 1 << 20, 300, 2 << 20]
    assert [sendpath.fmt_size(n) for n in (4096, 1 << 20, 300)] == ["4 KiB", "1 MiB", "300 B"]


def write_profile_csv(path, pairs):
    """A profile.csv with one row per (server, rep, cpu_us_per_req, client_bound)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["server", "rep", "conns", "offered_rps", "cpu_us_per_req", "client_bound"])
        for server, rep, cpu, bound in pairs:
            w.writerow([server, rep, 1000, 20000, cpu, bound])


def test_bench_pair_reads_a_profile_run():
    """scripts/bench-pair.py on a `make profile` run pairs by round and says how many rounds
    were client-bound; with five rounds all above 1 its verdict is 'dearer'."""
    with tempfile.TemporaryDirectory() as d:
        write_profile_csv(os.path.join(d, "profile.csv"),
                          [(s, rep, cpu * (1 + rep / 100), int(rep == 2))
                           for rep in range(5) for s, cpu in (("floor", 10.0), ("uring", 12.0))])
        out = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench-pair.py"),
                              d, "uring", "floor"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "1.20 [1.20–1.20]  n=5  dearer" in out.stdout, out.stdout
    assert "1 of 5 rounds client-bound" in out.stdout, out.stdout
    assert "1000 connections, 20,000 req/s" in out.stdout, out.stdout


if __name__ == "__main__":
    sys.exit(pytest.main([__file__] + sys.argv[1:]))


def test_send_zc_patch_applies():
    """bench/experiments/send_zc/send-zc.patch applies to the commit ab.py builds it on."""
    sys.path.insert(0, os.path.join(REPO, "bench", "experiments", "send_zc"))
    import ab
    with tempfile.TemporaryDirectory() as d:
        tree = os.path.join(d, "tree")
        add = subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", "-q", tree,
                              ab.BASE], capture_output=True, text=True)
        if add.returncode != 0:
            pytest.skip(f"no commit {ab.BASE} here (a shallow clone?): {add.stderr.strip()}")
        try:
            check = subprocess.run(["git", "-C", tree, "apply", "--check",
                                    os.path.join(REPO, "bench", "experiments", "send_zc",
                                                 "send-zc.patch")],
                                   capture_output=True, text=True)
        finally:
            subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", tree])
    assert check.returncode == 0, check.stderr
