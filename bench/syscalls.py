#!/usr/bin/env python3
"""syscalls.py - the project's one system-call counter: the kernel's raw_syscalls:sys_exit
tracepoint (every call, as it returns, with its result), read with perf.

    record_argv(out, argv)  `perf record` of a whole run of argv, every call by name, and
                            every io_uring operation by opcode (the gate, syscount)
    read_record(out)        {name: calls} from such a record: "name:failed" for a call that
                            failed, "name:timeout" for a poll or select that returned 0,
                            "io_uring_op:OPCODE" for each io_uring operation submitted
    Window(pid, out)        `perf stat` on a running server's processes, counting only
                            between enable() and disable(): the total of a measured window
                            (the bench's syscalls per request)
    works(out)              whether perf can attach and count here

    python3 bench/syscalls.py MODEL [REQUESTS] [CONNS] [PAUSE_MS] [BYTES]

counts what bin/MODEL calls to serve REQUESTS (default 1000) GET /index.html of BYTES
(4096) over CONNS (1) keep-alive connections, one at a time, PAUSE_MS (0) apart, and
prints each call per request (scripts/syscount.sh). MODEL=asyncio counts
examples/asyncio_server.py. Counts do not depend on the machine's load: this is the
measurement to show on a busy machine. perf reads tracepoints as root (or with
kernel.perf_event_paranoid at -1), as the gate does.
"""

import errno
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

import http_client
from procs import StartError, StderrLines, children

EVENT = "raw_syscalls:sys_exit"
URING_EVENT = "io_uring:io_uring_submit_req"
RAW_RE = re.compile(r"^\s*(\S+)\s.*?raw_syscalls:sys_exit: NR (\d+) = (-?\d+)", re.M)
URING_RE = re.compile(r"^\s*(\S+)\s.*?io_uring:io_uring_submit_req:.*?opcode (\w+)", re.M)
UNISTD_PATHS = ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h")
TIMED_WAITS = {"poll", "ppoll", "select", "pselect6"}  # returning 0: "name:timeout", a sleep
URING_OP = "io_uring_op:"
SHELL = "sh"  # the shell record_argv(under_shell=True) runs the command under: not counted
_NAMES = {}


class CountError(Exception):
    """perf could not count, or recorded nothing usable."""


def syscall_names():
    """{number: name} from the kernel headers (x86-64: asm/unistd_64.h)."""
    if not _NAMES:
        for path in UNISTD_PATHS:
            try:
                with open(path) as f:
                    for line in f:
                        m = re.match(r"#define __NR_(\w+)\s+(\d+)", line)
                        if m:
                            _NAMES[int(m.group(2))] = m.group(1)
            except FileNotFoundError:
                continue
            if _NAMES:
                break
        else:
            raise CountError(f"no syscall table in {' or '.join(UNISTD_PATHS)}")
    return _NAMES


# ---- a whole run, by name: perf record ----------------------------------------------------

def record_argv(out_path, argv, under_shell=False, drop_eagain=False):
    """perf record of argv's run into out_path. Exits only: each names its call and its
    result, and half the events keep bin/busypoll's spinning within what perf can write.
    No build-ids and no BPF events: perf would spend a second on them at each start or
    exit. under_shell: perf record ends at the first SIGCHLD it gets, a child's stop
    included; a command that will be stopped (SIGSTOP) runs under a shell that waits for
    it (its stops do not wake the shell), whose own calls read_record() leaves out.
    drop_eagain: the kernel leaves out every call that failed with EAGAIN (a tracepoint
    filter), for a server that spins on them: bin/busypoll's batch workload made 2,750
    such reads per request, over a million events a run, and perf lost some on a loaded
    machine."""
    under = [SHELL, "-c", '"$@"; exit $?', SHELL] if under_shell else []
    only = ["--filter", f"ret != -{errno.EAGAIN}"] if drop_eagain else []
    return ["perf", "record", "-q", "-B", "-N", "--no-bpf-event", "-m", "1024",
            "-e", EVENT] + only + ["-e", URING_EVENT, "-o", out_path, "--"] + under + list(argv)


def read_record(path):
    """{name: calls} summed over every thread and process that perf recorded (a call
    counts when it returns: clone3 twice, exit never); calls that failed (EAGAIN and the
    like) count apart, as "name:failed", and a poll or select that returned 0 (nothing
    ready: it slept until its timeout) as "name:timeout". io_uring operations submitted
    count as "io_uring_op:OPCODE" (RECV, SENDMSG, ...): each passes the kernel's
    io_uring_submit_req tracepoint once, however many one io_uring_enter carries."""
    done = subprocess.run(["perf", "script", "-i", path, "-F", "comm,event,trace"],
                          capture_output=True, text=True)
    if done.returncode != 0 or "lost" in done.stderr.lower():
        raise CountError("perf script: " + (done.stderr.strip()[-200:] or "failed"))
    names = syscall_names()
    counts = {}
    for m in RAW_RE.finditer(done.stdout):
        comm, nr, result = m.groups()
        if comm == SHELL:
            continue
        name = names.get(int(nr), f"syscall_{nr}")
        if result.startswith("-"):
            name += ":failed"
        elif result == "0" and name in TIMED_WAITS:
            name += ":timeout"
        counts[name] = counts.get(name, 0) + 1
    if not counts:
        raise CountError("perf recorded no syscalls")
    for m in URING_RE.finditer(done.stdout):
        if m.group(1) != SHELL:
            name = URING_OP + m.group(2)
            counts[name] = counts.get(name, 0) + 1
    return counts


# ---- a window of a running server, in total: perf stat --------------------------------------

class Window:
    """perf stat -e raw_syscalls:sys_exit -p PIDS, counting only between enable() and
    disable() (perf's --control fd), so the count covers exactly a measured window."""

    def __init__(self, pids, out_path):
        self.out_path = out_path
        ctl_r, self.ctl_w = os.pipe()
        self.ack_r, ack_w = os.pipe()
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x,", "-e", EVENT, "-D", "-1",
             "--control", f"fd:{ctl_r},{ack_w}",
             "-p", ",".join(str(p) for p in pids), "-o", out_path],
            pass_fds=(ctl_r, ack_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(ctl_r)
        os.close(ack_w)

    def _command(self, word):
        """Sends enable/disable and waits for perf's ack (it comes once perf is attached)."""
        os.write(self.ctl_w, word.encode() + b"\n")
        ready, _, _ = select.select([self.ack_r], [], [], 5.0)
        if not ready:
            raise CountError(f"perf did not acknowledge '{word}'")
        os.read(self.ack_r, 64)

    def enable(self):
        self._command("enable")

    def disable(self):
        self._command("disable")

    def finish(self):
        """Stops perf and returns the count, or None if perf counted nothing usable."""
        try:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.ctl_w)
        os.close(self.ack_r)
        try:
            with open(self.out_path) as f:
                for line in f:
                    fields = line.strip().split(",")
                    if len(fields) > 2 and fields[2] == EVENT:
                        return int(fields[0]) if fields[0].isdigit() else None
        except OSError:
            pass
        return None


def works(out_path):
    """Can perf attach to a running process and count its syscalls here?"""
    try:
        busy = subprocess.Popen(["sh", "-c", "while :; do : </dev/null; done"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    except OSError:
        return False
    try:
        w = Window([busy.pid], out_path)
        w.enable()
        time.sleep(0.2)
        w.disable()
        return bool(w.finish())
    except (OSError, CountError):
        return False
    finally:
        busy.kill()
        busy.wait()


# ---- scripts/syscount.sh --------------------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def drive(port, requests, conns, pause_ms):
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    bufs = [b""] * conns
    for i in range(requests):
        time.sleep(pause_ms / 1000)
        s = socks[i % conns]
        s.sendall(http_client.get("/index.html", host="count"))
        _, bufs[i % conns] = http_client.read_response(s, bufs[i % conns])
    for s in socks:
        s.close()


def count_model(model, requests=1000, conns=1, pause_ms=0, size=4096):
    """{name: calls} over a whole run of bin/MODEL serving the requests (start-up, accepts
    and shutdown included), and the server's command line."""
    if model == "asyncio":
        # The interpreter itself, not a launcher on PATH (a pyenv shim is a shell script
        # whose execs would be counted as the server's).
        server = [sys.executable, os.path.join(REPO, "examples", "asyncio_server.py")]
    else:
        server = [os.path.join(REPO, "bin", model)]
        if not os.access(server[0], os.X_OK):
            raise CountError(f"no bin/{model}: run make first")
    with tempfile.TemporaryDirectory() as tmp:
        www = os.path.join(tmp, "www")
        os.mkdir(www)
        os.chmod(tmp, 0o755)
        with open(os.path.join(www, "index.html"), "wb") as f:
            f.write(b"x" * size)
        out = os.path.join(tmp, "perf.data")
        proc = subprocess.Popen(record_argv(out, server + ["--port", "0", "--root", www,
                                                           "--quiet"]),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        err = StderrLines(proc)
        try:
            port = int(err.wait_listening(10)[2])
            drive(port, requests, conns, pause_ms)
            for pid in children(proc.pid):  # the server, perf's child: perf ends with it
                os.kill(pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (StartError, OSError, http_client.BadResponse, subprocess.TimeoutExpired) as e:
            raise CountError(f"{e}: {err.tail()}") from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            err.finish()
        return read_record(out), server


def main(argv):
    usage = "usage: scripts/syscount.sh MODEL [REQUESTS] [CONNS] [PAUSE_MS] [BYTES]"
    if not 1 <= len(argv) <= 5 or not all(a.isdigit() for a in argv[1:]):
        print(usage, file=sys.stderr)
        return 2
    model = argv[0]
    requests, conns, pause_ms, size = ([int(a) for a in argv[1:]] + [1000, 1, 0, 4096][len(argv) - 1:])
    try:
        counts, server = count_model(model, requests, conns, pause_ms, size)
    except CountError as e:
        print(f"syscount: {e}", file=sys.stderr)
        return 1
    calls, failed, ops = {}, {}, {}
    for name, n in counts.items():
        if name.startswith(URING_OP):
            ops[name] = n
            continue
        call, _, result = name.partition(":")
        calls[call] = calls.get(call, 0) + n
        if result == "failed":
            failed[call] = failed.get(call, 0) + n
    print(f"# {' '.join(os.path.relpath(a, REPO) if a.startswith(REPO) else a for a in server)}"
          f": system calls per request, {requests} GET /index.html "
          f"({size} bytes) over {conns} connection(s), {pause_ms} ms apart")
    print(f"# (whole run: start-up, accepts and shutdown included; perf record -e {EVENT}; "
          "failed: of those, the calls that returned an error such as EAGAIN)")
    lines = [("total", sum(calls.values()), sum(failed.values()))]
    other = 0
    for call, n in calls.items():
        if n / requests >= 0.01:
            lines.append((call, n, failed.get(call, 0)))
        else:
            other += n
    lines += [(op, n, 0) for op, n in ops.items() if n / requests >= 0.01]
    for name, n, bad in sorted(lines, key=lambda line: -line[1]):
        print(f"{name:<22} {n / requests:9.3f}" + (f"   ({bad / requests:.3f} failed)" if bad else ""))
    if other:
        print(f"{'(all the others)':<22} {other / requests:9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
