#!/usr/bin/env python3
"""test_doc_refs.py - scripts/check-doc-refs.py fails on a citation that no longer holds.

    tests/test_doc_refs.py [CHECKER]     (default: scripts/check-doc-refs.py)

Writes small docs and code into a temporary folder and runs the checker on each doc: a
name that the cited file defines passes; a name it does not define fails (also when the
name lives in another file, and the failure says which); a path:LINE beyond the file's end
fails. Ends with "N passed, M failed".
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "scripts", "check-doc-refs.py")

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

OUTCOMES = []  # one bool per case


def run(tmp, doc_text):
    """Runs the checker on one doc in tmp: (exit status, output)."""
    doc = os.path.join(tmp, "doc.md")
    with open(doc, "w", encoding="utf-8") as f:
        f.write(doc_text)
    r = subprocess.run([sys.executable, CHECKER, doc], capture_output=True, text=True,
                       timeout=300)
    return r.returncode, r.stdout + r.stderr


def passes(tmp, what, doc_text):
    rc, out = run(tmp, doc_text)
    OUTCOMES.append(rc == 0 and " 0 failed" in out)
    if not OUTCOMES[-1]:
        print(f"FAIL {what}: should pass, got exit {rc}:\n{out}")


def fails(tmp, what, doc_text, count=1, says=()):
    rc, out = run(tmp, doc_text)
    fail_lines = [line for line in out.splitlines() if line.startswith("FAIL ")]
    OUTCOMES.append(rc == 1 and len(fail_lines) == count and all(s in out for s in says))
    if not OUTCOMES[-1]:
        print(f"FAIL {what}: should fail {count} time(s) saying {list(says)}, "
              f"got exit {rc}:\n{out}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (("widget.c", C_SOURCE), ("ladder.py", PY_SOURCE),
                           ("rules.mk", MAKEFILE)):
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(text)

        # Names that the file defines.
        passes(tmp, "a C function", "`widget_open` (widget.c) opens it.\n")
        passes(tmp, "a C function, `name()` and in", "Then `widget_close()` in widget.c.\n")
        passes(tmp, "C macros, tag, constants, typedef, globals, members",
               "`RING_SIZE`, `MAX`, `struct widget`, `STATE_WRITE`, `widget_fn`, "
               "`ready_count`, `state_names`, `name` and `on_ready` in widget.c.\n")
        passes(tmp, "a link to the file", "`widget_open` in [the file](widget.c#L1).\n")
        passes(tmp, "path: name", "See `widget.c: widget_open` and widget.c: `foo_start`.\n")
        passes(tmp, "Python def, class, assignment, attribute, keyword",
               "`Ladder`, `climb`, `LIMIT`, `step` and `await` (ladder.py).\n")
        passes(tmp, "a Makefile target and variable", "`bench` and `OBJS_one` in rules.mk.\n")
        passes(tmp, "a prefix for the section",
               "## A\n\n`foo_*` functions are in widget.c.\n\n- `foo_start` starts.\n")
        passes(tmp, "a name with its own file under a prefix",
               "## A\n\n`foo_*` functions are in widget.c.\n\n- `foo_helper` (ladder.py).\n")
        passes(tmp, "a path:LINE inside the file", "See widget.c:3 and widget.c:19-23.\n")
        passes(tmp, "a fenced block is not a citation",
               "```\n`gone_fn` (widget.c) widget.c:999\n```\n")

        # Names that it does not define.
        fails(tmp, "a missing C function", "`widget_gone` (widget.c) is gone.\n",
              says=["widget_gone", "widget.c"])
        fails(tmp, "a local variable is not a definition", "`local_var` in widget.c.\n")
        fails(tmp, "one missing name in a list",
              "`widget_open`, `widget_lost` and `RING_SIZE` (widget.c).\n",
              says=["widget_lost"])
        fails(tmp, "a missing name in path: name", "`widget.c: widget_lost`.\n")
        fails(tmp, "a missing name in a link", "`widget_lost` in [x](widget.c).\n")
        fails(tmp, "a missing Python name", "`descend` in ladder.py.\n")
        fails(tmp, "a missing Makefile target", "`deploy` in rules.mk.\n")
        fails(tmp, "a missing name under a prefix",
              "## A\n\n`foo_*` functions are in widget.c.\n\n- `foo_stop` stops.\n\n"
              "## B\n\n`foo_elsewhere` is not under the prefix.\n", says=["foo_stop"])
        fails(tmp, "a missing file", "`widget_open` (nowhere.c).\n", says=["nowhere.c"])
        fails(tmp, "a name cited in the wrong file says where it is",
              "`conn_drive` in [conn.c](%s).\n" % os.path.join(ROOT, "common", "conn.c"),
              says=["conn_drive", "defined in common/"])

        # Line numbers, as before.
        fails(tmp, "a path:LINE beyond the file's end", "See widget.c:999.\n",
              says=["widget.c:999", "outside the file"])
        fails(tmp, "a path:A-B running past the end", "See widget.c:30-40.\n")
        fails(tmp, "a path:LINE whose name is not there", "`widget_close` (widget.c:3).\n")

    failed = OUTCOMES.count(False)
    print(f"{len(OUTCOMES) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
