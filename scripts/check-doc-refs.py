#!/usr/bin/env python3
"""scripts/check-doc-refs.py - do the docs' references to the code still hold?

    scripts/check-doc-refs.py [FILE.md ...]     (default: docs/*.md docs/models/*.md)

Checks, in every file:
- each `path:LINE` or `path:A-B` (also `A–B`) names an existing file, and the lines exist;
  a bare name (`conn.c:258`) must match exactly one file of the repository;
- where a code name in backticks stands right before the reference (`conn_drive`
  (common/conn.c:258), `conn_drive()` at conn.c:258, (`cancel`, servers/coro.c:176)),
  that name occurs in the cited lines or within SLACK lines around them;
- each relative Markdown link points at an existing file, and a `#fragment` on a link to
  a Markdown file names one of its headings (GitHub's anchors).
Prints one line per failure and ends with "N passed, M failed". Code moves: when a check
fails, find the name again (grep -n) and cite the new line, or cite the function by name
with a link to its file.
"""
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLACK = 3
EXT = r"(?:c|h|py|sh|mk|md|gp|csv|txt|svg|json)"
PATH = rf"(?:[\w.-]+/)*[\w-]+(?:\.[\w-]+)*\.{EXT}"
REF = re.compile(rf"(?<![\w/.:-])(?P<path>{PATH}):(?P<a>\d+)(?:\s*[-–]\s*(?P<b>\d+))?(?!\.\d)")
NAMED = re.compile(rf"`(?P<name>[A-Za-z_]\w*)(?:\(\))?`\s*(?:\(|,\s*|\s+at\s+|\s+in\s+)\s*"
                   rf"(?P<path>{PATH}):(?P<a>\d+)")
LINK = re.compile(r"\]\((?P<target>[^)\s#]*)(?:#(?P<anchor>[^)\s]*))?\)")
SKIP_DIRS = {".git", "build", "bin", "results", "node_modules"}


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


def check_doc(doc, by_name, lines_of):
    passed, failures = 0, []
    text = open(doc, encoding="utf-8").read()
    # Fenced code blocks quote traces and shells, not references.
    text = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    names = {m.start("path"): m["name"] for m in NAMED.finditer(text)}
    for m in REF.finditer(text):
        where = f"{os.path.relpath(doc, ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
        path, err = resolve(m["path"], doc, by_name)
        if err:
            failures.append(f"{where}: {m.group(0)}: {err}")
            continue
        if path not in lines_of:
            lines_of[path] = open(path, encoding="utf-8", errors="replace").read().split("\n")
        lines = lines_of[path]
        a, b = int(m["a"]), int(m["b"] or m["a"])
        if not 1 <= a <= b <= len(lines):
            failures.append(f"{where}: {m.group(0)}: lines {a}-{b} outside the file "
                            f"({len(lines)} lines)")
            continue
        name = names.get(m.start("path"))
        if name:
            near = lines[max(0, a - 1 - SLACK):min(len(lines), b + SLACK)]
            if not any(re.search(rf"\b{re.escape(name)}\b", line) for line in near):
                failures.append(f"{where}: {m.group(0)}: `{name}` is not at or near "
                                f"these lines")
                continue
        passed += 1
    for m in LINK.finditer(text):
        target, anchor = m["target"], m["anchor"]
        if re.match(r"^[a-z]+:", target) or not (target or anchor):
            continue
        where = f"{os.path.relpath(doc, ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
        path = os.path.normpath(os.path.join(os.path.dirname(doc), target)) if target else doc
        if not os.path.exists(path):
            failures.append(f"{where}: link ({target}): no such file")
            continue
        if anchor and path.endswith(".md") and anchor not in anchors(path):
            failures.append(f"{where}: link ({target}#{anchor}): no such heading")
            continue
        passed += 1
    return passed, failures


def main(argv):
    docs = argv[1:] or sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")) +
                              glob.glob(os.path.join(ROOT, "docs", "models", "*.md")))
    by_name, lines_of = repo_files(), {}
    passed = failed = 0
    for doc in docs:
        p, failures = check_doc(os.path.abspath(doc), by_name, lines_of)
        passed += p
        failed += len(failures)
        for f in failures:
            print("FAIL " + f)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
