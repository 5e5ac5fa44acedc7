#!/usr/bin/env python3
"""scripts/check-doc-refs.py - do the docs' references to the code still hold?

    scripts/check-doc-refs.py [FILE.md ...]
        (default: README.md, docs/*.md, docs/models/*.md, labs/**/*.md)

The docs cite code by name: a name in backticks and the file that defines it,
    `conn_drive` (common/drive.c)        `serve_threads` in servers/blocking.c
    `RING_BUFS`, `RING_BUF_SIZE` in common/ring.h
    `conn_on_input_from` in [common/conn.c](../common/conn.c)
    `servers/uring.c: uring_on_conn_cqe`    common/ring.c: `ring_wait`
or, for a whole section (up to the next heading), by a prefix: "`uring_*` functions are in
servers/uring.c" makes every `uring_...` name in backticks in that section a citation.

Checks, in every file:
- each cited name is defined in the cited file: for C a function, struct/union/enum tag,
  enum constant, struct member, macro, typedef or global; for Python a def, class or
  assignment; for a Makefile a target or variable; in any other file the name occurs as a
  word. A failure names the files that do define it (the prose drifted: "`conn_drive` in
  conn.c" while it lives in drive.c);
- each `path:LINE` or `path:A-B` (also `A–B`) names an existing file, and the lines exist;
  a bare name (`conn.c:258`) must match exactly one file of the repository; where a code
  name in backticks stands right before it, that name occurs at or within SLACK lines of
  the cited lines. Line numbers are for what no name can say;
- each relative Markdown link points at an existing file, and a `#fragment` on a link to
  a Markdown file names one of its headings (GitHub's anchors).
Prints one line per failure and ends with "N passed, M failed"; exits 1 on any failure.
"""
import glob
import keyword
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLACK = 3
EXT = r"(?:c|h|py|sh|mk|md|gp|csv|txt|svg|json)"
PATH = rf"(?:[\w.-]+/)*[\w-]+(?:\.[\w-]+)*\.{EXT}"
# What a citation by name may name: a file of code.
FILE = r"(?:(?:[\w.-]+/)*[\w-]+(?:\.[\w-]+)*\.(?:c|h|py|sh|mk|gp)|(?:[\w.-]+/)*Makefile)"
REF = re.compile(rf"(?<![\w/.:-])(?P<path>{PATH}):(?P<a>\d+)(?:\s*[-–]\s*(?P<b>\d+))?(?!\.\d)")
NAMED = re.compile(rf"`(?P<name>[A-Za-z_]\w*)(?:\(\))?`\s*(?:\(|,\s*|\s+at\s+|\s+in\s+)\s*"
                   rf"(?P<path>{PATH}):(?P<a>\d+)")
LINK = re.compile(r"\]\((?P<target>[^)\s#]*)(?:#(?P<anchor>[^)\s]*))?\)")
# Citations by name. A name: `conn_drive`, `conn_drive()`, `struct conn`.
NAME = r"(?:(?:struct|union|enum)\s+)?[A-Za-z_]\w*"
TICKED = rf"`{NAME}(?:\(\))?`"
# Its file: a path, or a Markdown link to one; not followed by :LINE (that is a REF).
WHERE = (rf"(?:\[[^\]\n]*\]\((?P<link>[^)\s#]*?{FILE})(?:#[^)\s]*)?\)|(?<![\w/.-])(?P<path>{FILE}))"
         rf"(?![\w/-]|:\d|\.\w)")
# `a`, `b` and `c` (path) / in path / , path / at path
BY_NAME = re.compile(rf"(?P<names>{TICKED}(?:(?:,\s*|\s+and\s+|\s+or\s+|/){TICKED})*)"
                     rf"\s*(?:\(\s*|,\s*|\s+at\s+|\s+in\s+){WHERE}")
# `path: name` and path: `name`
BY_PATH = re.compile(rf"`(?P<path>{FILE}):\s+(?P<name>{NAME})(?:\(\))?`"
                     rf"|(?<![\w/.:-])(?P<path2>{FILE}):\s+`(?P<name2>{NAME})(?:\(\))?`")
# "`uring_*` functions are in servers/uring.c": a prefix, up to the next heading
PREFIX = re.compile(rf"`(?P<prefix>[A-Za-z_]\w*_)\*`[^`.;]*?\bin\s+{WHERE}")
SKIP_DIRS = {".git", "build", "bin", "results", "node_modules"}
SOURCE_EXTS = (".c", ".h", ".py")


def repo_files():
    out = {}
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(("build-", "bin-"))]
        for f in files:
            rel = os.path.relpath(os.path.join(top, f), ROOT)
            out.setdefault(f, []).append(rel)
    return out


def resolve(path, doc, by_name):
    """A cited path: from the repository root, from the doc's folder, or a unique basename."""
    for base in (ROOT, os.path.dirname(doc)):
        p = os.path.normpath(os.path.join(base, path))
        if os.path.isfile(p):
            return p, None
    if "/" not in path:
        hits = by_name.get(path, [])
        if len(hits) == 1:
            return os.path.join(ROOT, hits[0]), None
        if hits:
            return None, f"{path} is ambiguous ({', '.join(sorted(hits))})"
    return None, f"no file {path}"


def anchors(path):
    """The anchors GitHub makes for a Markdown file's headings."""
    out = set()
    text = re.sub(r"```.*?```", "", open(path, encoding="utf-8").read(), flags=re.S)
    for m in re.finditer(r"^#+\s+(.*?)\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", m[1].lower().replace("`", "")).replace(" ", "-")
        n, base = 1, slug
        while slug in out:
            slug, n = f"{base}-{n}", n + 1
        out.add(slug)
    return out


def matching_brace(text, i):
    """The index just past the brace that closes the one at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j + 1
    return len(text)


def c_names(text):
    """What a C file defines or declares: functions, tags, enum constants, members,
    macros, typedefs and globals. Heuristic, for clang-formatted code: a top-level
    declaration starts in column 0, a body is indented."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'",
                  lambda m: re.sub(r"[^\n]", " ", m[0]), text, flags=re.S)
    out = set(re.findall(r"^[ \t]*#[ \t]*define[ \t]+(\w+)", text, re.M))
    for m in re.finditer(r"\b(struct|union|enum)\s+(\w+)?\s*\{", text):
        if m[2]:
            out |= {m[2], f"{m[1]} {m[2]}"}
        body = text[m.end():matching_brace(text, m.end() - 1) - 1]
        if m[1] == "enum":
            out |= set(re.findall(r"(?:^|,)\s*([A-Za-z_]\w*)", body))
        else:  # members, at any depth of nested structs and unions
            out |= set(re.findall(r"(\w+)\s*(?:\[[^\]]*\]\s*)*(?::\s*\w+\s*)?[;,]", body))
            out |= set(re.findall(r"\(\s*\*\s*(\w+)\s*\)\s*\(", body))
    for line in text.split("\n"):
        if not re.match(r"[A-Za-z_}]", line):
            continue
        out |= set(re.findall(r"\(\s*\*\s*(\w+)\s*\)", line))  # pointers to functions
        m = re.match(r"[^(=]*?(\w+)\s*\(", line)
        if m:
            out.add(m[1])
        elif not line.startswith("}") or re.match(r"}\s*\w", line):
            out |= set(re.findall(r"(\w+)\s*(?:\[[^\]]*\]\s*)*(?:=|;|,)", line.split("=")[0] + "="))
    return out


def py_names(text):
    """What a Python file defines: defs, classes, assignments (also to self.x), imports."""
    out = set(re.findall(r"^\s*(?:async\s+)?(?:def|class)\s+(\w+)", text, re.M))
    for m in re.finditer(r"^\s*((?:self\.)?\w+(?:\s*,\s*(?:self\.)?\w+)*)\s*(?::[^=\n]+)?=(?!=)",
                         text, re.M):
        out |= {n.strip().removeprefix("self.") for n in m[1].split(",")}
    out |= set(re.findall(r"^\s*(?:from\s+\S+\s+)?import\s+.*?\bas\s+(\w+)", text, re.M))
    return out


def make_names(text):
    """What a Makefile defines: targets and variables."""
    out = set(re.findall(r"^(?:override\s+|export\s+)?([\w.-]+)\s*(?:[:+?!]?=)", text, re.M))
    out |= set(re.findall(r"^define\s+(\w+)", text, re.M))
    for m in re.finditer(r"^([^\s:=#][^:=#]*?)\s*::?(?!=)", text, re.M):
        out |= set(m[1].split())
    return out


class Names:
    """Each file's defined names, read once; and which source files define a name."""

    def __init__(self):
        self.cache = {}

    def defined(self, path):
        if path not in self.cache:
            text = open(path, encoding="utf-8", errors="replace").read()
            base = os.path.basename(path)
            if path.endswith((".c", ".h")):
                self.cache[path] = c_names(text)
            elif path.endswith(".py"):
                self.cache[path] = py_names(text)
            elif base == "Makefile" or base.endswith(".mk"):
                self.cache[path] = make_names(text)
            else:  # any word of it
                self.cache[path] = set(re.findall(r"\w+", text))
        return self.cache[path]

    def has(self, path, name):
        if path.endswith(".py") and keyword.iskeyword(name):  # `async` in upper_async.py
            return re.search(rf"\b{name}\b", open(path, encoding="utf-8").read()) is not None
        return name in self.defined(path)

    def where(self, name, by_name):
        """The source files that define a name: where the prose should have pointed."""
        hits = [os.path.join(ROOT, rel) for rels in by_name.values() for rel in rels
                if rel.endswith(SOURCE_EXTS)]
        return sorted(os.path.relpath(p, ROOT) for p in hits if self.has(p, name))


def name_citations(text):
    """(offset, name, path or None, link or None) for every citation by name; the offset
    is the name's opening backtick."""
    out = []
    for m in BY_NAME.finditer(text):
        for n in re.finditer(rf"`({NAME})(?:\(\))?`", m["names"]):
            out.append((m.start() + n.start(), n[1], m["path"], m["link"]))
    for m in BY_PATH.finditer(text):
        if m["name"]:
            out.append((m.start(), m["name"], m["path"], None))
        else:
            out.append((m.start("name2") - 1, m["name2"], m["path2"], None))
    headings = [h.start() for h in re.finditer(r"^#", text, re.M)] + [len(text)]
    cited = {c[0] for c in out}  # a name cited with its own file is not the prefix's
    for m in PREFIX.finditer(text):
        end = next(h for h in headings if h > m.start())
        for n in re.finditer(rf"`({re.escape(m['prefix'])}\w+)(?:\(\))?`", text[m.end():end]):
            if m.end() + n.start() not in cited:
                out.append((m.end() + n.start(), n[1], m["path"], m["link"]))
    return out


def check_doc(doc, by_name, lines_of, names):
    passed, failures = 0, []
    text = open(doc, encoding="utf-8").read()
    # Fenced code blocks quote traces and shells, not references.
    text = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)

    def where(offset):
        return f"{os.path.relpath(doc, ROOT)}:{text.count(chr(10), 0, offset) + 1}"

    for offset, name, path, link in name_citations(text):
        cited = path or link
        if link:
            target = os.path.normpath(os.path.join(os.path.dirname(doc), link))
            found, err = (target, None) if os.path.isfile(target) else (None, None)
            if not found:
                continue  # a link to a folder; the link check below reports a missing one
        else:
            found, err = resolve(path, doc, by_name)
        if err:
            failures.append(f"{where(offset)}: `{name}` in {cited}: {err}")
            continue
        if not names.has(found, name):
            elsewhere = names.where(name, by_name)
            hint = f"; defined in {', '.join(elsewhere)}" if elsewhere else "; defined nowhere"
            failures.append(f"{where(offset)}: `{name}` is not defined in "
                            f"{os.path.relpath(found, ROOT)}{hint}")
            continue
        passed += 1
    names_at = {m.start("path"): m["name"] for m in NAMED.finditer(text)}
    for m in REF.finditer(text):
        path, err = resolve(m["path"], doc, by_name)
        if err:
            failures.append(f"{where(m.start())}: {m.group(0)}: {err}")
            continue
        if path not in lines_of:
            lines_of[path] = open(path, encoding="utf-8", errors="replace").read().split("\n")
        lines = lines_of[path]
        a, b = int(m["a"]), int(m["b"] or m["a"])
        if not 1 <= a <= b <= len(lines):
            failures.append(f"{where(m.start())}: {m.group(0)}: lines {a}-{b} outside the file "
                            f"({len(lines)} lines)")
            continue
        name = names_at.get(m.start("path"))
        if name:
            near = lines[max(0, a - 1 - SLACK):min(len(lines), b + SLACK)]
            if not any(re.search(rf"\b{re.escape(name)}\b", line) for line in near):
                failures.append(f"{where(m.start())}: {m.group(0)}: `{name}` is not at or near "
                                f"these lines")
                continue
        passed += 1
    for m in LINK.finditer(text):
        target, anchor = m["target"], m["anchor"]
        if re.match(r"^[a-z]+:", target) or not (target or anchor):
            continue
        path = os.path.normpath(os.path.join(os.path.dirname(doc), target)) if target else doc
        if not os.path.exists(path):
            failures.append(f"{where(m.start())}: link ({target}): no such file")
            continue
        if anchor and path.endswith(".md") and anchor not in anchors(path):
            failures.append(f"{where(m.start())}: link ({target}#{anchor}): no such heading")
            continue
        passed += 1
    return passed, failures


def default_docs():
    return sorted([os.path.join(ROOT, "README.md")] +
                  glob.glob(os.path.join(ROOT, "docs", "*.md")) +
                  glob.glob(os.path.join(ROOT, "docs", "models", "*.md")) +
                  glob.glob(os.path.join(ROOT, "labs", "**", "*.md"), recursive=True))


def main(argv):
    docs = argv[1:] or default_docs()
    by_name, lines_of, names = repo_files(), {}, Names()
    passed = failed = 0
    for doc in docs:
        p, failures = check_doc(os.path.abspath(doc), by_name, lines_of, names)
        passed += p
        failed += len(failures)
        for f in failures:
            print("FAIL " + f)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
