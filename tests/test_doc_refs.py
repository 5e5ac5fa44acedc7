#!/usr/bin/env python3
"""test_doc_refs.py - scripts/check-doc-refs.py fails on a citation that no longer holds.

    pytest-3 tests/test_doc_refs.py     (DOC_REFS_CHECKER=PATH for another checker)

Writes small docs and code into a temporary folder and runs the checker on each doc: a
name that the cited file defines passes; a name it does not define fails (also when the
name lives in another file, and the failure says which); a path:LINE beyond the file's end
fails. Plain pytest functions, one per doc.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKER = os.environ.get("DOC_REFS_CHECKER",
                         os.path.join(ROOT, "scripts", "check-doc-refs.py"))

C_SOURCE = """\
#include <stdio.h>

#define RING_SIZE 64
#define MAX(a, b) ((a) > (b) ? (a) : (b))

enum state { STATE_READ, STATE_WRITE = 4 };

struct widget {
    int fd;
    char name[16];
    void (*on_ready)(struct widget *w);
};

typedef int widget_fn(struct widget *w);

static int ready_count;
const char *const state_names[] = {"read", "write"};

static int
widget_open(struct widget *w)
{
    int local_var = RING_SIZE;
    return w->fd + local_var;
}

void widget_close(struct widget *w)
{
    (void)w; /* widget_gone() was here */
}

int foo_start(void) { return 0; }
"""

PY_SOURCE = """\
LIMIT = 10


class Ladder:
    def __init__(self):
        self.step = 1

    def climb(self):
        return self.step


def foo_helper():
    return LIMIT


async def serve():
    await climb_later()
"""

MAKEFILE = """\
SERVERS = one two
OBJS_one := a.o

bench: all
\t@echo bench
"""


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    """A folder with the cited files in it; each case writes its doc.md there."""
    d = tmp_path_factory.mktemp("doc-refs")
    for name, text in (("widget.c", C_SOURCE), ("ladder.py", PY_SOURCE),
                       ("rules.mk", MAKEFILE)):
        (d / name).write_text(text, encoding="utf-8")
    return str(d)


def run(tmp, doc_text):
    """Runs the checker on one doc in tmp: (exit status, output)."""
    doc = os.path.join(tmp, "doc.md")
    with open(doc, "w", encoding="utf-8") as f:
        f.write(doc_text)
    r = subprocess.run([sys.executable, CHECKER, doc], capture_output=True, text=True,
                       timeout=300)
    return r.returncode, r.stdout + r.stderr


# (what, doc): names that the file defines.
PASSES = [
    ("a C function", "`widget_open` (widget.c) opens it.\n"),
    ("a C function, `name()` and in", "Then `widget_close()` in widget.c.\n"),
    ("C macros, tag, constants, typedef, globals, members",
     "`RING_SIZE`, `MAX`, `struct widget`, `STATE_WRITE`, `widget_fn`, "
     "`ready_count`, `state_names`, `name` and `on_ready` in widget.c.\n"),
    ("a link to the file", "`widget_open` in [the file](widget.c#L1).\n"),
    ("path: name", "See `widget.c: widget_open` and widget.c: `foo_start`.\n"),
    ("Python def, class, assignment, attribute, keyword",
     "`Ladder`, `climb`, `LIMIT`, `step` and `await` (ladder.py).\n"),
    ("a Makefile target and variable", "`bench` and `OBJS_one` in rules.mk.\n"),
    ("a prefix for the section",
     "## A\n\n`foo_*` functions are in widget.c.\n\n- `foo_start` starts.\n"),
    ("a name with its own file under a prefix",
     "## A\n\n`foo_*` functions are in widget.c.\n\n- `foo_helper` (ladder.py).\n"),
    ("a path:LINE inside the file", "See widget.c:3 and widget.c:19-23.\n"),
    ("a fenced block is not a citation", "```\n`gone_fn` (widget.c) widget.c:999\n```\n"),
]

# (what, doc, what the output must say): names that it does not define, and line numbers
# outside the file; each one failure.
FAILS = [
    ("a missing C function", "`widget_gone` (widget.c) is gone.\n", ["widget_gone", "widget.c"]),
    ("a local variable is not a definition", "`local_var` in widget.c.\n", []),
    ("one missing name in a list", "`widget_open`, `widget_lost` and `RING_SIZE` (widget.c).\n",
     ["widget_lost"]),
    ("a missing name in path: name", "`widget.c: widget_lost`.\n", []),
    ("a missing name in a link", "`widget_lost` in [x](widget.c).\n", []),
    ("a missing Python name", "`descend` in ladder.py.\n", []),
    ("a missing Makefile target", "`deploy` in rules.mk.\n", []),
    ("a missing name under a prefix",
     "## A\n\n`foo_*` functions are in widget.c.\n\n- `foo_stop` stops.\n\n"
     "## B\n\n`foo_elsewhere` is not under the prefix.\n", ["foo_stop"]),
    ("a missing file", "`widget_open` (nowhere.c).\n", ["nowhere.c"]),
    ("a name cited in the wrong file says where it is",
     "`conn_drive` in [conn.c](%s).\n" % os.path.join(ROOT, "common", "conn.c"),
     ["conn_drive", "defined in common/"]),
    ("a path:LINE beyond the file's end", "See widget.c:999.\n",
     ["widget.c:999", "outside the file"]),
    ("a path:A-B running past the end", "See widget.c:30-40.\n", []),
    ("a path:LINE whose name is not there", "`widget_close` (widget.c:3).\n", []),
]


@pytest.mark.parametrize("what, doc", PASSES, ids=[w for w, _ in PASSES])
def test_passes(tmp, what, doc):
    rc, out = run(tmp, doc)
    assert rc == 0 and " 0 failed" in out, f"should pass, got exit {rc}:\n{out}"


@pytest.mark.parametrize("what, doc, says", FAILS, ids=[w for w, _, _ in FAILS])
def test_fails(tmp, what, doc, says):
    rc, out = run(tmp, doc)
    fail_lines = [line for line in out.splitlines() if line.startswith("FAIL ")]
    assert rc == 1 and len(fail_lines) == 1, f"should fail once, got exit {rc}:\n{out}"
    for s in says:
        assert s in out
