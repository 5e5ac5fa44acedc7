#!/usr/bin/env python3
"""test_models.py - adding a model is one row in servers/models.tsv and one servers/NAME.c.

In a copy of the tree (the sources, and build/'s objects where they exist, so that only the
new model is compiled), it adds bin/dummy: servers/dummy.c, a copy of servers/epoll.c, and
a row, the table's first, that links loop.o, joins the asan build only, has every trait, a
colour of its own and a reason to skip valgrind. Then it checks that the Makefile builds
bin/dummy from that row, and that every tool that knows models sees it from the row: the
bench's server list and order, the stress suite's, the plots' style, the gate's valgrind
skip and server list, the swimlane's lanes. An executable dropped into bin/ without a row
(bin/mine) must stay benchable with defaults: listed last, a spare colour. And the real
table has one row for each servers/*.c. Plain pytest functions (`pytest-3
tests/test_models.py`): the copy is built and probed once, by module fixtures.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLOUR, POINT = "#123456", 1
REASON = "a test model, not counted under valgrind"
ROW = "\t".join(["dummy", "loop.o", "-", "asan", "fdset,spins,blockingio,iouring", COLOUR,
                 str(POINT), REASON]) + "\n"
TREE = ("Makefile", "common", "servers", "bench", "tests", "scripts")

def copy_tree(dst):
    """The sources, and build/ if it exists: copy2 keeps the times, so make finds the
    objects newer than their sources and compiles only what is new."""
    ignore = shutil.ignore_patterns("__pycache__", "fuzz", "inject", "lab")
    for name in TREE:
        src = os.path.join(REPO, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dst, name), ignore=ignore)
        else:
            shutil.copy2(src, dst)
    build = os.path.join(REPO, "build")
    os.makedirs(os.path.join(dst, "build"))
    for part in ("common", "libc10k.a"):
        src = os.path.join(build, part)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dst, "build", part))
        elif os.path.exists(src):
            shutil.copy2(src, os.path.join(dst, "build", part))


def add_dummy(tree):
    shutil.copy(os.path.join(tree, "servers", "epoll.c"), os.path.join(tree, "servers", "dummy.c"))
    table = os.path.join(tree, "servers", "models.tsv")
    lines = open(table).readlines() if os.path.exists(table) else []
    head = [line for line in lines if line.startswith("#")]
    rows = [line for line in lines if not line.startswith("#")]
    with open(table, "w") as f:
        f.writelines(head + [ROW] + rows)


def make(tree, *args):
    """make in the copy, without the flags of a make this may run under (make test)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-C", tree, *args], capture_output=True, text=True, env=env)


# What each tool says about bin/dummy and bin/mine, printed as JSON by a process in the copy.
PROBE = r"""
import json, os, sys
sys.path[:0] = ["bench", "tests", "scripts"]
out = {}
def probe(key, fn):
    try:
        out[key] = fn()
    except (Exception, SystemExit) as e:  # pick_servers() exits when bin/ has nothing
        out[key] = f"error: {type(e).__name__}: {e}"
import bench, detgate, plots, stress, swimlane
probe("bench", lambda: bench.pick_servers(""))
probe("stress", lambda: [os.path.basename(p) for p in stress.find_binaries()])
probe("style", lambda: plots.style("dummy", ["dummy", "mine"]))
probe("style_mine", lambda: plots.style("mine", ["dummy", "mine"]))
probe("valgrind_skip", lambda: detgate.VALGRIND_SKIP.get("dummy"))
probe("detgate", lambda: detgate.servers())
probe("blocking_sockets", lambda: "dummy" in swimlane.BLOCKING_SOCKETS)
probe("io_wq", lambda: swimlane.io_wq("dummy"))
probe("io_wq_mine", lambda: swimlane.io_wq("mine"))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tree():
    """The copy with bin/dummy added: (its path, make's result for bin/dummy)."""
    path = tempfile.mkdtemp(prefix="c10k-models-")
    try:
        copy_tree(path)
        add_dummy(path)
        yield path, make(path, "-j2", "bin/dummy")
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def seen(tree):
    """What each tool of the copy says about bin/dummy and bin/mine (PROBE's JSON)."""
    path, _ = tree
    dummy = os.path.join(path, "bin", "dummy")
    if os.path.exists(dummy):
        shutil.copy(dummy, os.path.join(path, "bin", "mine"))  # a user's own, no row
    env = {k: v for k, v in os.environ.items() if k != "BENCH_SERVERS"}
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=path, capture_output=True,
                         text=True, env=env)
    try:
        return json.loads(run.stdout.splitlines()[-1])
    except (IndexError, ValueError):
        pytest.fail(f"the tools cannot be imported:\n{run.stdout + run.stderr}")


def test_make_builds_dummy(tree):
    path, built = tree
    assert built.returncode == 0 and os.access(os.path.join(path, "bin", "dummy"), os.X_OK), \
        "make builds bin/dummy from its row and servers/dummy.c:\n" + built.stdout + built.stderr


def test_links_row_objects(tree):
    _, built = tree
    link = [line for line in built.stdout.splitlines() if "-o bin/dummy " in line]
    assert link and "build/common/loop.o" in link[0], \
        "bin/dummy links the objects its row names (loop.o):\n" + built.stdout


def test_sanitizers_column(tree):
    path, _ = tree
    asan = make(path, "-n", "asan").stdout
    tsan = make(path, "-n", "tsan").stdout
    assert "bin-asan/dummy" in asan, "in the asan build:\n" + asan[-2000:]
    assert "bin-tsan/dummy" not in tsan, "not in tsan"


@pytest.mark.parametrize("tool", ["bench", "stress"])
def test_server_list(seen, tool):
    """dummy first (its row is), mine last (no row)."""
    got = seen.get(tool)
    assert isinstance(got, list) and got[:1] == ["dummy"] and got[-1:] == ["mine"], got


def test_plots_style(seen):
    style = str(seen.get("style"))
    assert f'"{COLOUR}"' in style and f" pt {POINT} " in style, "dummy's colour and point type"


def test_plots_spare_style(seen):
    assert " pt 4 " in str(seen.get("style_mine")), "mine has a spare style"


def test_detgate_valgrind_skip(seen):
    assert seen.get("valgrind_skip") == REASON, "dummy's valgrind_skip reason"


def test_detgate_servers(seen):
    measured = seen.get("detgate") or []
    assert "dummy" in measured and "mine" in measured, "dummy and mine are measured"


def test_swimlane_traits(seen):
    """dummy's traits (blockingio, iouring), none for mine."""
    assert seen.get("blocking_sockets") is True
    assert seen.get("io_wq") is True
    assert seen.get("io_wq_mine") is False


def test_table_matches_files():
    import c10kutil
    rows = set(c10kutil.models())
    files = {f[:-2] for f in os.listdir(os.path.join(REPO, "servers")) if f.endswith(".c")}
    assert rows == files, "servers/models.tsv has one row per servers/*.c: " \
        f"rows without a file: {sorted(rows - files)}, files without a row: {sorted(files - rows)}"
