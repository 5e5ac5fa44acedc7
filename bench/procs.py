"""procs.py - every process the bench starts, and the guarantee that it stops them all.

Each child runs in its own session (so a Ctrl-C at the terminal reaches only the harness,
which then stops the children in order) and under `setpriv --pdeathsig KILL` (so even a
harness killed with SIGKILL takes its direct children with it). `reap_all()` runs at exit,
on Ctrl-C, on SIGTERM/SIGHUP and after any exception: it signals each child's process
group (a server with its threads, nginx's master with its worker), then kills what is left.

    Server   one of our bin/* binaries, pinned to the server cores, --port 0
    Nginx    the baseline: config generated into the run directory, 1 worker
    Idlers   build/bench/idlers holding M idle keep-alive connections
    CpuHog   one BENCH_SLOW hook: a busy loop sharing the server's cores
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time

_children = []  # every Popen still possibly alive


def spawn(cmd, cores=None, stdout=None, stderr=None):
    """Starts cmd in its own session, pinned to cores, dying with the harness."""
    prefix = ["setpriv", "--pdeathsig", "KILL"]
    if cores:
        prefix += ["taskset", "-c", ",".join(map(str, cores))]
    p = subprocess.Popen(prefix + list(cmd), stdin=subprocess.DEVNULL, stdout=stdout,
                         stderr=stderr, start_new_session=True)
    _children.append(p)
    return p


def stop(p, sig=signal.SIGTERM, grace=5.0):
    """Signals p's process group, waits up to grace seconds, then kills the group."""
    if p is None:
        return None
    for s, wait_s in ((sig, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(p.pid, s)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    # The leader may be gone while others in its group linger (nginx's worker): kill them.
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if p in _children:
        _children.remove(p)
    return p.returncode


def reap_all():
    """Stops every child still registered; safe to call more than once."""
    for p in list(_children):
        stop(p, grace=2.0)


def install_cleanup():
    """Turns SIGTERM and SIGHUP into SystemExit so `finally` blocks and atexit run."""
    import atexit

    atexit.register(reap_all)

    def on_signal(sig, frame):
        raise SystemExit(128 + sig)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    # Ctrl-C raises KeyboardInterrupt even if our parent started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def free_port():
    """A port that was free a moment ago (nginx cannot pick its own like --port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(path, offset, pattern, proc, timeout, what):
    """Polls a log file from offset until a line matches pattern; returns the match."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        for line in text.splitlines():
            m = rx.search(line)
            if m:
                return m
        if proc.poll() is not None:
            raise StartError(f"{what} exited with status {proc.returncode}: "
                             f"{text.strip()[-300:] or 'no output'} (log: {path})")
        if time.monotonic() > deadline:
            raise StartError(f"{what}: no ready line after {timeout:.0f} s (log: {path})")
        time.sleep(0.02)


class StartError(Exception):
    pass


class Server:
    """One of our binaries: bin/MODEL --port 0, ready when it prints its listening line."""

    def __init__(self, binary, root, cores, log_dir, wrapper=()):
        self.binary = os.path.abspath(binary)
        self.wrapper = list(wrapper)  # e.g. strace, for the BENCH_SLOW check
        self.name = os.path.basename(binary)
        self.model = self.name
        self.root = root
        self.cores = cores
        self.log = os.path.join(log_dir, self.name + ".log")
        self.proc = None
        self.port = None

    def start(self):
        offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        with open(self.log, "ab") as log:
            # Big limits: 10,000 wrk connections plus 9,000 idlers, held for a whole sweep.
            cmd = [self.binary, "--addr", "127.0.0.1", "--port", "0", "--root", self.root,
                   "--max-conns", "20000", "--idle-timeout", "60", "--quiet"]
            self.proc = spawn(self.wrapper + cmd, cores=self.cores, stdout=log, stderr=log)
        m = wait_for_line(self.log, offset,
                          r"^listening on \[?[^\]]*\]?:(\d+) model=(\S+) root=", self.proc,
                          10.0, self.name)
        self.port = int(m.group(1))
        self.model = m.group(2)

    def pid(self):
        """The process whose cost is measured (setpriv and taskset exec, so it is ours;
        under a wrapper such as strace it is the wrapper's child)."""
        if not self.wrapper:
            return self.proc.pid
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        rc = stop(self.proc)
        self.proc = None
        return rc


NGINX_CONF = """\
# Generated by bench/procs.py for this run: the baseline every server is compared with.
# 1 worker, sendfile, no access log, keep-alive as long as ours (--idle-timeout 60) and
# effectively unlimited requests per connection; listen backlog as ours (4096).
{user}worker_processes 1;
daemon off;
master_process on;
pid nginx.pid;
error_log {prefix}/error.log warn;
worker_rlimit_nofile {nofile};

events {{
    worker_connections {worker_connections};
}}

http {{
    access_log off;
    sendfile on;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    types {{
        text/html html;
        text/plain txt;
        application/octet-stream bin;
    }}
    default_type application/octet-stream;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;

    server {{
        listen 127.0.0.1:{port} backlog=4096;
        server_name localhost;
        root {root};
        location / {{ }}
    }}
}}
"""


class Nginx:
    """nginx as the baseline; its worker (not the master) is what gets measured."""

    def __init__(self, binary, root, cores, run_dir):
        self.binary = binary
        self.name = "nginx"
        self.model = "epoll"  # what nginx uses on Linux
        self.root = root
        self.cores = cores
        self.prefix = os.path.join(run_dir, "nginx")
        self.conf = os.path.join(self.prefix, "nginx.conf")
        self.log = os.path.join(self.prefix, "stderr.log")
        self.proc = None
        self.port = None
        self.worker = None

    def write_conf(self, port):
        import resource

        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        # The hard limit: even root may not raise it in a container.
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if nofile == resource.RLIM_INFINITY or nofile > 1048576:
            nofile = 1048576
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(
                # As root the worker would become "nobody"; keep it able to read any root.
                user="user root root;\n" if os.geteuid() == 0 else "",
                prefix=self.prefix, nofile=nofile, worker_connections=nofile - 100,
                port=port, root=self.root))

    def start(self):
        for attempt in range(3):  # the free port can be taken before nginx binds it
            self.port = free_port()
            self.write_conf(self.port)
            offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
            with open(self.log, "ab") as log:
                self.proc = spawn([self.binary, "-c", self.conf, "-p", self.prefix + "/",
                                   "-e", os.path.join(self.prefix, "error.log")],
                                  cores=self.cores, stdout=log, stderr=log)
            try:
                self._wait_ready()
                return
            except StartError:
                stop(self.proc)
                with open(self.log, "rb") as f:
                    f.seek(offset)
                    if b"Address already in use" not in f.read() or attempt == 2:
                        raise

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"nginx exited with status {self.proc.returncode} "
                                 f"(see {self.log} and {self.prefix}/error.log)")
            self.worker = self._find_worker()
            if self.worker:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
                except OSError:
                    pass
            time.sleep(0.02)
        raise StartError("nginx: not accepting connections after 10 s")

    def _find_worker(self):
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                kids = f.read().split()
        except OSError:
            return None
        return int(kids[0]) if len(kids) == 1 else None

    def pid(self):
        return self.worker

    def alive(self):
        return self.proc is not None and self.proc.poll() is None and self.worker and \
            os.path.exists(f"/proc/{self.worker}")

    def stop(self):
        rc = stop(self.proc)  # SIGTERM to the group: nginx's fast shutdown
        self.proc = None
        self.worker = None
        return rc


class Idlers:
    """build/bench/idlers holding `count` idle keep-alive connections to a port."""

    def __init__(self, binary, port, count, cores, log):
        self.binary, self.port, self.count, self.cores, self.log = \
            binary, port, count, cores, log
        self.proc = None
        self.open = 0

    def start(self):
        offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        with open(self.log, "ab") as log:
            self.proc = spawn([self.binary, "--port", str(self.port), "--count",
                               str(self.count), "--path", "/index.html",
                               "--time-limit", "600"],
                              cores=self.cores, stdout=log, stderr=log)
        self.offset = offset
        m = wait_for_line(self.log, offset, r"^idlers: ready (\d+) idle .* \((\d+) failed\)",
                          self.proc, 60.0, "idlers")
        self.open = int(m.group(1))
        return self.open

    def stop(self):
        """Stops the idlers; returns how many connections were still open at the end."""
        stop(self.proc)
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            m = re.search(rb"idlers: exit (\d+) of", f.read())
        return int(m.group(1)) if m else None


class CpuHog:
    """BENCH_SLOW: a busy loop on the server's cores, busy `duty` percent of each 10 ms.

    It takes CPU time from the server exactly as a slower server would lose it, so the
    server looks about duty/2 percent slower (the scheduler splits a busy core in two)."""

    def __init__(self, cores, duty=100):
        self.cores, self.duty = cores, duty
        self.proc = None

    def start(self):
        code = ("import time\n"
                f"busy, period = {self.duty / 100.0} * 0.01, 0.01\n"
                "while True:\n"
                "    t = time.perf_counter()\n"
                "    while time.perf_counter() - t < busy: pass\n"
                "    if period > busy: time.sleep(period - busy)\n")
        self.proc = spawn([sys.executable, "-c", code], cores=self.cores,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        stop(self.proc, grace=1.0)
        self.proc = None
