#!/usr/bin/env python3
"""scripts/herd.py [N] [CONNS] - does a connection wake one bin/prefork process, or all?

Starts bin/prefork --workers N (default 4), whose N processes all sleep in accept() on
one listening socket, opens CONNS (default 2000) connections one after another, each
with one `Connection: close` request, and counts how often each process's accepting
thread was woken: the growth of its voluntary_ctxt_switches in /proc, less what the
same wait costs with no connections at all (the 1 s SO_RCVTIMEO on accept). One wakeup
per connection means the kernel woke one sleeper (exclusive wait); N would be the
thundering herd. Standard library only.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def children(pid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(name))
            except (OSError, ValueError):
                pass
    return sorted(out)


def wakeups(workers):
    """voluntary_ctxt_switches of each worker's main thread (the one in accept())."""
    total = 0
    for pid in workers:
        with open(f"/proc/{pid}/task/{pid}/status") as f:
            total += int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", f.read())[1])
    return total


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    conns = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("hello\n")
        server = subprocess.Popen([os.path.join(REPO, "bin/prefork"), "--port", "0", "--root",
                                   root, "--workers", str(n), "--quiet"],
                                  stderr=subprocess.PIPE, text=True)
        try:
            port = int(re.search(r":(\d+) model=", server.stderr.readline())[1])
            workers = []
            while len(workers) < n:
                workers = children(server.pid)
            start = time.monotonic()
            before = wakeups(workers)
            time.sleep(2.0)     # a measurement window: the idle wakeups of the timeout
            idle_rate = (wakeups(workers) - before) / (time.monotonic() - start)
            start, before = time.monotonic(), wakeups(workers)
            for _ in range(conns):
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                    while s.recv(4096):
                        pass
            secs = time.monotonic() - start
            woken = wakeups(workers) - before - idle_rate * secs
            print(f"bin/prefork --workers {n}: {conns} connections in {secs:.1f} s, "
                  f"{woken / conns:.2f} accept wakeups per connection "
                  f"(1 = one process woken, {n} = all of them)")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
