#!/usr/bin/env python3
"""scripts/herd.py [N] [CONNS] - does a new connection wake one sleeper, or all of them?

Three ways for N processes to wait on one listening socket, each given CONNS (default
2000) connections one after another, each with one `Connection: close` request:

  accept     bin/prefork --workers N: every process asleep in accept()
  epoll      N processes, each in epoll_wait() on the listener (level-triggered), then
             accept() on a nonblocking listener
  exclusive  the same, registered with EPOLLEXCLUSIVE (Linux 4.5)

For each, the wakeups of the waiting threads are counted: the growth of their
voluntary_ctxt_switches in /proc, less what the same wait costs with no connections at
all (bin/prefork's 1 s accept timeout). One wakeup per connection means the kernel woke
one sleeper; N is the thundering herd. (The epoll waiters are small Python processes
here: what is counted is how often each is woken, not how fast.) Standard library and
bench/'s procs.py (bin/prefork's start, its readiness line, its children) only.
"""

import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
from procs import StderrLines, children  # noqa: E402

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def wakeups(pids):
    """voluntary_ctxt_switches of each process's main thread (the one that waits)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/task/{pid}/status") as f:
            total += int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", f.read())[1])
    return total


def epoll_waiter(listener, exclusive):
    """A child: waits in epoll_wait on the shared listener, accepts, answers at once and
    closes, forever (no read: its only sleep is in epoll_wait)."""
    ep = select.epoll()
    ep.register(listener.fileno(), select.EPOLLIN | (select.EPOLLEXCLUSIVE if exclusive else 0))
    while True:
        ep.poll()
        try:
            conn, _ = listener.accept()
        except BlockingIOError:     # woken for a connection another waiter took
            continue
        with conn:
            conn.sendall(RESPONSE)


def measure(port, waiters, conns, request):
    start = time.monotonic()
    before = wakeups(waiters)
    time.sleep(2.0)     # a measurement window: what waiting costs with no connections
    idle_rate = (wakeups(waiters) - before) / (time.monotonic() - start)
    start, before = time.monotonic(), wakeups(waiters)
    for _ in range(conns):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(request)
            while s.recv(4096):
                pass
    secs = time.monotonic() - start
    return (wakeups(waiters) - before - idle_rate * secs) / conns


def prefork(n, conns):
    with tempfile.TemporaryDirectory() as root:
        os.chmod(root, 0o755)   # a server started as root serves as nobody
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("hello\n")
        server = subprocess.Popen([os.path.join(REPO, "bin/prefork"), "--port", "0", "--root",
                                   root, "--workers", str(n), "--quiet"],
                                  stderr=subprocess.PIPE)
        err = StderrLines(server)
        try:
            port = int(err.wait_listening(10)[2])
            workers = []
            while len(workers) < n:
                workers = children(server.pid)
            return measure(port, workers, conns,
                           b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        finally:
            server.terminate()
            server.wait(10)
            err.finish()


def epoll(n, conns, exclusive):
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.setblocking(False)
    pids = []
    try:
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                try:
                    epoll_waiter(listener, exclusive)
                finally:
                    os._exit(0)
            pids.append(pid)
        return measure(listener.getsockname()[1], pids, conns, b"")
    finally:
        for pid in pids:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        listener.close()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    conns = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    print(f"{n} waiters, {conns} connections; wakeups per connection (1 = one woken, "
          f"{n} = all of them):")
    print(f"  accept     (bin/prefork)      {prefork(n, conns):.2f}")
    print(f"  epoll      (level-triggered)  {epoll(n, conns, False):.2f}")
    print(f"  exclusive  (EPOLLEXCLUSIVE)   {epoll(n, conns, True):.2f}")


if __name__ == "__main__":
    main()
