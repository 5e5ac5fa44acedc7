#!/usr/bin/env python3
"""Integration suite: one list of cases, run against every server binary.

    python3 tests/integration.py [-j N] [-k SUBSTRING] [BINARY ...]
    python3 tests/integration.py --list

With no BINARY, every executable in bin/ is tested. Each binary gets a fresh document
root and its own server (--port 0 --idle-timeout 2); its cases run one after another,
up to N binaries at a time. Each case prints one line:

    ok   MODEL case_name
    FAIL MODEL case_name: reason
    skip MODEL case_name: reason

and the run ends with "N passed, M failed[, K skipped]". The cases check SPEC.md
sections 2 (command line) and 3 (HTTP behaviour); where the spec leaves a choice,
what nginx would do is accepted too. Standard library only.
"""

import argparse
import concurrent.futures
import contextlib
import os
import pwd
import random
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from fixtures import (FIXED_MTIME, SERVED_RE, STOP_DEADLINE, Client, Failure, Server, Skipped,
                      build_root, check, describe_exit, http_date, parse_http_date,
                      process_tree, remove_root, request)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.join(REPO, "bin")
IDLE = 2            # --idle-timeout of the server under test
GRACE = 3           # how much later than IDLE a timeout may close a connection
ERROR_STATUSES = {400, 403, 404}        # what a confinement probe may get


class Target:
    """What a case works with: the binary, its model, its running server and root."""

    def __init__(self, binary, root, files, server):
        self.binary = binary
        self.model = os.path.basename(binary)
        self.root = root
        self.files = files
        self.server = server

    @property
    def port(self):
        return self.server.port


class Case:
    def __init__(self, name, run, needs_server=True, always=False):
        self.name = name
        self.run = run
        self.needs_server = needs_server    # fails at once once the main server is gone
        self.always = always                # runs despite -k (then reported only if it fails)


CASES = []


def case(fn=None, *, needs_server=True, always=False, name=None):
    """Register a case; its name is the function name, its docstring says what it checks."""
    def register(f):
        CASES.append(Case(name or f.__name__, f, needs_server, always))
        return f
    return register(fn) if fn else register


# ---------------------------------------------------------------------------
# Helpers for the cases

def req(path, method="GET", headers=(), version="HTTP/1.1", host="localhost", body=b""):
    """Build a request; headers are "Name: value" strings; host=None leaves Host out."""
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines.extend(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def get(t, path, *headers, method="GET"):
    """One request on a fresh connection; returns the response."""
    return request(t.port, req(path, method, headers))[0]


def expect_status(r, *statuses):
    wanted = " or ".join(map(str, statuses))
    check(r.status in statuses, f"status {r.status} {r.reason}, expected {wanted}")


def expect_body(r, data, what="body"):
    if r.body == data:
        return
    n = min(len(r.body), len(data))
    first = next((i for i in range(n) if r.body[i] != data[i]), n)
    raise Failure(f"{what}: got {len(r.body)} bytes, expected {len(data)}; "
                  f"first difference at byte {first}")


def expect_file(r, t, name, status=200):
    expect_status(r, status)
    expect_body(r, t.files[name], name)


def expect_mime(r, *types):
    check(r.mime() in types,
          f"Content-Type {r.header('content-type')!r}, expected {' or '.join(types)}")


def expect_alive(t):
    """The server still answers GET / correctly on a fresh connection."""
    try:
        r = get(t, "/")
    except (Failure, OSError) as e:
        raise Failure(f"server no longer answers GET /: {e}") from None
    check(r.status == 200 and r.body == t.files["index.html"],
          f"server no longer serves GET / correctly (status {r.status}, {len(r.body)} bytes)")


def expect_reusable(c, r, t):
    """After response r on connection c: closed if it said so, otherwise good for another request.

    This also proves that r's Content-Length matched the bytes sent.
    """
    if r.closes():
        c.expect_closed(after=f"a {r.status} response with Connection: close")
        return
    c.send(req("/small.txt"))
    nxt = c.response(what=f"response to a request after the {r.status}")
    expect_file(nxt, t, "small.txt")


def expect_error_then_close(c, statuses, silent_close_ok=False):
    """Read an error response with one of statuses, then see the server close the connection."""
    r = c.response(allow_close=silent_close_ok)
    if r is None:
        return
    expect_status(r, *statuses)
    c.expect_closed(after=f"the {r.status} response")


def run_cli(t, *args, timeout=10):
    """Run the binary with args; return (exit code, stdout, stderr)."""
    try:
        p = subprocess.run([t.binary, *args], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure(f"'{' '.join(args)}' still running after {timeout} s") from None
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def expect_one_line(text, what):
    lines = [line for line in text.splitlines() if line.strip()]
    check(len(lines) == 1,
          f"{what}: expected a one-line message on stderr, got {len(lines)} lines: {text[:120]!r}")


def expect_allow(r):
    check(r.header("allow") == "GET, HEAD", f"Allow {r.header('allow')!r}, expected 'GET, HEAD'")


def expect_served_line(server):
    check(any(SERVED_RE.match(line) for line in server.lines),
          f"no 'served N requests on M connections' line on stderr (last: {server.lines[-1:]!r})")


# ---------------------------------------------------------------------------
# Basics and headers

@case
def get_root(t):
    """GET / serves index.html as text/html with the right Content-Length."""
    r = get(t, "/")
    expect_file(r, t, "index.html")
    expect_mime(r, "text/html")
    check(r.header("content-length") == str(len(t.files["index.html"])), "wrong Content-Length")


@case
def get_small(t):
    """GET /small.txt serves its bytes."""
    expect_file(get(t, "/small.txt"), t, "small.txt")


@case
def get_1m(t):
    """GET /1m.bin serves 1 MiB of binary bytes exactly."""
    expect_file(get(t, "/1m.bin"), t, "1m.bin")


@case
def get_big(t):
    """GET /big.bin streams all 8 MiB exactly."""
    expect_file(get(t, "/big.bin"), t, "big.bin")


@case
def headers_200(t):
    """A 200 carries Date (now), Server c10k/, Last-Modified, quoted ETag, Accept-Ranges, ..."""
    r = get(t, "/small.txt")
    expect_status(r, 200)
    for name in ("Date", "Server", "Content-Length", "Content-Type", "Last-Modified", "ETag",
                 "Accept-Ranges"):
        check(r.count(name) == 1, f"{name} header missing")
    date = parse_http_date(r.header("date"))
    check(date is not None, f"Date {r.header('date')!r} is not an IMF-fixdate")
    check(abs(date - time.time()) <= 5, f"Date {r.header('date')!r} is not within 5 s of now")
    check(r.header("server").startswith("c10k/") and len(r.header("server")) > 5,
          f"Server {r.header('server')!r}, expected c10k/VERSION")
    check(r.header("last-modified") == http_date(FIXED_MTIME),
          f"Last-Modified {r.header('last-modified')!r}, expected {http_date(FIXED_MTIME)!r}")
    etag = r.header("etag")
    check(etag.startswith(('"', 'W/"')) and etag.endswith('"') and len(etag) >= 3,
          f"ETag {etag!r} is not a quoted string")
    check(r.header("accept-ranges") == "bytes", f"Accept-Ranges {r.header('accept-ranges')!r}")


MIME_TYPES = {
    "/index.html": ("text/html",),
    "/style.css": ("text/css",),
    "/app.js": ("text/javascript", "application/javascript"),
    "/data.json": ("application/json",),
    "/small.txt": ("text/plain",),
    "/pic.png": ("image/png",),
    "/font.woff2": ("font/woff2",),
    "/noext": ("application/octet-stream",),
}


@case
def mime_types(t):
    """Content-Type follows the extension; unknown gives application/octet-stream."""
    wrong = []
    for path, types in MIME_TYPES.items():
        r = get(t, path)
        expect_status(r, 200)
        if r.mime() not in types:
            wrong.append(f"{path}: {r.header('content-type')!r}")
    check(not wrong, "; ".join(wrong))


@case
def empty_file(t):
    """An empty file gives 200 with Content-Length: 0."""
    r = get(t, "/empty.txt")
    expect_status(r, 200)
    check(r.header("content-length") == "0", f"Content-Length {r.header('content-length')!r}")


@case
def head_index(t):
    """HEAD has the same status and headers as GET and no body (next bytes: a status line)."""
    with Client(t.port) as c:
        c.send(req("/index.html", "HEAD"))
        h = c.response(head=True, what="HEAD response")
        c.send(req("/index.html"))
        g = c.response(what="GET response after the HEAD (a HEAD body would show here)")
    expect_status(h, 200)
    expect_file(g, t, "index.html")
    check(h.header("content-length") == str(len(t.files["index.html"])),
          f"HEAD Content-Length {h.header('content-length')!r}, expected the file size")
    head_headers = {n.lower(): v for n, v in h.header_list if n.lower() != "date"}
    get_headers = {n.lower(): v for n, v in g.header_list if n.lower() != "date"}
    differ = sorted(set(head_headers.items()) ^ set(get_headers.items()))
    check(not differ, f"HEAD and GET headers differ: {differ}")


@case
def dir_index(t):
    """GET /sub/ serves sub/index.html."""
    r = get(t, "/sub/")
    expect_file(r, t, "sub/index.html")
    expect_mime(r, "text/html")


@case
def dir_no_slash(t):
    """GET /sub serves sub/index.html or redirects (301/302) to /sub/."""
    r = get(t, "/sub")
    if r.status in (301, 302):
        check(r.header("location", "").endswith("/sub/"), f"Location {r.header('location')!r}")
    else:
        expect_file(r, t, "sub/index.html")


@case
def dir_without_index(t):
    """A directory without index.html gives 404."""
    expect_status(get(t, "/emptydir/"), 404)


@case
def not_found(t):
    """A missing file gives 404 with a text/plain body of Content-Length bytes."""
    with Client(t.port) as c:
        c.send(req("/nope.html"))
        r = c.response()
        expect_status(r, 404)
        expect_mime(r, "text/plain")
        expect_reusable(c, r, t)


@case
def fifo_404(t):
    """A FIFO is not a regular file: 404, and the server is not stuck opening it."""
    expect_status(get(t, "/fifo"), 404)
    expect_alive(t)


@case
def percent_space(t):
    """/a%20b.txt is decoded to the file 'a b.txt'."""
    expect_file(get(t, "/a%20b.txt"), t, "a b.txt")


@case
def query_dropped(t):
    """The query string is ignored."""
    expect_file(get(t, "/small.txt?x=1&y=2"), t, "small.txt")


@case
def many_slashes(t):
    """Repeated slashes collapse: //////index.html serves index.html."""
    expect_file(get(t, "//////index.html"), t, "index.html")


@case
def dotdot_inside(t):
    """'..' that stays inside the root resolves: /sub/deeper/../../small.txt."""
    expect_file(get(t, "/sub/deeper/../../small.txt"), t, "small.txt")


# ---------------------------------------------------------------------------
# Methods and versions

@case
def post_405(t):
    """POST gives 405 with Allow: GET, HEAD."""
    with Client(t.port) as c:
        c.send(req("/", "POST", ["Content-Length: 0"]))
        r = c.response()
        expect_status(r, 405)
        expect_allow(r)
        expect_reusable(c, r, t)


@case
def delete_405(t):
    """DELETE gives 405 with Allow: GET, HEAD."""
    r = get(t, "/", method="DELETE")
    expect_status(r, 405)
    expect_allow(r)


@case
def put_with_body(t):
    """PUT with a body gives 405 or 413."""
    with Client(t.port) as c:
        c.send(req("/small.txt", "PUT", ["Content-Length: 5"], body=b"hello"))
        expect_status(c.response(), 405, 413)
    expect_alive(t)


@case
def get_with_body(t):
    """GET with a 5-byte body gives 413, then close."""
    with Client(t.port) as c:
        c.send(req("/", headers=["Content-Length: 5"], body=b"hello"))
        expect_error_then_close(c, [413])
    expect_alive(t)


@case
def get_chunked(t):
    """GET with Transfer-Encoding: chunked gives 413 (or 400), then close."""
    with Client(t.port) as c:
        c.send(req("/", headers=["Transfer-Encoding: chunked"], body=b"5\r\nhello\r\n0\r\n\r\n"))
        expect_error_then_close(c, [413, 400])
    expect_alive(t)


@case
def no_host(t):
    """HTTP/1.1 without Host gives 400, then close."""
    with Client(t.port) as c:
        c.send(req("/", host=None))
        expect_error_then_close(c, [400])


@case
def two_hosts(t):
    """Two Host headers give 400, then close."""
    with Client(t.port) as c:
        c.send(req("/", headers=["Host: other"]))
        expect_error_then_close(c, [400])


@case
def http10_close(t):
    """HTTP/1.0 without keep-alive: answered, no keep-alive in the response, then closed."""
    with Client(t.port) as c:
        c.send(req("/", version="HTTP/1.0", host=None))
        r = c.response()
        expect_file(r, t, "index.html")
        check("keep-alive" not in r.header("connection", "").lower(),
              f"Connection {r.header('connection')!r} on an HTTP/1.0 request without keep-alive")
        c.expect_closed()


@case
def http10_keepalive(t):
    """HTTP/1.0 with Connection: keep-alive: the response says keep-alive, the connection stays."""
    with Client(t.port) as c:
        for i in (1, 2):
            c.send(req("/small.txt", version="HTTP/1.0", headers=["Connection: keep-alive"]))
            r = c.response(what=f"response {i}")
            expect_file(r, t, "small.txt")
            check(r.header("connection", "").lower() == "keep-alive",
                  f"response {i}: Connection {r.header('connection')!r}, expected keep-alive")


@case
def keepalive_three(t):
    """HTTP/1.1 is persistent: three requests one after another on one connection."""
    with Client(t.port) as c:
        for i, path in enumerate(("/", "/small.txt", "/"), 1):
            c.send(req(path))
            r = c.response(what=f"response {i}")
            expect_status(r, 200)
            check(not r.closes(), f"response {i} says Connection: close")


@case
def connection_close(t):
    """HTTP/1.1 with Connection: close: the response says close and the server closes."""
    with Client(t.port) as c:
        c.send(req("/small.txt", headers=["Connection: close"]))
        r = c.response()
        expect_file(r, t, "small.txt")
        check(r.closes(), f"Connection {r.header('connection')!r}, expected close")
        c.expect_closed()


@case
def http2_version(t):
    """'GET / HTTP/2.0' is refused with 400 or 505."""
    r = request(t.port, req("/", version="HTTP/2.0"))[0]
    expect_status(r, 400, 505)
    expect_alive(t)


@case
def unknown_method(t):
    """An unknown method token (FROG) gives 400 or 501."""
    r = request(t.port, req("/", "FROG"))[0]
    expect_status(r, 400, 501)
    expect_alive(t)


@case
def http09(t):
    """An HTTP/0.9-style 'GET /' gets 400 or a plain close, and the server lives on."""
    with Client(t.port) as c:
        c.send(b"GET /\r\n\r\n")
        expect_error_then_close(c, [400], silent_close_ok=True)
    expect_alive(t)


# ---------------------------------------------------------------------------
# Malformed requests and limits: each gets its error, the connection is closed,
# and the server still serves a fresh GET / afterwards.

def malformed_case(name, doc, raw, status=400, silent_close_ok=False):
    def run(t):
        with Client(t.port) as c:
            c.send(raw)
            expect_error_then_close(c, [status], silent_close_ok)
        expect_alive(t)
    run.__doc__ = doc
    case(run, name=name)


GARBAGE = b"\x16\x03\x01" + random.Random(7).randbytes(509)     # looks like a TLS hello

malformed_case("garbage", "Random binary bytes give 400 (or a plain close).",
               GARBAGE, silent_close_ok=True)
malformed_case("nul_in_request_line", "A NUL byte in the request line gives 400.",
               b"GET /ind\x00ex.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
malformed_case("ctl_in_header", "A control byte in a header value gives 400.",
               req("/", headers=["X-Test: a\x01b"]))
malformed_case("pct_truncated", "A truncated percent escape (/foo%) gives 400.", req("/foo%"))
malformed_case("pct_bad_hex", "A non-hex percent escape (/%zz) gives 400.", req("/%zz"))
malformed_case("pct_nul", "A percent-encoded NUL (/%00x) gives 400.", req("/%00x"))
malformed_case("space_in_path", "A raw space inside the target gives 400.", req("/a b.txt"))
malformed_case("cl_plus", "Content-Length: +5 gives 400.", req("/", headers=["Content-Length: +5"]))
malformed_case("cl_empty", "An empty Content-Length gives 400.",
               req("/", headers=["Content-Length: "]))
malformed_case("cl_overflow", "A Content-Length that overflows 64 bits gives 400.",
               req("/", headers=["Content-Length: 99999999999999999999999"]))
malformed_case("cl_with_te", "Content-Length together with Transfer-Encoding gives 400.",
               req("/", headers=["Content-Length: 5", "Transfer-Encoding: chunked"],
                   body=b"0\r\n\r\n"))
malformed_case("header_too_big", "One 9000-byte header (block over 8 KiB) gives 431, then close.",
               req("/", headers=["X-Big: " + "b" * 9000]), status=431)
malformed_case("many_headers", "200 small headers totalling over 8 KiB give 431, then close.",
               req("/", headers=[f"X-Pad-{i:03d}: {'p' * 40}" for i in range(200)]), status=431)
malformed_case("uri_too_long", "A 4200-byte request target gives 414, then close.",
               req("/" + "a" * 4200), status=414)


@case
def headers_7k(t):
    """A 7 KiB header block (under the 8 KiB limit) is served."""
    padding = [f"X-Pad-{i}: {'q' * 990}" for i in range(7)]
    expect_file(get(t, "/small.txt", *padding), t, "small.txt")


# ---------------------------------------------------------------------------
# Confinement: nothing outside the root, whatever the spelling.

def confine_case(name, path, statuses=ERROR_STATUSES):
    def run(t):
        r = get(t, path)
        check(b"root:" not in r.body, f"{path} served /etc/passwd!")
        expect_status(r, *sorted(statuses))
    run.__doc__ = f"{path} does not leave the root ({' or '.join(map(str, sorted(statuses)))})."
    case(run, name=name)


confine_case("confine_dotdot", "/../../../../etc/passwd")
confine_case("confine_pct_dotdot", "/%2e%2e/%2e%2e/etc/passwd")
confine_case("confine_pct_upper", "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd")
confine_case("confine_dotdot_pct2f", "/..%2f..%2fetc%2fpasswd")
confine_case("confine_double_slash", "//etc/passwd")
confine_case("confine_dot_pct2e", "/.%2e/.%2e/etc/passwd")
confine_case("confine_sub_dotdot", "/sub/../../etc/passwd")
confine_case("confine_backslash", "/..\\..\\etc\\passwd")
confine_case("confine_backslash_pct5c", "/..%5c..%5cetc%5cpasswd")
confine_case("confine_symlink_file", "/escape")
confine_case("confine_symlink_dir", "/escapedir/passwd")
confine_case("confine_absolute", "/etc/passwd", statuses={404})


@case
def symlink_inside(t):
    """A symlink to a file inside the root is served."""
    expect_file(get(t, "/inside.txt"), t, "small.txt")


# ---------------------------------------------------------------------------
# Conditional requests

def conditional(t, *headers):
    """GET /small.txt with headers on one connection, check reuse; return the response."""
    with Client(t.port) as c:
        c.send(req("/small.txt", headers=list(headers)))
        r = c.response()
        expect_reusable(c, r, t)
    return r


@case
def inm_match(t):
    """If-None-Match with the current ETag gives 304, no body, ETag repeated."""
    etag = get(t, "/small.txt").header("etag")
    check(etag, "no ETag on the first response")
    r = conditional(t, f"If-None-Match: {etag}")
    expect_status(r, 304)
    check(r.header("etag") == etag, f"304 ETag {r.header('etag')!r}, expected {etag!r}")


@case
def inm_star(t):
    """If-None-Match: * gives 304."""
    expect_status(conditional(t, "If-None-Match: *"), 304)


@case
def inm_other(t):
    """If-None-Match with another ETag gives 200."""
    expect_file(conditional(t, 'If-None-Match: "other"'), t, "small.txt")


@case
def ims_equal(t):
    """If-Modified-Since equal to Last-Modified gives 304."""
    expect_status(conditional(t, f"If-Modified-Since: {http_date(FIXED_MTIME)}"), 304)


@case
def ims_newer(t):
    """If-Modified-Since later than the file's mtime gives 304."""
    expect_status(conditional(t, f"If-Modified-Since: {http_date(FIXED_MTIME + 86400)}"), 304)


@case
def ims_older(t):
    """If-Modified-Since before the file's mtime gives 200."""
    expect_file(conditional(t, "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT"), t, "small.txt")


@case
def inm_precedence(t):
    """If-None-Match (not matching) wins over a matching If-Modified-Since: 200."""
    r = conditional(t, 'If-None-Match: "other"', f"If-Modified-Since: {http_date(FIXED_MTIME)}")
    expect_file(r, t, "small.txt")


# ---------------------------------------------------------------------------
# Range

def expect_range(t, name, spec, start, end):
    """Range: bytes=spec on name gives 206 with bytes start..end inclusive."""
    data = t.files[name]
    r = get(t, "/" + name, f"Range: bytes={spec}")
    expect_status(r, 206)
    want = f"bytes {start}-{end}/{len(data)}"
    check(r.header("content-range") == want,
          f"Content-Range {r.header('content-range')!r}, expected {want!r}")
    expect_body(r, data[start:end + 1], f"bytes={spec}")


@case
def range_first_bytes(t):
    """bytes=0-9 gives 206 with the first 10 bytes."""
    expect_range(t, "small.txt", "0-9", 0, 9)


@case
def range_open_end(t):
    """bytes=10- gives 206 with the rest of the file."""
    expect_range(t, "small.txt", "10-", 10, len(t.files["small.txt"]) - 1)


@case
def range_suffix(t):
    """bytes=-5 gives 206 with the last 5 bytes."""
    size = len(t.files["small.txt"])
    expect_range(t, "small.txt", "-5", size - 5, size - 1)


@case
def range_clamped(t):
    """bytes=5-100000 on a small file is clamped to its end."""
    expect_range(t, "small.txt", "5-100000", 5, len(t.files["small.txt"]) - 1)


@case
def range_1m(t):
    """bytes=1000000-2000000 on 1m.bin gives its last 48576 bytes."""
    expect_range(t, "1m.bin", "1000000-2000000", 1000000, (1 << 20) - 1)


@case
def range_unsatisfiable(t):
    """A range starting at the file size gives 416 with Content-Range: bytes */SIZE."""
    size = len(t.files["small.txt"])
    with Client(t.port) as c:
        c.send(req("/small.txt", headers=[f"Range: bytes={size}-"]))
        r = c.response()
        expect_status(r, 416)
        check(r.header("content-range") == f"bytes */{size}",
              f"Content-Range {r.header('content-range')!r}, expected 'bytes */{size}'")
        expect_reusable(c, r, t)


@case
def range_multi(t):
    """A multi-range is ignored: 200 with the whole file."""
    expect_file(get(t, "/small.txt", "Range: bytes=0-1,3-4"), t, "small.txt")


@case
def range_malformed(t):
    """Malformed ranges (bytes=abc, bytes=5-1, items=0-1) are ignored: 200, whole file."""
    for value in ("bytes=abc", "bytes=5-1", "items=0-1"):
        r = get(t, "/small.txt", f"Range: {value}")
        check(r.status == 200 and r.body == t.files["small.txt"],
              f"Range: {value} gave {r.status} with {len(r.body)} bytes, expected 200, whole file")


@case
def range_many(t):
    """A thousand overlapping ranges in one header are ignored (200), the server is fine."""
    expect_file(get(t, "/small.txt", "Range: bytes=" + ",".join(["0-1"] * 1000)), t, "small.txt")
    expect_alive(t)


@case
def range_head(t):
    """HEAD with a Range gives 206 and Content-Length 10, with no body."""
    with Client(t.port) as c:
        c.send(req("/small.txt", "HEAD", ["Range: bytes=0-9"]))
        r = c.response(head=True)
        expect_status(r, 206)
        check(r.header("content-length") == "10", f"Content-Length {r.header('content-length')!r}")
        expect_reusable(c, r, t)


# ---------------------------------------------------------------------------
# Pipelining

@case
def pipeline_three(t):
    """Three GETs in one send get three complete responses, in order."""
    names = ("index.html", "small.txt", "1m.bin")
    responses = request(t.port, b"".join(req("/" + n) for n in names), count=3)
    for name, r in zip(names, responses):
        expect_file(r, t, name)


@case
def pipeline_split(t):
    """A second request split across two sends 100 ms apart is answered."""
    second = req("/small.txt")
    with Client(t.port) as c:
        c.send(req("/") + second[:10])
        time.sleep(0.1)
        c.send(second[10:])
        expect_file(c.response(what="response 1"), t, "index.html")
        expect_file(c.response(what="response 2"), t, "small.txt")


@case
def pipeline_then_garbage(t):
    """A GET followed by garbage in the same send: 200, then 400 and close."""
    with Client(t.port) as c:
        c.send(req("/small.txt") + b"GARBAGE\x00\x01\x02\r\n\r\n")
        expect_file(c.response(what="response 1"), t, "small.txt")
        expect_error_then_close(c, [400])
    expect_alive(t)


@case
def pipeline_deep(t):
    """A 1 MiB answer with 600 small requests pipelined behind it: all answered, in order."""
    count = 600     # about 27 KiB of requests: more than a server buffers while it sends
    with Client(t.port) as c:
        c.send(req("/1m.bin") + req("/small.txt") * count)
        expect_file(c.response(what="response 1"), t, "1m.bin")
        for i in range(count):
            expect_file(c.response(what=f"response {i + 2}"), t, "small.txt")
    expect_alive(t)


@case
def byte_at_a_time(t):
    """Two requests, each sent one byte per segment: both answered on one connection."""
    with Client(t.port) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for name in ("small.txt", "index.html"):
            for byte in req("/" + name):
                c.send(bytes([byte]))
            expect_file(c.response(what=name), t, name)


# ---------------------------------------------------------------------------
# Timeouts (the server runs with --idle-timeout 2)

def expect_timeout_close(closed, took, what):
    check(closed, f"{what} still open after {took:.1f} s (idle timeout {IDLE} s)")
    check(took >= IDLE / 2,
          f"{what} closed after {took:.1f} s, well before the {IDLE} s idle timeout")


@case
def idle_timeout(t):
    """A connection that sends nothing is closed after the idle timeout."""
    with Client(t.port) as c:
        closed, _, took = c.wait_closed(IDLE + GRACE)
    expect_timeout_close(closed, took, "idle connection")


@case
def keepalive_idle_timeout(t):
    """A keep-alive connection idle after one request is closed after the idle timeout."""
    with Client(t.port) as c:
        c.send(req("/small.txt"))
        expect_file(c.response(), t, "small.txt")
        closed, data, took = c.wait_closed(IDLE + GRACE)
    check(not data, f"unexpected bytes on the idle keep-alive connection: {data[:60]!r}")
    expect_timeout_close(closed, took, "idle keep-alive connection")


@case
def slowloris(t):
    """A header sent one byte per 0.5 s is cut off by the idle timeout counted from the start."""
    start = time.monotonic()
    closed = False
    with Client(t.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        for byte in b"X-Slow: " + b"s" * 100:
            closed, _, _ = c.wait_closed(0.5)       # also the pacing between bytes
            if closed or time.monotonic() - start > IDLE + GRACE:
                break
            if not c.send(bytes([byte])):
                closed = True
                break
    took = time.monotonic() - start
    check(closed and took <= IDLE + GRACE,
          f"slowloris connection still open after {took:.1f} s (idle timeout {IDLE} s)")


# ---------------------------------------------------------------------------
# Robustness

@case
def abort_big_download(t):
    """20 clients close or reset midway through big.bin; the server serves on."""
    for i in range(20):
        c = Client(t.port)
        c.send(req("/big.bin"))
        c.read_at_least(64 * 1024, "the start of big.bin")
        if i % 2:
            c.reset()
        else:
            c.close()
    expect_alive(t)


@case
def concurrent_200(t):
    """200 connections open at once, each doing 5 keep-alive GET /index.html: all 1000 answered."""
    # One thread and a selector: all 200 connections are open before the first request,
    # and none sits idle long enough to meet the idle timeout, however slow the machine.
    want = t.files["index.html"]
    clients = []
    try:
        clients = [Client(t.port, timeout=10) for _ in range(200)]
        for round_no in range(1, 6):
            for c in clients:
                c.send(req("/index.html"))
            for i, r in enumerate(read_one_response_each(clients)):
                check(r.status == 200 and r.body == want,
                      f"round {round_no}, connection {i}: status {r.status}, {len(r.body)} bytes")
    finally:
        for c in clients:
            c.close()


@case
def churn_from_threads(t):
    """4 threads each open, use and close 250 connections at once: all 1000 answered."""
    # Closed fds are reused at once by the next accept, so a slot changes hands often;
    # in a model of several threads it may pass to another thread (bin/actor's loops),
    # which the ThreadSanitizer builds then check is ordered.
    failures = []

    def client_thread(n):
        try:
            for i in range(250):
                with Client(t.port, timeout=10) as c:
                    c.send(req("/small.txt"))
                    r = c.response(what=f"thread {n}, connection {i}")
                    if r.status != 200:
                        failures.append(f"thread {n}, connection {i}: status {r.status}")
                        return
        except Exception as e:  # shown below, in the case's own thread
            failures.append(f"thread {n}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    check(not failures, "; ".join(failures[:3]))
    expect_alive(t)


def read_one_response_each(clients, within=20):
    """Read one response from every client at once; return them in the clients' order."""
    responses = [None] * len(clients)
    with selectors.DefaultSelector() as selector:
        for i, c in enumerate(clients):
            selector.register(c.sock, selectors.EVENT_READ, i)
        deadline = time.monotonic() + within
        while selector.get_map():
            ready = selector.select(max(0, deadline - time.monotonic()))
            check(ready, f"{len(selector.get_map())} of {len(clients)} responses missing "
                         f"after {within} s")
            for key, _ in ready:
                i = key.data
                clients[i].recv_more(f"response on connection {i}")
                responses[i] = clients[i].take_response(what=f"response on connection {i}")
                if responses[i] is not None:
                    selector.unregister(key.fileobj)
    return responses


@case(needs_server=False)
def max_conns(t):
    """With --max-conns 4, a 5th connection is closed at once while the 4 others are served."""
    # A long idle timeout, so that only the connection limit can close the 5th connection.
    server = Server(t.binary, t.root, ["--max-conns", "4"], idle_timeout=30)
    held = []
    try:
        server.start()
        held = [Client(server.port) for _ in range(4)]
        # Each answered once, so all four are admitted before the fifth connects: processes
        # that accept from one queue (bin/prefork) may admit them out of order otherwise.
        for i, c in enumerate(held, 1):
            c.send(req("/small.txt"))
            expect_file(c.response(what=f"first response on held connection {i}"), t, "small.txt")
        with Client(server.port) as fifth:
            closed, _, took = fifth.wait_closed(3)
            check(closed, "a 5th connection is still open after 3 s with --max-conns 4")
        for i, c in enumerate(held, 1):
            c.send(req("/small.txt"))
            expect_file(c.response(what=f"response on held connection {i}"), t, "small.txt")
        code = server.stop()
        check(code == 0, f"{describe_exit(code)} after SIGTERM, expected 0{server.stderr_tail()}")
    finally:
        for c in held:
            c.close()
        server.kill()


@case(needs_server=False)
def sigint(t):
    """A separate instance stopped with SIGINT exits 0 and prints the served line."""
    server = Server(t.binary, t.root)
    try:
        server.start()
        expect_file(request(server.port, req("/small.txt"))[0], t, "small.txt")
        code = server.stop(signal.SIGINT)
        check(code is not None, "still running 10 s after SIGINT")
        check(code == 0, f"{describe_exit(code)} after SIGINT, expected 0{server.stderr_tail()}")
        expect_served_line(server)
    finally:
        server.kill()


ZOMBIE_CONNS = 20      # connections that close after one request, for no_zombies


def zombies(pid):
    """The processes under pid that have exited and not been waited for (state Z)."""
    found = []
    for p in process_tree(pid)[1:]:
        try:
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    found.append(p)
        except OSError:
            pass                # reaped meanwhile
    return found


@case
def no_zombies(t):
    """Connections that close after one request leave no zombie behind: a server that
    forks (bin/fork: a child per connection) waits for each child that exits."""
    for _ in range(ZOMBIE_CONNS):
        expect_file(get(t, "/small.txt", "Connection: close"), t, "small.txt")
    deadline = time.monotonic() + GRACE
    while (left := zombies(t.server.proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)    # polling the kernel's process table, bounded
    check(not left, f"{len(left)} zombie children {GRACE} s after {ZOMBIE_CONNS} connections "
                    f"closed")


WORKER_RE = re.compile(r"^worker (\d+): served (\d+) requests on (\d+) connections$")
SPREAD_CONNS = 16       # new connections, one request each, for workers_spread


@case(needs_server=False)
def workers_spread(t):
    """With --workers 2, new connections reach both processes: each worker's served line
    counts some of them, and the two add up to the total line."""
    server = Server(t.binary, t.root, ["--workers", "2"])
    try:
        server.start()
        for _ in range(SPREAD_CONNS):
            expect_file(request(server.port, req("/small.txt"))[0], t, "small.txt")
        code = server.stop()
        check(code == 0, f"{describe_exit(code)} after SIGTERM, expected 0{server.stderr_tail()}")
        expect_served_line(server)
        workers = [WORKER_RE.match(line) for line in server.lines]
        workers = {int(m[1]): (int(m[2]), int(m[3])) for m in workers if m}
        check(sorted(workers) == [0, 1],
              f"expected the lines 'worker 0: served ...' and 'worker 1: ...', got {workers}")
        conns = [c for _, c in workers.values()]
        check(all(conns), f"{SPREAD_CONNS} connections, per worker: {conns}: one got none")
        total = next(line for line in server.lines if SERVED_RE.match(line))
        check(total == f"served {sum(r for r, _ in workers.values())} requests on "
                       f"{sum(conns)} connections",
              f"the workers' lines {workers} do not add up to {total!r}")
    finally:
        server.kill()


# ---------------------------------------------------------------------------
# Command line

@case(needs_server=False)
def cli_help(t):
    """--help exits 0 and prints usage."""
    code, out, err = run_cli(t, "--help")
    check(code == 0, f"--help: {describe_exit(code)}, expected 0")
    check("usage" in (out + err).lower(), "--help printed no usage")


@case(needs_server=False)
def cli_version(t):
    """--version exits 0 and prints a line containing c10k."""
    code, out, err = run_cli(t, "--version")
    check(code == 0, f"--version: {describe_exit(code)}, expected 0")
    check("c10k" in out + err, f"--version printed {(out + err)[:80]!r}, no 'c10k'")


@case(needs_server=False)
def cli_bogus_option(t):
    """An unknown option exits 2 with a one-line message."""
    code, _, err = run_cli(t, "--bogus")
    check(code == 2, f"--bogus: {describe_exit(code)}, expected 2")
    expect_one_line(err, "--bogus")


@case(needs_server=False)
def cli_bad_port(t):
    """--port notanumber exits 2."""
    code, _, err = run_cli(t, "--addr", "127.0.0.1", "--port", "notanumber", "--root", t.root)
    check(code == 2, f"--port notanumber: {describe_exit(code)}, expected 2")
    expect_one_line(err, "--port notanumber")


@case(needs_server=False)
def cli_missing_root(t):
    """A root that does not exist exits 1 with a one-line reason."""
    code, _, err = run_cli(t, "--addr", "127.0.0.1", "--port", "0", "--root", "/nonexistent/dir")
    check(code == 1, f"--root /nonexistent/dir: {describe_exit(code)}, expected 1")
    expect_one_line(err, "--root /nonexistent/dir")


@case
def cli_port_taken(t):
    """Starting on a port already in use exits 1 with a one-line reason."""
    code, _, err = run_cli(t, "--addr", "127.0.0.1", "--port", str(t.port), "--root", t.root,
                           timeout=5)
    check(code == 1, f"port taken: {describe_exit(code)}, expected 1")
    expect_one_line(err, "port taken")


# ---------------------------------------------------------------------------
# Hostile input: request smuggling, half-closed clients, validators, odd mtimes

LONG_IDLE = 30      # --idle-timeout of a separate server where a late close must stand out
PROMPT = 3          # seconds within which "at once" must happen (a tenth of LONG_IDLE)

SMUGGLED = b"GET /index.html?smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"

malformed_case("bare_cr_smuggle",
               "A bare CR that would end the head early (body run as a request) gives 400.",
               b"GET /small.txt HTTP/1.1\r\nHost: localhost\r\n\rContent-Length: "
               + str(len(SMUGGLED)).encode() + b"\r\n\r\n" + SMUGGLED)
malformed_case("bare_cr_swallow",
               "A bare CR that would swallow the rest of the head gives 400.",
               b"GET /small.txt HTTP/1.1\r\nHost: localhost\r\n\r" + SMUGGLED)
malformed_case("bare_cr_in_value", "A bare CR inside a header value gives 400.",
               req("/small.txt", headers=["X-Test: a\rb"]))
malformed_case("bare_cr_in_request_line", "A bare CR inside the request line gives 400.",
               b"GET /small.txt\rHTTP/1.1\r\nHost: localhost\r\n\r\n")
malformed_case("lone_lf_fold",
               "A header line after a lone LF that starts with a space (obs-fold) gives 400.",
               b"GET /small.txt HTTP/1.1\nHost: localhost\n Content-Length: 5\n\nhello")


@case
def lone_lf_head(t):
    """A head whose lines end in lone LFs is read line by line like CRLF (RFC 9112 2.2)."""
    raw = b"GET /small.txt HTTP/1.1\nHost: localhost\nRange: bytes=0-4\n\n"
    r = request(t.port, raw)[0]
    expect_status(r, 206)
    expect_body(r, t.files["small.txt"][:5])


def start_long_idle(t, **kw):
    server = Server(t.binary, t.root, idle_timeout=LONG_IDLE, **kw)
    server.start()
    return server


@case(needs_server=False)
def half_close(t):
    """Request and FIN in one segment (8 tries): closed right after the answer, not when idle."""
    server = start_long_idle(t)
    try:
        for i in range(8):
            with Client(server.port) as c:
                # Corked, the request and the FIN leave in one segment: one edge for both.
                c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                c.send(req("/small.txt"))
                c.sock.shutdown(socket.SHUT_WR)
                expect_file(c.response(what=f"response {i + 1}"), t, "small.txt")
                closed, data, _ = c.wait_closed(PROMPT)
                check(not data, f"unexpected bytes after response {i + 1}: {data[:60]!r}")
                check(closed, f"try {i + 1}: still open {PROMPT} s after answering a client that "
                              f"had shut down its side (idle timeout {LONG_IDLE} s)")
    finally:
        server.kill()


@case(needs_server=False)
def garbage_without_newline(t):
    """Bytes that cannot start a request line, no line end: 400 at once, not when idle."""
    server = start_long_idle(t)
    try:
        for raw in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"G(T /small.txt HTTP/1.1",
                    b"GETTINGVERYLONGMETHODNAME /"):
            with Client(server.port) as c:
                c.send(raw)
                closed, data, took = c.wait_closed(PROMPT)
                check(closed, f"{raw[:12]!r}...: still open after {took:.1f} s "
                              f"(idle timeout {LONG_IDLE} s)")
                check(not data or data.startswith(b"HTTP/1.1 400 "),
                      f"{raw[:12]!r}...: answered {data[:40]!r}, expected 400")
    finally:
        server.kill()


def server_side_established(server_port, client_port):
    """Whether the server's end of the connection from client_port is still ESTABLISHED.

    Read from /proc/net/tcp, since the client cannot see a FIN queued behind the data it
    does not read.
    """
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if (int(local.split(":")[1], 16) == server_port and
                    int(remote.split(":")[1], 16) == client_port):
                return state == "01"
    return False


@case
def stalled_reader(t):
    """A client that never reads big.bin is dropped near the idle timeout, not kept for many."""
    with Client(t.port) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send(req("/big.bin"))
        client_port = c.sock.getsockname()[1]
        start = time.monotonic()
        while server_side_established(t.port, client_port):
            took = time.monotonic() - start
            check(took < IDLE + GRACE, f"still sending {took:.1f} s after the client stopped "
                                       f"reading (idle timeout {IDLE} s)")
            time.sleep(0.2)


def if_range(t, validator):
    return get(t, "/small.txt", "Range: bytes=0-4", f"If-Range: {validator}")


@case
def if_range_stale_etag(t):
    """Range with If-Range naming another ETag gives 200 and the whole file."""
    expect_file(if_range(t, '"stale"'), t, "small.txt")


@case
def if_range_weak_etag(t):
    """Range with If-Range naming the current ETag as weak gives 200 (strong comparison)."""
    etag = get(t, "/small.txt").header("etag")
    expect_file(if_range(t, "W/" + etag), t, "small.txt")


@case
def if_range_old_date(t):
    """Range with If-Range dated before Last-Modified gives 200 and the whole file."""
    expect_file(if_range(t, http_date(FIXED_MTIME - 1)), t, "small.txt")


@case
def if_range_newer_date(t):
    """Range with If-Range dated after Last-Modified gives 200 (only an exact date matches)."""
    expect_file(if_range(t, http_date(FIXED_MTIME + 86400)), t, "small.txt")


@case
def if_range_match(t):
    """Range with If-Range naming the current ETag, or the exact Last-Modified, gives 206."""
    etag = get(t, "/small.txt").header("etag")
    for validator in (etag, http_date(FIXED_MTIME)):
        r = if_range(t, validator)
        expect_status(r, 206)
        expect_body(r, t.files["small.txt"][:5], f"If-Range: {validator}")


@case
def cache_same_size_rewrite(t):
    """A file rewritten in place, same size, old mtime restored, is served new within 3 s."""
    path = os.path.join(t.root, "rewrite.txt")
    old, new = b"old contents\n" * 8, b"NEW CONTENTS\n" * 8
    with open(path, "wb") as f:
        f.write(old)
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    expect_body(get(t, "/rewrite.txt"), old, "rewrite.txt before")
    etag = get(t, "/rewrite.txt").header("etag")
    with open(path, "r+b") as f:
        f.write(new)
    os.utime(path, (FIXED_MTIME, FIXED_MTIME))      # as cp -p or touch -r would
    end = time.monotonic() + 3                      # the cache revalidates once a second
    while True:
        r = get(t, "/rewrite.txt")
        if r.body == new or time.monotonic() > end:
            break
        time.sleep(0.2)
    expect_body(r, new, "rewrite.txt 3 s after the rewrite")
    check(r.header("etag") != etag, f"ETag {etag} unchanged after the contents changed")


# mtimes a file system may hold but IMF-fixdate cannot say, or that lie in the future.
ODD_MTIMES = {"far_future": 2 ** 62, "far_past": -2 ** 62, "year_10000": 253402300800,
              "year_2100": 4102444800, "before_1970": -86400}
ETAG_RE = re.compile(r'^(W/)?"[\x21\x23-\x7e]*"$')


def odd_mtime_root():
    """A root on tmpfs if there is one (it keeps any mtime), with one file per ODD_MTIMES."""
    shm = "/dev/shm"
    root = tempfile.mkdtemp(prefix="c10k-mtime-", dir=shm if os.path.isdir(shm) else None)
    os.chmod(root, 0o755)           # a server started as root serves as nobody
    for name, mtime in ODD_MTIMES.items():
        path = os.path.join(root, name + ".txt")
        with open(path, "wb") as f:
            f.write(name.encode() + b"\n")
        try:
            os.utime(path, ns=(mtime * 10 ** 9, mtime * 10 ** 9))
        except (OSError, OverflowError):
            os.utime(path, (mtime, mtime))      # beyond 64-bit nanoseconds: whole seconds
    return root


@case(needs_server=False)
def odd_mtimes(t):
    """Far-future or far-past mtimes: Last-Modified valid, 1970..Date; ETag well-formed."""
    root = odd_mtime_root()
    server = Server(t.binary, root)
    try:
        server.start()
        for name in ODD_MTIMES:
            r = request(server.port, req(f"/{name}.txt"))[0]
            expect_status(r, 200)
            expect_body(r, name.encode() + b"\n", name)
            lm, date = r.header("last-modified", ""), r.header("date", "")
            when, now = parse_http_date(lm), parse_http_date(date)
            check(when is not None, f"{name}: Last-Modified {lm!r} is not an IMF-fixdate")
            check(now is not None and when <= now,
                  f"{name}: Last-Modified {lm!r} is later than Date {date!r}")
            check(when >= 0, f"{name}: Last-Modified {lm!r} is before 1970")
            etag = r.header("etag", "")
            check(ETAG_RE.match(etag), f"{name}: ETag {etag!r} is not well-formed")
    finally:
        server.kill()
        remove_root(root)


@case
def ims_invalid(t):
    """An If-Modified-Since that is no valid HTTP-date is ignored: 200."""
    for value in ("Sun, 99 Nov 2094 99:99:99 XYZ", "Xyz, 14 Nov 2099 22:13:20 GMT",
                  "Sun, 14-Nov-2099 22:13:20 GMT", "Tue, 31 Feb 2099 22:13:20 GMT",
                  "Tue, 14 Nov 2099 24:13:20 GMT", "Tue, 14 Nov 2099 22:13:20 UTC",
                  "Tuesday, 14-Nov-99 22:13:20 XYZ", "Tue Nov 14 22:13:20 20x9"):
        r = conditional(t, f"If-Modified-Since: {value}")
        check(r.status == 200, f"If-Modified-Since: {value!r} gave {r.status}, expected 200")
        expect_body(r, t.files["small.txt"], f"If-Modified-Since: {value!r}")


@case
def ims_obsolete_forms(t):
    """If-Modified-Since in the two obsolete forms (RFC 850, asctime) is honoured: 304."""
    for value in ("Sunday, 06-Nov-44 08:49:37 GMT", "Sun Nov  6 08:49:37 2044"):
        expect_status(conditional(t, f"If-Modified-Since: {value}"), 304)


malformed_case("host_space", "Host: a b gives 400.", req("/small.txt", host="a b"))
malformed_case("host_slash", "Host: a/b gives 400.", req("/small.txt", host="a/b"))
malformed_case("host_open_bracket", "Host: [::1 gives 400.", req("/small.txt", host="[::1"))
malformed_case("host_bad_port", "Host: x:notaport gives 400.",
               req("/small.txt", host="x:notaport"))
malformed_case("host_tab", "Host: a<TAB>b gives 400.", req("/small.txt", host="a\tb"))


@case
def host_valid_forms(t):
    """Host as a name, IPv4, IPv6 literal, with and without a port, is served."""
    for host in ("example.com", "example.com:8080", "127.0.0.1:80", "[::1]", "[::1]:8080",
                 "xn--bcher-kva.example", "a%41b"):
        r = request(t.port, req("/small.txt", host=host))[0]
        check(r.status == 200, f"Host: {host!r} gave {r.status}, expected 200")


@case
def range_int64(t):
    """Range numbers at or beyond INT64_MAX are ignored on purpose: 200, whole file."""
    for spec in ("9223372036854775807-", "9223372036854775808-", "0-9223372036854775808",
                 "-9223372036854775808", "99999999999999999999999-1"):
        expect_file(get(t, "/small.txt", f"Range: bytes={spec}"), t, "small.txt")


def unprivileged():
    """A command prefix that runs the server as nobody (needs setpriv), or None."""
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return None
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return None
    return [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"]


@contextlib.contextmanager
def unprivileged_port(t):
    """The port of a server on t.root that permissions apply to: t's own when not root,
    else a second one started as nobody for the duration."""
    if os.geteuid() != 0:
        yield t.port
        return
    run_as = unprivileged()
    if run_as is None:
        raise Skipped("running as root, and no setpriv or no user nobody to drop to")
    mode = os.stat(t.root).st_mode
    os.chmod(t.root, 0o755)         # mkdtemp's 0700 would keep nobody out of the whole root
    server = Server(t.binary, t.root, run_as=run_as)
    try:
        server.start()
        yield server.port
    finally:
        server.kill()
        os.chmod(t.root, mode)


@case(needs_server=False)
def no_permission(t):
    """A file the server cannot read gives 403 (as root, the server runs as nobody for this)."""
    with unprivileged_port(t) as port:
        expect_file(request(port, req("/small.txt"))[0], t, "small.txt")
        expect_status(request(port, req("/secret.txt"))[0], 403)


# ---------------------------------------------------------------------------
# round three: files and paths

def ask(c, path, *headers, method="GET"):
    """One request on the open connection c; returns its response."""
    c.send(req(path, method, headers))
    return c.response(head=method == "HEAD", what=f"response to {method} {path}")


@case
def cache_inplace_if_range(t):
    """A file rewritten in place (same inode, same size) within the second the cache last
    checked it is not served under its old ETag: If-Range with that ETag gives 200 and the
    new bytes, never a 206 of new bytes (RFC 9110 8.8.3, 13.1.5)."""
    path = os.path.join(t.root, "inplace.bin")
    size = 256 * 1024
    with Client(t.port) as c:       # one connection: one process of bin/fork or bin/prefork
        for attempt in range(3):
            old = random.Random(10 + attempt).randbytes(size)
            new = random.Random(20 + attempt).randbytes(size)
            with open(path, "wb") as f:
                f.write(old)
            etag = ask(c, "/inplace.bin", method="HEAD").header("etag")
            with open(path, "r+b") as f:
                f.write(new)
            r = ask(c, "/inplace.bin", "Range: bytes=0-15", f"If-Range: {etag}")
            check(r.status != 206, f"attempt {attempt}: 206 to If-Range: {etag} after the "
                                   f"file changed ({'new' if r.body == new[:16] else 'old'} bytes)")
            expect_status(r, 200)
            expect_body(r, new, "inplace.bin after the rewrite")
            check(r.header("etag") != etag, f"attempt {attempt}: ETag {etag} kept for new bytes")


def open_fds_to(pids, path):
    """The /proc/PID/fd entries of pids that point to path (deleted or not)."""
    found = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link in (path, path + " (deleted)"):
                found.append(f"{pid}/fd/{fd} -> {link}")
    return found


@case
def cache_deleted_closed(t):
    """A file served, then deleted, gives 404, and no server process keeps it open after."""
    path = os.path.join(t.root, "gone.bin")
    with open(path, "wb") as f:
        f.write(random.Random(4).randbytes(1 << 20))
    with Client(t.port) as c:       # one connection: the process that opened it answers
        expect_status(ask(c, "/gone.bin", method="HEAD"), 200)
        os.unlink(path)
        end = time.monotonic() + 3  # the cache may keep serving it for the rest of a second
        while (r := ask(c, "/gone.bin", method="HEAD")).status != 404:
            check(time.monotonic() < end, f"still {r.status} 3 s after the file was deleted")
            time.sleep(0.2)
        held = open_fds_to(process_tree(t.server.proc.pid), path)
        check(not held, f"the deleted file is still open after its 404: {', '.join(held)}")


@case
def symlink_inside_index(t):
    """A directory whose index.html is a symlink that stays inside the root (sub2/index.html
    -> ../small.txt) serves it, as nginx does."""
    os.makedirs(os.path.join(t.root, "sub2"), exist_ok=True)
    link = os.path.join(t.root, "sub2", "index.html")
    if not os.path.islink(link):
        os.symlink("../small.txt", link)
    expect_body(get(t, "/sub2/"), t.files["small.txt"], "/sub2/")


@case
def dir_trailing_slash_file(t):
    """A trailing slash names a directory: /small.txt/ (or via a symlink, or /small.txt/.)
    gives 404, as nginx and open(2) say; /sub/ still serves its index."""
    for path in ("/small.txt/", "/inside.txt/", "/small.txt/.", "/sub/deeper/file.txt/"):
        expect_status(get(t, path), 404)
    expect_file(get(t, "/sub/"), t, "sub/index.html")
    expect_file(get(t, "/sub/deeper/.."), t, "sub/index.html")


@case
def dir_deep_71(t):
    """A file 71 directories below the root is served, with openat2 or without (the walk
    has no depth limit of its own: PATH_MAX bounds the path)."""
    rel = "/".join(["deep71"] + ["d"] * 70 + ["file.txt"])
    path = os.path.join(t.root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"seventy-one directories down\n")
    expect_body(get(t, "/" + rel), b"seventy-one directories down\n", rel)


@case(needs_server=False)
def dir_index_execute_only(t):
    """A mode-0711 directory's index.html is served by a server that may not list the
    directory (as root, the server runs as nobody for this), as nginx's workers do."""
    priv = os.path.join(t.root, "priv")
    os.makedirs(priv, exist_ok=True)
    with open(os.path.join(priv, "index.html"), "wb") as f:
        f.write(t.files["sub/index.html"])
    os.chmod(priv, 0o711)
    with unprivileged_port(t) as port:
        expect_file(request(port, req("/priv/index.html"))[0], t, "sub/index.html")
        expect_file(request(port, req("/priv/"))[0], t, "sub/index.html")


# ---------------------------------------------------------------------------
# round three: preconditions, fields, privileges, workers

@case
def if_match_false(t):
    """If-Match naming other entity tags, or the current one as weak, gives 412 (RFC 9110
    13.1.1: strong comparison)."""
    etag = get(t, "/small.txt").header("etag")
    for value in ('"x"', "W/" + etag, '"x", "y"'):
        r = conditional(t, f"If-Match: {value}")
        check(r.status == 412, f"If-Match: {value} gave {r.status}, expected 412")


@case
def if_match_true(t):
    """If-Match: *, the current ETag, or a list holding it, serves the file: 200."""
    etag = get(t, "/small.txt").header("etag")
    for value in ("*", etag, f'"x", {etag}'):
        r = conditional(t, f"If-Match: {value}")
        check(r.status == 200, f"If-Match: {value} gave {r.status}, expected 200")
        expect_body(r, t.files["small.txt"], f"If-Match: {value}")


@case
def if_unmodified_since(t):
    """Range with an If-Unmodified-Since before Last-Modified gives 412; the exact date, an
    invalid one, or one beside If-Match (which wins) lets the Range apply: 206."""
    old, lm = http_date(FIXED_MTIME - 1), http_date(FIXED_MTIME)
    r = conditional(t, "Range: bytes=0-4", f"If-Unmodified-Since: {old}")
    check(r.status == 412, f"Range with If-Unmodified-Since: {old} gave {r.status}, expected 412")
    for headers in ([f"If-Unmodified-Since: {lm}"], ["If-Unmodified-Since: yesterday"],
                    ["If-Match: *", f"If-Unmodified-Since: {old}"]):
        r = conditional(t, "Range: bytes=0-4", *headers)
        check(r.status == 206, f"Range with {headers} gave {r.status}, expected 206")


@case
def precondition_order(t):
    """RFC 9110 13.2.2's order: a false If-Match or If-Unmodified-Since gives 412 even when
    If-None-Match or If-Modified-Since would give 304; a true one lets them give 304."""
    etag = get(t, "/small.txt").header("etag")
    lm = http_date(FIXED_MTIME)
    for headers, want in ((['If-Match: "x"', f"If-None-Match: {etag}"], 412),
                          ([f"If-Unmodified-Since: {http_date(FIXED_MTIME - 1)}",
                            f"If-Modified-Since: {lm}"], 412),
                          ([f"If-Match: {etag}", f"If-None-Match: {etag}"], 304),
                          ([f"If-Unmodified-Since: {lm}", f"If-Modified-Since: {lm}"], 304)):
        r = conditional(t, *headers)
        check(r.status == want, f"{headers} gave {r.status}, expected {want}")


@case
def if_range_wednesday(t):
    """If-Range with the exact Last-Modified of a file changed on a Wednesday gives 206
    (a date starting with W is no weak entity tag)."""
    path = os.path.join(t.root, "wednesday.txt")
    wednesday = FIXED_MTIME + 86400
    with open(path, "wb") as f:
        f.write(b"changed on a Wednesday\n")
    os.utime(path, (wednesday, wednesday))
    try:
        r = get(t, "/wednesday.txt", "Range: bytes=0-4", f"If-Range: {http_date(wednesday)}")
        expect_status(r, 206)
        expect_body(r, b"chang", f"If-Range: {http_date(wednesday)}")
    finally:
        os.unlink(path)


@case
def field_trailing_whitespace(t):
    """Whitespace after a field value is not part of it (RFC 9112 5): a date, a Range and a
    Content-Length followed by spaces or a tab still count."""
    lm = http_date(FIXED_MTIME)
    for value in (f"If-Modified-Since: {lm} ", f"If-Modified-Since: {lm}\t "):
        r = conditional(t, value)
        check(r.status == 304, f"{value!r} gave {r.status}, expected 304")
    for value in ("Range: bytes=0-4 ", "Range: bytes=0-4\t"):
        r = conditional(t, value)
        check(r.status == 206 and r.body == t.files["small.txt"][:5],
              f"{value!r} gave {r.status} with {len(r.body)} bytes, expected 206 with 5")
    r = conditional(t, "Content-Length: 0 ")
    check(r.status == 200, f"'Content-Length: 0 ' gave {r.status}, expected 200")


malformed_case("host_empty", "An empty Host gives 400 (RFC 9110 4.2.1).", req("/small.txt", host=""))
malformed_case("host_blank", "A Host of only spaces gives 400.", req("/small.txt", host="   "))
malformed_case("host_http10_empty", "An empty Host gives 400 in HTTP/1.0 too.",
               req("/small.txt", version="HTTP/1.0", host=""))
malformed_case("host_port_only", "A Host with a port and no host gives 400.",
               req("/small.txt", host=":80"))


@case
def range_suffix_empty_file(t):
    """bytes=-5 on an empty file is satisfiable (RFC 9110 14.1.1): 200, the empty file."""
    r = get(t, "/empty.txt", "Range: bytes=-5")
    expect_status(r, 200)
    check(r.header("content-length") == "0", f"Content-Length {r.header('content-length')!r}")
    expect_body(r, b"", "empty.txt")


@case
def rfc850_sliding_window(t):
    """An RFC 850 year is read within 50 years of now (RFC 9110 5.6.7): '71' is 2071, not
    1971, so If-Modified-Since: Thursday, 01-Jan-71 gives 304."""
    value = "Thursday, 01-Jan-71 00:00:00 GMT"
    r = conditional(t, f"If-Modified-Since: {value}")
    check(r.status == 304, f"If-Modified-Since: {value} gave {r.status}, expected 304")


def process_ids(pid):
    """(real, effective, saved uid), (the same gids) and the supplementary groups of pid."""
    ids = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = [int(v) for v in value.split()]
    return ids["Uid"][:3], ids["Gid"][:3], ids["Groups"]


@case(needs_server=False)
def root_serves_as_nobody(t):
    """Started as root, the server serves as nobody (--user's default), every process of it
    (--workers 2): a mode-000 file gives 403, a readable one 200."""
    if os.geteuid() != 0:
        raise Skipped("not running as root")
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        raise Skipped("no user nobody") from None
    for extra in ([], ["--workers", "2"]):
        server = Server(t.binary, t.root, extra)
        try:
            server.start()
            expect_file(request(server.port, req("/small.txt"))[0], t, "small.txt")
            expect_status(request(server.port, req("/secret.txt"))[0], 403)
            for pid in process_tree(server.proc.pid):
                try:
                    uids, gids, groups = process_ids(pid)
                except OSError:
                    continue        # exited meanwhile (one of bin/fork's children)
                check(uids == [pw.pw_uid] * 3 and gids == [pw.pw_gid] * 3 and
                      groups in ([], [pw.pw_gid]),
                      f"{extra}: process {pid} runs with uids {uids}, gids {gids}, groups "
                      f"{groups}; expected nobody's {pw.pw_uid}/{pw.pw_gid}")
        finally:
            server.kill()


@case(needs_server=False)
def user_option(t):
    """--user names the account to serve as; an unknown one fails at start with one line and
    exit status 1; --help mentions it."""
    code, out, _ = run_cli(t, "--help")
    check(code == 0 and "--user" in out, "--help does not mention --user")
    code, _, err = run_cli(t, "--addr", "127.0.0.1", "--port", "0", "--root", t.root,
                           "--user", "c10k-no-such-user")
    check(code == 1, f"--user c10k-no-such-user: {describe_exit(code)}, expected 1")
    expect_one_line(err, "--user c10k-no-such-user")


def gone_or_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@case(needs_server=False)
def workers_die_with_parent(t):
    """--workers 2: SIGHUP stops the parent and its workers like SIGTERM (exit 0); a parent
    killed outright (SIGKILL) takes its workers with it, so the port is free again."""
    for sig in (signal.SIGHUP, signal.SIGKILL):
        server = Server(t.binary, t.root, ["--workers", "2"], new_session=True)
        try:
            server.start()
            parent = server.proc.pid
            workers = [p for p in process_tree(parent) if p != parent]
            os.kill(parent, sig)
            try:
                code = server.proc.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                raise Failure(f"still running {STOP_DEADLINE} s after {sig.name}") from None
            end = time.monotonic() + STOP_DEADLINE
            while not all(gone_or_zombie(p) for p in workers) and time.monotonic() < end:
                time.sleep(0.05)
            left = [p for p in workers if not gone_or_zombie(p)]
            check(not left, f"workers {left} still running {STOP_DEADLINE} s after the parent "
                            f"got {sig.name} ({describe_exit(code)})")
            if sig == signal.SIGHUP:
                check(code == 0, f"{describe_exit(code)} after SIGHUP, expected 0"
                                 f"{server.stderr_tail()}")
        finally:
            try:
                os.killpg(server.proc.pid, signal.SIGKILL)
            except (OSError, AttributeError):
                pass
            server.kill()

# ---------------------------------------------------------------------------
# Busy polling: an option of the model that has it, never a default

BUSY_POLL_OPTIONS = {"epoll": ["--busy-poll", "50"], "uring": ["--sqpoll"],
                     "corouring": ["--sqpoll"]}


@case(needs_server=False)
def busy_poll_option(t):
    """bin/epoll takes --busy-poll USEC, bin/uring and bin/corouring --sqpoll: --help names
    the option and a server started with it answers; every other model refuses both
    (exit 2), as any unknown option."""
    own = BUSY_POLL_OPTIONS.get(t.model)
    for opt in (["--busy-poll", "5"], ["--sqpoll"]):
        if own and opt[0] == own[0]:
            continue
        code, _, err = run_cli(t, "--addr", "127.0.0.1", "--port", "0", "--root", t.root, *opt)
        check(code == 2, f"{' '.join(opt)}: {describe_exit(code)}, expected 2")
        expect_one_line(err, " ".join(opt))
    if not own:
        return
    code, out, _ = run_cli(t, "--help")
    check(code == 0 and own[0] in out, f"--help does not mention {own[0]}")
    server = Server(t.binary, t.root, own)
    try:
        server.start()
        expect_file(request(server.port, req("/small.txt"))[0], t, "small.txt")
        code = server.stop(signal.SIGTERM)
        check(code == 0, f"{' '.join(own)}: {describe_exit(code)} after SIGTERM, expected 0")
    finally:
        server.kill()


# ---------------------------------------------------------------------------
# Shutdown: always the last case, always run.

@case(always=True)
def shutdown(t):
    """SIGTERM with a keep-alive connection open: exit 0 and the served line on stderr."""
    with Client(t.port) as c:
        c.send(req("/small.txt"))
        expect_file(c.response(), t, "small.txt")
        code = t.server.stop(signal.SIGTERM)
    check(code is not None,
          "still running 10 s after SIGTERM (an idle keep-alive connection was open)")
    check(code == 0, f"{describe_exit(code)} after SIGTERM, expected 0{t.server.stderr_tail()}")
    expect_served_line(t.server)


# ---------------------------------------------------------------------------
# Runner

class Report:
    """Prints whole lines under a lock and counts outcomes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {"ok": 0, "FAIL": 0, "skip": 0}

    def result(self, outcome, model, name, reason=""):
        line = f"{outcome:<4} {model} {name}"
        if reason:
            line += ": " + " ".join(str(reason).split())
        with self.lock:
            self.counts[outcome] += 1
            print(line, flush=True)

    def summary(self):
        text = f"{self.counts['ok']} passed, {self.counts['FAIL']} failed"
        if self.counts["skip"]:
            text += f", {self.counts['skip']} skipped"
        return text


def run_case(c, t):
    """Run one case; return (outcome, reason)."""
    try:
        c.run(t)
        return "ok", ""
    except Failure as e:
        return "FAIL", str(e)
    except Skipped as e:
        return "skip", str(e)
    except Exception as e:      # a socket error, or a bug in the case
        return "FAIL", f"{type(e).__name__}: {e}"


def run_binary(binary, cases, keyword, report):
    """Start the binary's server, run the cases in order, stop it."""
    model = os.path.basename(binary)
    root, files = build_root()
    server = Server(binary, root)
    t = Target(binary, root, files, server)
    gone = None     # why the main server can no longer be tested, once it cannot
    try:
        try:
            check(os.path.isfile(binary) and os.access(binary, os.X_OK),
                  f"{binary} is not an executable file")
            server.start()
            outcome, reason = "ok", listening_line_problem(server, model, root)
            if reason:
                outcome = "FAIL"    # a wrong line, but a running server: the cases still run
        except Failure as e:
            outcome, reason = "FAIL", str(e)
            gone = "server did not start"
            server.kill()
        if keyword in "startup" or outcome == "FAIL":
            report.result(outcome, model, "startup", reason)

        for c in cases:
            if c.needs_server and gone and not (c.always and server.alive()):
                outcome, reason = "FAIL", gone
            else:
                outcome, reason = run_case(c, t)
                if not gone and not server.stopped:
                    problem = server_problem(t, check_answers=outcome == "FAIL" and c.needs_server)
                    if problem:
                        gone = f"{problem[0]} during {c.name}"
                        reason = f"{reason}; {problem[1]}" if outcome == "FAIL" else problem[1]
                        outcome = "FAIL"
            if keyword in c.name or outcome == "FAIL":
                report.result(outcome, model, c.name, reason)
    finally:
        server.kill()
        remove_root(root)


def listening_line_problem(server, model, root):
    """What is wrong with the listening line's address, model or root; "" if nothing."""
    addr, _, printed_model, printed_root = server.listening.groups()
    if addr != "127.0.0.1":
        return f"listening line has address {addr}, expected 127.0.0.1"
    if printed_model != model:
        return f"listening line says model={printed_model}, expected {model}"
    if os.path.realpath(printed_root) != os.path.realpath(root):
        return f"listening line says root={printed_root}, expected {root}"
    return ""


def server_problem(t, check_answers):
    """(summary, details) if the main server can no longer be tested, else None.

    A process that exited cannot. After a failed case, neither can a server that no
    longer answers GET /small.txt: the remaining cases then fail at once instead of
    each waiting for its timeout.
    """
    proc = t.server.proc
    if check_answers:
        try:
            proc.wait(0.5)      # a crash may close sockets a moment before the exit is seen
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None and check_answers:
        try:
            r = get(t, "/small.txt")
            if r.status == 200:
                return None
            problem = f"answers GET /small.txt with {r.status}"
        except (Failure, OSError) as e:
            problem = f"no longer answers GET /small.txt ({e})"
        if proc.poll() is None:
            return "server stopped answering", f"server {problem}"
    if proc.poll() is not None:
        status = describe_exit(proc.returncode)
        return "server died", f"server died ({status}){t.server.stderr_tail()}"
    return None


def find_binaries():
    if not os.path.isdir(BIN_DIR):
        return []
    paths = (os.path.join(BIN_DIR, name) for name in sorted(os.listdir(BIN_DIR)))
    return [p for p in paths if os.path.isfile(p) and os.access(p, os.X_OK)]


def main():
    parser = argparse.ArgumentParser(description="Run the integration cases against servers.")
    parser.add_argument("-j", type=int, default=2, metavar="N",
                        help="binaries tested in parallel (default 2)")
    parser.add_argument("-k", default="", metavar="SUBSTRING",
                        help="run only the cases whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("binaries", nargs="*", metavar="BINARY",
                        help="default: every executable in bin/")
    args = parser.parse_args()
    if args.list:
        print(f"{'startup':<24} The listening line comes within 10 s and names this model and root.")
        for c in CASES:
            print(f"{c.name:<24} {c.run.__doc__}")
        return 0

    binaries = [os.path.abspath(b) for b in args.binaries] or find_binaries()
    if not binaries:
        print(f"FAIL no server binaries in {BIN_DIR}: build them first")
        print("0 passed, 1 failed")
        return 1
    if not any(args.k in c.name for c in CASES) and args.k not in "startup":
        parser.error(f"no case name contains {args.k!r}")
    cases = [c for c in CASES if args.k in c.name or c.always]
    report = Report()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.j)) as pool:
        futures = {pool.submit(run_binary, b, cases, args.k, report): b for b in binaries}
        for future in concurrent.futures.as_completed(futures):
            try:
                future.result()
            except Exception as e:      # a bug in the runner itself: still counted, never silent
                report.result("FAIL", os.path.basename(futures[future]), "harness",
                              f"{type(e).__name__}: {e}")
    print(report.summary())
    return 1 if report.counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
