"""Helpers for tests/integration.py; standard library only.

- build_root(): the document root every server is tested against,
- Client / request(): a raw-socket HTTP/1.1 client that sends exact bytes and reads
  responses by Content-Length, so pipelined and malformed exchanges can be checked,
- Server: one server process, started and stopped the way SPEC.md section 2 says; its
  stderr read up to the listening line and then drained by bench/procs.py's StderrLines,
  the readiness reader the gate and the bench use too.

Nothing here knows about particular test cases.
"""

import atexit
import email.utils
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

TIMEOUT = 5.0               # seconds, for every socket operation
START_DEADLINE = 10.0       # seconds to wait for the listening line
STOP_DEADLINE = 10.0        # seconds to wait for the exit after a signal
FIXED_MTIME = 1700000000    # Tue, 14 Nov 2023 22:13:20 GMT: makes Last-Modified predictable
MAX_HEAD = 64 * 1024        # a response head larger than this is a server bug

# The readiness and exit lines, as the bench harness reads them too.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from c10kutil import LISTENING_RE, SERVED_RE, process_tree  # noqa: E402,F401
from procs import StartError, StderrLines, describe_exit  # noqa: E402,F401 (tests import it)
STATUS_RE = re.compile(r"^HTTP/(1\.[01]) (\d{3})(?: (.*))?$")

# Headers that a response must never carry twice.
SINGLE_HEADERS = ("accept-ranges", "allow", "connection", "content-length", "content-range",
                  "content-type", "date", "etag", "last-modified", "location", "server")


class Failure(Exception):
    """An expectation of a case was not met; the message says which."""


class Skipped(Exception):
    """The case cannot run in this environment; the message says why."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def http_date(timestamp):
    """Format a Unix time as an IMF-fixdate ('Tue, 14 Nov 2023 22:13:20 GMT')."""
    return email.utils.formatdate(timestamp, usegmt=True)


def parse_http_date(text):
    """Return the Unix time of an exact IMF-fixdate, or None if text is not one."""
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    timestamp = int(parsed.timestamp())
    # Round-tripping rejects other formats (RFC 850, asctime, "+0000") and wrong weekdays.
    return timestamp if http_date(timestamp) == text else None


# ---------------------------------------------------------------------------
# The document root

def build_root():
    """Create a fresh document root; return (root, files), files = {relative path: bytes}."""
    root = tempfile.mkdtemp(prefix="c10k-root-")
    # mkdtemp's 0700 would keep out a server started as root, which serves as nobody.
    os.chmod(root, 0o755)
    files = {
        "index.html": _html("c10k test page", 4096),
        "small.txt": b"small.txt: a hundred bytes of plain text for the c10k integration suite."
                     b" 0123456789abcdefghijklmn\n",
        "1m.bin": random.Random(1).randbytes(1 << 20),
        "big.bin": random.Random(2).randbytes(8 * 1024 * 1024 + 4321),  # not page aligned
        "style.css": b"body { font-family: sans-serif; margin: 2em; }\n",
        "app.js": b"document.title = 'c10k';\n",
        "data.json": b'{"name": "c10k", "models": 8}\n',
        "pic.png": _png(),
        "font.woff2": b"wOF2" + random.Random(3).randbytes(60),
        "noext": b"a file without an extension\n",
        "empty.txt": b"",
        "a b.txt": b"a file name with a space in it\n",
        "secret.txt": b"nobody may read this\n",
        "sub/index.html": _html("sub directory", 300),
        "sub/deeper/file.txt": b"two levels down\n",
    }
    for name, data in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    os.chmod(os.path.join(root, "secret.txt"), 0)
    os.mkdir(os.path.join(root, "emptydir"))
    os.symlink("/etc/passwd", os.path.join(root, "escape"))
    os.symlink("/etc", os.path.join(root, "escapedir"))
    os.symlink("small.txt", os.path.join(root, "inside.txt"))
    os.mkfifo(os.path.join(root, "fifo"))
    return root, files


def remove_root(root):
    shutil.rmtree(root, ignore_errors=True)


def _html(title, size):
    head = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n"
            "<body>\n")
    tail = "</body></html>\n"
    paragraphs = []
    n = 0
    while len(head) + sum(map(len, paragraphs)) + len(tail) < size - 80:
        n += 1
        paragraphs.append(f"<p>Paragraph {n} of {title}: ten thousand clients, one file.</p>\n")
    return (head + "".join(paragraphs) + tail).encode()


def _png():
    """A valid 1x1 grey PNG."""
    def chunk(kind, data):
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------
# The client

class Response:
    """One response: version, status, reason, headers (lower-case keys), header_list, body."""

    def __init__(self, version, status, reason, header_list):
        self.version = version
        self.status = status
        self.reason = reason
        self.header_list = header_list          # [(name, value)] as sent, duplicates kept
        self.headers = {name.lower(): value for name, value in header_list}
        self.body = b""

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def count(self, name):
        return sum(1 for n, _ in self.header_list if n.lower() == name.lower())

    def mime(self):
        """Content-Type without parameters, lower case."""
        return self.header("content-type", "").split(";")[0].strip().lower()

    def closes(self):
        return "close" in self.header("connection", "").lower()

    def __repr__(self):
        return f"<Response {self.status} {self.reason}, {len(self.body)} bytes>"


class Client:
    """One TCP connection to the server: send exact bytes, read whole responses."""

    def __init__(self, port, timeout=TIMEOUT):
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self.sock.close()

    def reset(self):
        """Close with SO_LINGER 0, so the server's next write meets a reset."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def send(self, data):
        """Send all of data; return False if the server had already closed or reset.

        A failed send is not an error by itself: the server may answer 4xx and close
        before reading everything; reading the response tells what happened.
        """
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def recv_more(self, waiting_for):
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            got = f" (had {len(self.buf)} bytes)" if self.buf else ""
            raise Failure(f"no complete {waiting_for} within {self.timeout:g} s{got}") from None
        except ConnectionResetError:
            raise Failure(f"connection reset while waiting for {waiting_for}") from None
        if not data:
            got = f" (had {len(self.buf)} bytes: {bytes(self.buf[:60])!r})" if self.buf else ""
            raise Failure(f"connection closed while waiting for {waiting_for}{got}")
        self.buf += data

    def read_at_least(self, n, what="data"):
        while len(self.buf) < n:
            self.recv_more(what)

    def response(self, head=False, what="response", allow_close=False):
        """Read one response: no body for HEAD or 304, otherwise exactly Content-Length bytes.

        With allow_close, a connection that ends (EOF or reset) before the first byte
        gives None instead of a failure.
        """
        while True:
            r = self.take_response(head, what)
            if r is not None:
                return r
            if allow_close and not self.buf:
                try:
                    data = self.sock.recv(1 << 16)
                except ConnectionResetError:
                    return None
                except socket.timeout:
                    raise Failure(f"no {what} and no close within {self.timeout:g} s") from None
                if not data:
                    return None
                self.buf += data
            else:
                self.recv_more(what)

    def take_response(self, head=False, what="response"):
        """Take one complete response out of the bytes received so far; None if incomplete."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) >= 5 and not self.buf.startswith(b"HTTP/"):
                raise Failure(f"{what}: not a status line: {bytes(self.buf[:60])!r}")
            check(len(self.buf) <= MAX_HEAD, f"{what}: no end of headers in {MAX_HEAD} bytes")
            return None
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        match = STATUS_RE.match(lines[0])
        check(match, f"{what}: bad status line {lines[0][:60]!r}")
        header_list = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            check(colon and name and name == name.strip(), f"{what}: bad header line {line[:60]!r}")
            header_list.append((name, value.strip()))
        r = Response(match[1], int(match[2]), match[3] or "", header_list)
        for name in SINGLE_HEADERS:
            check(r.count(name) <= 1, f"{what}: {name} appears {r.count(name)} times")

        n = 0
        if not (head or r.status in (204, 304) or r.status < 200):
            length = r.header("content-length")
            check(length is not None, f"{what}: {r.status} response without Content-Length")
            check(length.isdigit(), f"{what}: bad Content-Length {length!r}")
            n = int(length)
        body_start = end + 4
        if len(self.buf) < body_start + n:
            return None
        r.body = bytes(self.buf[body_start:body_start + n])
        del self.buf[:body_start + n]
        return r

    def wait_closed(self, within):
        """Wait up to `within` s for EOF or reset; return (closed, bytes received, seconds)."""
        start = time.monotonic()
        data = bytes(self.buf)
        self.buf.clear()
        try:
            while True:
                left = start + within - time.monotonic()
                if left <= 0:
                    return False, data, time.monotonic() - start
                self.sock.settimeout(left)
                try:
                    chunk = self.sock.recv(1 << 16)
                except socket.timeout:
                    return False, data, time.monotonic() - start
                except ConnectionResetError:
                    return True, data, time.monotonic() - start
                if not chunk:
                    return True, data, time.monotonic() - start
                data += chunk
        finally:
            self.sock.settimeout(self.timeout)

    def expect_closed(self, within=3.0, after="the response"):
        """Fail unless the server closes within `within` s without sending anything more."""
        closed, data, _ = self.wait_closed(within)
        check(not data, f"unexpected bytes after {after}: {data[:60]!r}")
        check(closed, f"connection still open {within:g} s after {after}")


def request(port, raw, count=1, head=None, timeout=TIMEOUT):
    """Send raw bytes on a new connection and read `count` (pipelined) responses."""
    if head is None:
        head = raw.startswith(b"HEAD ")
    with Client(port, timeout) as c:
        c.send(raw)
        if count == 1:
            responses = [c.response(head=head)]
        else:
            responses = [c.response(head=head, what=f"response {i + 1}") for i in range(count)]
        # Bytes already here beyond the last response mean a wrong Content-Length (or a HEAD body).
        check(not c.buf, f"{len(c.buf)} unexpected bytes after the response: {bytes(c.buf[:60])!r}")
        return responses


# ---------------------------------------------------------------------------
# The server process

_running = set()


@atexit.register
def _kill_leftovers():
    for server in list(_running):
        server.kill()


class Server:
    """One server process: started with --port 0, stderr read until the listening line,
    then drained by a thread (kept in .lines) so the server never blocks on the pipe."""

    def __init__(self, binary, root, extra_args=(), idle_timeout=2, run_as=(), new_session=False):
        # run_as: a command prefix, e.g. setpriv to start the server as another user.
        # new_session: in a process group of its own, which a case can kill whole.
        self.new_session = new_session
        self.argv = [*run_as, binary, "--addr", "127.0.0.1", "--port", "0", "--root", root,
                     "--idle-timeout", str(idle_timeout), *extra_args]
        self.proc = None
        self.port = None
        self.listening = None       # the regex match of the listening line
        self.lines = []             # every stderr line, decoded
        self.stopped = False        # set once stop() has been called
        self._stderr = None         # procs.StderrLines: read up to the listening line, then drained

    def start(self, deadline=START_DEADLINE):
        """Start the process and wait for its listening line; raise Failure if it does not come."""
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         start_new_session=self.new_session)
        except OSError as e:
            raise Failure(f"cannot run {self.argv[0]}: {e}") from None
        _running.add(self)
        self._stderr = StderrLines(self.proc)
        self.lines = self._stderr.lines
        try:
            self.listening = self._stderr.wait_listening(deadline)
        except StartError as e:
            raise Failure(f"{e}{self.stderr_tail()}") from None
        self.port = int(self.listening[2])

    def stderr_tail(self):
        """'; stderr: LINE' for messages: a sanitizer's summary if any, else the last line."""
        if self.listening is not None and self.proc.poll() is not None:
            self._stderr.finish()   # the last lines of a process that exited
        lines = [line for line in self.lines if not LISTENING_RE.match(line)]
        notable = [line for line in lines if "SUMMARY:" in line or "runtime error" in line]
        if notable or lines:
            return f"; stderr: {(notable or lines)[-1].strip()!r}"
        return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, deadline=STOP_DEADLINE):
        """Send sig and wait; return the exit code, or None if it had to be killed."""
        self.stopped = True
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(deadline)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self._finish()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            # Its workers or children too: they would hold the port and fds after it.
            for pid in reversed(process_tree(self.proc.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.wait()
        self._finish()

    def _finish(self):
        if self._stderr is not None:
            self._stderr.finish()
        _running.discard(self)
