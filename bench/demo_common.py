"""demo_common.py - what the class demos share (bench/demo_idle.py, bench/demo_rpc.py).

The repository's paths, the split of the CPUs between server and clients, a scratch
directory holding the bench's files (www.generate) and the logs, and how a demo ends:
the directory removed after a clean run, kept and named after a failed one.
"""

import os
import shutil
import sys
import tempfile

import www

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.path.join(REPO, os.environ.get("BUILD", "build"))


def bench_tool(name):
    return os.path.join(BUILD_DIR, "bench", name)


def require(target, paths):
    """Exits with a pointer to `make target` when a binary the demo runs is missing."""
    for path in paths:
        if not os.access(path, os.X_OK):
            sys.exit(f"{target}: no {os.path.relpath(path, REPO)}: run make {target}")


def split_cores():
    """Server on the first half of the CPUs this process may use, clients on the rest."""
    cpus = sorted(os.sched_getaffinity(0))
    half = max(1, len(cpus) // 2)
    return cpus[:half], cpus[half:] or cpus


def scratch(target):
    """A temporary directory for the logs, with the bench's files in its www/."""
    logs = tempfile.mkdtemp(prefix=f"c10k-{target}.")
    root = os.path.join(logs, "www")
    www.generate(root)
    return logs, root


def finish(target, logs, failed):
    """The exit status; the logs are kept, and named, only when something failed."""
    if failed:
        print(f"{target}: logs kept in {logs}", flush=True)
        return 1
    shutil.rmtree(logs, ignore_errors=True)
    return 0
