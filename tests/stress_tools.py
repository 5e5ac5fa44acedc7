"""Helpers for tests/stress.py; standard library only.

- Failed: a scenario did not hold; carries a short figure for the table and the detail.
- proc_*(): what the kernel says about a server process (fds, RSS, CPU time), summed over
  the processes under it (bin/fork's children, the workers of bin/prefork and --workers).
- wait_until(): bounded polling, the only way the scenarios wait for each other.
- Tool / run_wrk() / WrkResult: wrk and slowhttptest as child processes that are always
  reaped, also on Ctrl-C (stop_tools()); wrk's report read by bench/measure.py's parse_wrk.
- Swarm: many client connections driven by one selector (open, send, collect responses
  or closes), for the storms of hundreds to thousands of connections.

Server processes themselves are started and stopped with tests/fixtures.py's Server.
"""

import errno
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

# What the kernel says about a server process: the readers the bench harness uses.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from c10kutil import (cpu_seconds, proc_fd_kinds, proc_fds, proc_rss_kib,  # noqa: E402,F401
                      proc_threads)
import http_client  # noqa: E402 (responses read as the bench and the gate read them)
from measure import parse_wrk  # noqa: E402


class Failed(Exception):
    """A scenario did not hold. short: the table cell's figure; detail: what happened."""

    def __init__(self, short, detail=None):
        super().__init__(detail or short)
        self.short = short
        self.detail = detail or short


def expect(condition, short, detail=None):
    if not condition:
        raise Failed(short, detail)


def human(n):
    """12345 -> '12k', 1234 -> '1.2k', 999 -> '999'."""
    if n >= 10000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return f"{n:.0f}"


# ---------------------------------------------------------------------------
# The server process, as the kernel sees it

def proc_cpu_seconds(pid):
    """User + system CPU time of every thread of pid, in seconds."""
    return cpu_seconds(pid)


def wait_until(predicate, within, interval=0.05):
    """Poll predicate until it returns a true value or `within` s pass; return its last value."""
    end = time.monotonic() + within
    while True:
        value = predicate()
        if value or time.monotonic() >= end:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Load tools as child processes

_tools = set()


class Tool:
    """One child process (wrk, slowhttptest) whose output goes to a file; always reaped."""

    def __init__(self, argv, out_path, cwd=None):
        self.argv = argv
        self.out_path = out_path
        self._out = open(out_path, "wb")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                         stderr=subprocess.STDOUT, cwd=cwd,
                                         start_new_session=True)
        except OSError as e:
            self._out.close()
            raise Failed("no " + os.path.basename(argv[0]), f"cannot run {argv[0]}: {e}") from None
        _tools.add(self)

    def running(self):
        return self.proc.poll() is None

    def wait(self, within):
        """Wait up to `within` s for the exit; kill it if it does not come. Returns the output."""
        try:
            self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.stop()
            raise Failed(f"{os.path.basename(self.argv[0])} hung",
                         f"{' '.join(self.argv)} still running after {within:g} s") from None
        return self._finish()

    def stop(self):
        """Stop it now (SIGINT first: wrk and slowhttptest then print and write their reports)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(3)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                self.proc.kill()
                self.proc.wait()
        return self._finish()

    def _finish(self):
        _tools.discard(self)
        if not self._out.closed:
            self._out.close()
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")


def stop_tools():
    """Stop every tool still running (on Ctrl-C or an unexpected error)."""
    for tool in list(_tools):
        tool.stop()


class WrkResult:
    """wrk's report, read by the bench's reader (bench/measure.py's parse_wrk)."""

    def __init__(self, text):
        self.text = text
        try:
            r = parse_wrk(text)
        except ValueError as e:
            raise Failed("wrk failed", f"{e}: {text[-300:]!r}") from None
        self.rps, self.requests, self.non2xx = r["rps"], r["requests"], r["non2xx"]
        self.connect, self.read, self.write, self.timeout = r["socket_errors"]

    def errors(self):
        return self.connect + self.read + self.write

    def __str__(self):
        return (f"{self.requests} requests, {self.rps:.0f} req/s, errors connect {self.connect} "
                f"read {self.read} write {self.write}, timeouts {self.timeout}, "
                f"non-2xx {self.non2xx}")


def start_wrk(port, conns, secs, out_path, path="/", timeout_s=None):
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{secs}s"]
    if timeout_s:
        argv.append(f"--timeout={timeout_s}s")
    return Tool(argv + [f"http://127.0.0.1:{port}{path}"], out_path)


def run_wrk(port, conns, secs, out_path, path="/"):
    """Run wrk to the end (bounded) and return its WrkResult."""
    return WrkResult(start_wrk(port, conns, secs, out_path, path).wait(secs + 30))


# ---------------------------------------------------------------------------
# Many connections at once

class SwarmConn:
    def __init__(self, sock):
        self.sock = sock
        self.connected = False
        self.connect_error = None
        self.out = b""              # bytes still to send
        self.buf = bytearray()      # received, not yet parsed
        self.responses = []         # (status, body)
        self.closed = None          # None, "eof", "reset"
        self.bad = None             # a protocol error seen in the stream
        self.t_sent = None
        self.t_done = None          # when it closed or got what was wanted
        self.sock_open = True

    def take_responses(self):
        while not self.bad:
            try:
                got = http_client.parse(self.buf)
            except http_client.BadResponse as e:
                self.bad = str(e)
                return
            if got is None:
                return
            r, rest = got
            self.responses.append((r.status, r.body))
            self.buf = bytearray(rest)


class Swarm:
    """n client connections to 127.0.0.1:port driven by one selector.

    open (connect, nonblocking) -> wait_connected() -> send() -> collect() -> close().
    Each connection ends up answered (the wanted number of responses), closed by the
    server (EOF or reset, with whatever came before), or still pending at the deadline.
    """

    def __init__(self, port, n, rcvbuf=None):
        self.addr = ("127.0.0.1", port)
        self.conns = []
        self.sel = selectors.DefaultSelector()
        try:
            for _ in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                if rcvbuf:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                s.setblocking(False)
                c = SwarmConn(s)
                self.conns.append(c)
                rc = s.connect_ex(self.addr)
                if rc == 0:
                    c.connected = True
                elif rc not in (errno.EINPROGRESS, errno.EAGAIN):
                    c.connect_error = os.strerror(rc)
        except BaseException:
            self.close()
            raise

    def wait_connected(self, within):
        """Wait until every connect has finished; return how many succeeded."""
        waiting = [c for c in self.conns if not c.connected and not c.connect_error]
        for c in waiting:
            self.sel.register(c.sock, selectors.EVENT_WRITE, c)
        end = time.monotonic() + within
        left = len(waiting)
        while left and time.monotonic() < end:
            for key, _ in self.sel.select(max(0.0, end - time.monotonic())):
                c = key.data
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    c.connect_error = os.strerror(err)
                else:
                    c.connected = True
                self.sel.unregister(c.sock)
                left -= 1
        for c in waiting:
            if not c.connected and not c.connect_error:
                self.sel.unregister(c.sock)
                c.connect_error = f"not connected within {within:g} s"
        return sum(c.connected for c in self.conns)

    def send(self, payload_of):
        """Queue payload_of(i) on every connected connection and send what fits at once."""
        now = time.monotonic()
        for i, c in enumerate(self.conns):
            if not c.connected or c.closed:
                continue
            c.out = payload_of(i)
            c.t_sent = now
            self._push(c)

    def _push(self, c):
        try:
            while c.out:
                n = c.sock.send(c.out)
                c.out = c.out[n:]
        except BlockingIOError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            c.out = b""     # the server closed: collect() reads what it said, then EOF/reset

    def collect(self, within, want=1, until_close=False):
        """Read until every connection has `want` responses (or, with until_close, until the
        server closes it), is closed, or `within` s pass. Returns the pending count."""
        def done(c):
            return (c.closed is not None or c.bad is not None or
                    (not until_close and len(c.responses) >= want))

        active = {}
        for c in self.conns:
            if c.connected and not done(c):
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
                self.sel.register(c.sock, events, c)
                active[c.sock] = c
        end = time.monotonic() + within
        while active and time.monotonic() < end:
            for key, mask in self.sel.select(max(0.0, end - time.monotonic())):
                c = key.data
                if mask & selectors.EVENT_WRITE and c.out:
                    self._push(c)
                    if not c.out:
                        self.sel.modify(c.sock, selectors.EVENT_READ, c)
                if mask & selectors.EVENT_READ:
                    self._read(c)
                if done(c):
                    c.t_done = time.monotonic()
                    self.sel.unregister(c.sock)
                    del active[c.sock]
        for sock in active:
            self.sel.unregister(sock)
        return len(active)

    def _read(self, c):
        while c.closed is None:
            try:
                data = c.sock.recv(1 << 16)
            except BlockingIOError:
                return
            except ConnectionResetError:
                c.closed = "reset"
                return
            if not data:
                c.closed = "eof"
                return
            c.buf += data
            c.take_responses()

    def close(self):
        for c in self.conns:
            if c.sock_open:
                c.sock.close()
                c.sock_open = False
        self.sel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
