"""procs.py - every process the bench starts, and the guarantee that it stops them all.

Each child runs in its own session (so a Ctrl-C at the terminal reaches only the harness,
which then stops the children in order) and under `setpriv --pdeathsig KILL` (so even a
harness killed with SIGKILL takes its direct children with it). `reap_all()` runs at exit,
on Ctrl-C, on SIGTERM/SIGHUP and after any exception: it signals each child's process
group (a server with its threads, nginx's master with its worker), then kills what is left.

    Server    one of our bin/* binaries, pinned to the server cores, --port 0 (--workers N)
    Nginx     peer and bench-ci's baseline: config generated into the run directory, N
              worker processes (1 unless the bench gives the server more cores)
    H2o       peer: h2o (Debian), N threads
    Lighttpd  peer: lighttpd (Debian), its epoll backend, N worker processes
    CpuCap    a cgroup CPU quota on the server (cgroup v1 cpu.cfs_quota_us or v2 cpu.max)
    Sysctls   listen-queue limits raised for the run (as root) and restored
    Idlers    build/bench/idlers holding M idle keep-alive connections, one per client core
              of every client host
    CpuHog    one BENCH_SLOW hook: a busy loop sharing the server's cores

Every start may go through a host prefix (BENCH_SERVER_HOST, BENCH_CLIENT_HOSTS): a command
that runs the rest elsewhere, such as `ip netns exec NS` or `ssh -tt user@host` (through()).
A server there is read there too (hostproc.py); a client there that must report when it
stops (wrk, idlers) is stopped by a line on its stdin (stoppable()), as ssh passes no signal.

What every other starter of a server shares (the gate, tests/, scripts/) is here too:

    StderrLines      a child's stderr pipe read up to the readiness line (LISTENING_RE,
                     IPv4 or IPv6), then drained by a thread, every line kept
    PipeReader       a pipe drained in the background into one text (wrk's, loadgen's)
    children(), threads(), describe_exit()   a started server's child processes, its
                     thread count, its exit status in words
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from c10kutil import LISTENING_RE, session_pids

_children = []  # every Popen still possibly alive
SERVER_MAX_CONNS = 20000


def spawn(cmd, cores=None, stdout=None, stderr=None, env=None, host=(),
          stdin=subprocess.DEVNULL, wrap=()):
    """Starts cmd in its own session, pinned to cores, dying with the harness; env: extra
    environment variables for it; host: a command prefix that runs it elsewhere (the
    pinning and the variables then apply there); wrap: what runs it there first
    (hostproc.WRAP, stoppable())."""
    inner = ["taskset", "-c", ",".join(map(str, cores))] if cores else []
    if env and host:
        inner = ["env"] + [f"{k}={v}" for k, v in env.items()] + inner
    p = subprocess.Popen(["setpriv", "--pdeathsig", "KILL"]
                         + through(host, list(wrap) + inner + list(cmd)),
                         stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True,
                         env=dict(os.environ, **env) if env and not host else None)
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


def stoppable(sig):
    """A `sh -c` prefix that runs the rest until a line (or the end) of its stdin arrives,
    then prints the rest's /proc/PID/stat ("c10k-stat: ...", for its CPU time) and sends it
    sig: a client on another host stops cleanly and reports (wrk its results, idlers what
    it still held), since ssh passes its stdin on, not signals. The rest keeps its signals
    (an `&` job of sh would ignore SIGINT)."""
    return ["sh", "-c", 'p=$$; exec 3<&0; (read l <&3; echo "c10k-stat: $(cat /proc/$p/stat)"; '
            f'kill -{sig} $p) & exec "$@" </dev/null 3<&-', "c10k"]


def stop_by_line(p, timeout=15.0):
    """Ends a stoppable() child: the line, then up to timeout for it to finish, then stop()."""
    try:
        p.stdin.write(b"stop\n")
        p.stdin.close()
    except OSError:
        pass  # gone already
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    return stop(p)


def placements(hosts, cores, k):
    """Where k client processes go: process i on client host i mod H (a prefix; none:
    here), on that host's client core i div H."""
    hosts = hosts or [[]]
    return [(list(hosts[i % len(hosts)]), cores[(i // len(hosts)) % len(cores)])
            for i in range(k)]


def through(host, argv):
    """argv run through a host prefix: ssh hands the remote shell one command line, so it
    gets argv quoted into one; other prefixes (ip netns exec, sudo) exec argv as it is."""
    host = list(host)
    if host and os.path.basename(host[0]) == "ssh":
        return host + [shlex.join(argv)]
    return host + list(argv)


def run_on(host, argv, timeout=30):
    """Runs argv through host to its end: (exit status, stdout); (None, "") if it could not."""
    try:
        p = subprocess.run(through(host, argv), stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
        return p.returncode, p.stdout
    except (OSError, subprocess.TimeoutExpired):
        return None, ""


def accepts(addr, port, host=()):
    """Whether addr:port accepts a connection, tried from where host runs (the harness
    may have no route into a lab's network)."""
    if not host:
        try:
            with socket.create_connection((addr, port), timeout=1):
                return True
        except OSError:
            return False
    probe = f"import socket; socket.create_connection(({addr!r}, {port}), timeout=1).close()"
    return run_on(host, ["python3", "-c", probe])[0] == 0


def free_port():
    """A port that was free a moment ago (nginx cannot pick its own like --port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(path, offset, pattern, proc, timeout, what):
    """Polls a log file from offset until a line matches pattern; returns the match."""
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
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


def remote_pid(log, offset, proc, what):
    """The pid on the server's host that hostproc.WRAP printed into the log."""
    from hostproc import PID_LINE

    return int(wait_for_line(log, offset, PID_LINE, proc, 10.0, what).group(1))


class Server:
    """One of our binaries: bin/MODEL --port 0, ready when it prints its listening line."""

    def __init__(self, binary, root, cores, log_dir, wrapper=(), name=None, env=None,
                 workers=None, addr="127.0.0.1", host=(), remote=None):
        self.binary = os.path.abspath(binary)
        self.workers = workers  # --workers N; None: the model's default
        self.addr, self.host = addr, list(host)
        self.remote = remote  # hostproc.ServerHost: the server's host, read through host
        self.rpid = None  # the server's pid there
        self.wrapper = list(wrapper)  # e.g. strace, for the BENCH_SLOW check
        self.env = env  # e.g. an LD_PRELOAD that makes it slower (a variant, bench.py)
        self.name = name or os.path.basename(binary)
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
            cmd = [self.binary, "--addr", self.addr, "--port", "0", "--root", self.root,
                   "--max-conns", str(SERVER_MAX_CONNS), "--idle-timeout", "60", "--quiet"]
            if self.workers:
                cmd += ["--workers", str(self.workers)]
            self.proc = spawn(self.wrapper + cmd, cores=self.cores, stdout=log, stderr=log,
                              env=self.env, host=self.host,
                              wrap=self.remote.wrap() if self.remote else ())
        if self.remote:
            self.rpid = remote_pid(self.log, offset, self.proc, self.name)
        m = wait_for_line(self.log, offset, LISTENING_RE, self.proc, 10.0, self.name)
        self.port = int(m.group(2))
        self.model = m.group(3)

    def pid(self):
        """The process whose cost is measured (setpriv and taskset exec, so it is ours;
        under a wrapper such as strace it is the wrapper's child); through a server host,
        its pid there."""
        if self.remote:
            return self.remote.children(self.rpid)[0] if self.wrapper else self.rpid
        if not self.wrapper:
            return self.proc.pid
        return children(self.proc.pid)[0]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        rc = stop(self.proc)
        self.proc = None
        return rc


# The peers. Each runs as many workers as ours (one per server core; one here) on the server
# cores, serves the same root with keep-alive as long as ours (60 s) and effectively
# unlimited requests per connection, without an access log, and is configured as its own
# documentation advises for static files.

NGINX_CONF = """\
# Generated by bench/procs.py for this run. {workers} worker(s), sendfile, no access log,
# keep-alive as long as ours (--idle-timeout 60), effectively unlimited requests per
# connection, listen backlog as ours (4096).{tuned_note}
{user}worker_processes {workers};
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
{tuned}    keepalive_timeout 60s;
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
        listen {addr}:{port} backlog=4096;
        server_name localhost;
        root {root};
        location / {{ }}
    }}
}}
"""

# What nginx's documentation advises for serving static files (ngx_http_core_module:
# open_file_cache, tcp_nopush with sendfile); our servers cache open files too.
NGINX_TUNED = """\
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_errors on;
"""

H2O_CONF = """\
# Generated by bench/procs.py for this run: h2o with {workers} worker thread(s), no access
# log, keep-alive as long as ours (60 s), connections up to our --max-conns.
{user}num-threads: {workers}
max-connections: {max_conns}
http1-request-timeout: 60
pid-file: {prefix}/h2o.pid
error-log: {prefix}/error.log
listen:
  host: {addr}
  port: {port}
hosts:
  default:
    paths:
      /:
        file.dir: {root}
"""

LIGHTTPD_CONF = """\
# Generated by bench/procs.py for this run: lighttpd on its epoll backend with sendfile,
# no access log, keep-alive as long as ours (60 s). max-keep-alive-requests must be large:
# 0 would turn keep-alive off. lighttpd allows at most max-fds / 2 connections.
server.document-root = "{root}"
server.bind = "{addr}"
server.port = {port}
server.event-handler = "linux-sysepoll"
server.network-backend = "sendfile"
server.max-fds = {nofile}
server.max-connections = {max_conns}
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 60
server.errorlog = "{prefix}/error.log"
server.pid-file = "{prefix}/lighttpd.pid"
{max_worker}index-file.names = ( "index.html" )
mimetype.assign = ( ".html" => "text/html", ".txt" => "text/plain",
                    ".bin" => "application/octet-stream" )
"""


def nofile_hard():
    """The hard fd limit (even root may not raise it in a container), at most 2^20."""
    import resource

    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1048576 if nofile == resource.RLIM_INFINITY or nofile > 1048576 else nofile


class Peer:
    """A server that is not ours, started from a config generated into the run directory
    on a free port, ready when it accepts a connection. Subclasses give the config and the
    process that does the work (whose cost is measured)."""

    name = model = package = None

    def __init__(self, binary, root, cores, run_dir, workers=None, name=None,
                 addr="127.0.0.1", host=(), remote=None):
        self.binary = binary
        self.root = root
        self.cores = cores
        self.workers = workers or 1
        self.name = name or self.name  # NAME-wN in a BENCH_WORKERS sweep
        self.addr, self.host = addr, list(host)
        self.remote, self.rpid = remote, None  # as Server's
        self.prefix = os.path.join(run_dir, self.name)
        self.log = os.path.join(self.prefix, "stderr.log")
        self.conf = os.path.join(self.prefix, self.conf_name)
        self.proc = None
        self.port = None
        self.worker = None

    def start(self):
        os.makedirs(self.prefix, exist_ok=True)
        for attempt in range(3):  # the free port can be taken before the peer binds it
            self.port = free_port()
            text = self.config(self.port)
            with open(self.conf, "w") as f:
                f.write(text)
            if self.remote:  # the same path there
                self.remote.put(self.conf, text, dirs=[os.path.join(self.prefix, "tmp")])
            offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
            with open(self.log, "ab") as log:
                self.proc = spawn(self.command(), cores=self.cores, stdout=log, stderr=log,
                                  host=self.host,
                                  wrap=self.remote.wrap() if self.remote else ())
            try:
                if self.remote:
                    self.rpid = remote_pid(self.log, offset, self.proc, self.name)
                self._wait_ready()
                return
            except StartError:
                stop(self.proc)
                with open(self.log, "rb") as f:
                    f.seek(offset)
                    text = f.read()
                if b"in use" not in text or attempt == 2:
                    raise

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"{self.name} exited with status {self.proc.returncode} "
                                 f"(see {self.log} and {self.prefix}/error.log)")
            self.worker = self.find_worker()
            if self.worker and accepts(self.addr, self.port, self.host):
                return
            time.sleep(0.02)
        raise StartError(f"{self.name}: not accepting connections after 10 s")

    def find_worker(self):
        return self.first_pid()

    def first_pid(self):
        """The peer's first process (its pid on the server's host, through one)."""
        return self.rpid if self.remote else self.proc.pid

    def children(self):
        if self.remote:
            return self.remote.children(self.rpid)
        return children(self.proc.pid)

    def pid(self):
        return self.worker

    def alive(self):
        return self.proc is not None and self.proc.poll() is None and self.worker and \
            (self.remote.alive(self.worker) if self.remote else
             os.path.exists(f"/proc/{self.worker}"))

    def stop(self):
        rc = stop(self.proc)  # SIGTERM to the group: each peer's fast shutdown
        self.proc = None
        self.worker = None
        return rc

    def version(self):
        return "unknown"


class Nginx(Peer):
    """nginx: its worker (not the master) is what gets measured. tuned=False is the plain
    configuration bench-ci's baseline was measured with (no open_file_cache, no tcp_nopush)."""

    name, model, package, conf_name = "nginx", "epoll", "nginx-light", "nginx.conf"

    def __init__(self, binary, root, cores, run_dir, tuned=True, **kw):
        super().__init__(binary, root, cores, run_dir, **kw)
        self.tuned = tuned

    def config(self, port):
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        nofile = nofile_hard()
        return NGINX_CONF.format(
            tuned_note=" Tuned for static files as nginx's documentation advises."
            if self.tuned else " Plain: no open_file_cache (bench-ci's baseline).",
            tuned=NGINX_TUNED if self.tuned else "",
            # As root the worker would become "nobody"; keep it able to read any root.
            user="user root root;\n" if os.geteuid() == 0 else "",
            prefix=self.prefix, nofile=nofile, worker_connections=nofile - 100,
            port=port, root=self.root, workers=self.workers, addr=self.addr)

    def command(self):
        return [self.binary, "-c", self.conf, "-p", self.prefix + "/",
                "-e", os.path.join(self.prefix, "error.log")]

    def find_worker(self):
        """The one worker; with several, the master (its tree holds them all, and the
        cgroup, when there is one, every process), once all of them are up."""
        kids = self.children()
        if len(kids) != self.workers:
            return None
        return kids[0] if self.workers == 1 else self.first_pid()


class H2o(Peer):
    """h2o: one process; num-threads 1 gives one event-loop thread. (Its only child is a
    perl helper that annotates crash backtraces and stays idle.)"""

    name, model, package, conf_name = "h2o", "epoll", "h2o", "h2o.conf"

    def config(self, port):
        return H2O_CONF.format(
            # Started as root, h2o refuses to run without being told which user to become.
            user="user: root\n" if os.geteuid() == 0 else "",
            max_conns=SERVER_MAX_CONNS, prefix=self.prefix, port=port, root=self.root,
            workers=self.workers, addr=self.addr)

    def command(self):
        return [self.binary, "-c", self.conf]


class Lighttpd(Peer):
    """lighttpd: one process (-D: in the foreground)."""

    name, model, package, conf_name = "lighttpd", "epoll", "lighttpd", "lighttpd.conf"

    def config(self, port):
        nofile = nofile_hard()
        # server.max-worker forks that many processes under the first (measured with its
        # tree); left out for one, lighttpd's own default.
        return LIGHTTPD_CONF.format(root=self.root, port=port, nofile=nofile,
                                    max_conns=min(SERVER_MAX_CONNS, nofile // 2),
                                    prefix=self.prefix, addr=self.addr,
                                    max_worker=f"server.max-worker = {self.workers}\n"
                                    if self.workers > 1 else "")

    def command(self):
        return [self.binary, "-D", "-f", self.conf]


PEERS = {"nginx": (Nginx, "/usr/sbin/nginx"), "h2o": (H2o, "/usr/bin/h2o"),
         "lighttpd": (Lighttpd, "/usr/sbin/lighttpd")}


class _Cgroup:
    """What both cgroups below share: a directory under a hierarchy's root, the server's
    session moved in, and moved out again at the end."""

    def _write(self, name, value):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(f"{value}\n")

    def add_session(self, sid):
        """Moves every process of session sid (the server's children too) into the group;
        their threads, and what they start later, follow."""
        for pid in session_pids(sid):
            try:
                self._write("cgroup.procs", pid)
            except OSError:
                pass  # it exited meanwhile

    def remove(self, wait_s=2.0):
        """Moves what is left back to the root group and removes the group; a process that
        was killed but has not finished exiting keeps the group busy for a moment."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                with open(os.path.join(self.dir, "cgroup.procs")) as f:
                    left = f.read().split()
                for pid in left:
                    try:
                        with open(os.path.join(self.root, "cgroup.procs"), "w") as f:
                            f.write(pid + "\n")
                    except OSError:
                        pass
                os.rmdir(self.dir)
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)


class CpuAccount(_Cgroup):
    """A cgroup that only counts: the server's processes are moved in when it starts, and
    what they and every child they fork later spend on a CPU, exited children included,
    is one counter in nanoseconds, read at a window's two edges. Per-process counters
    cannot do this for a server that forks: /proc/PID/stat rounds each process down to
    10 ms ticks (a hundred children serving 100 requests a second each read as nothing),
    and a child that exits takes its schedstat with it. cgroup v1 cpuacct (cpuacct.usage,
    usage_user, usage_sys) where it is mounted, else cgroup v2 (cpu.stat: usage_usec,
    user_usec, system_usec, which every v2 group has, no controller needed)."""

    V1 = "/sys/fs/cgroup/cpuacct"
    V2_ROOTS = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")

    def __init__(self, name):
        self.kind = self.root = None
        if os.access(os.path.join(self.V1, "cpuacct.usage"), os.R_OK) and \
                os.access(self.V1, os.W_OK):
            self.kind, self.root = "v1", self.V1
        else:
            for root in self.V2_ROOTS:
                if os.path.exists(os.path.join(root, "cgroup.controllers")) and \
                        os.access(root, os.W_OK):
                    self.kind, self.root = "v2", root
                    break
        if not self.kind:
            raise OSError("no writable cgroup to count the server's CPU in (v1 cpuacct or v2)")
        self.dir = os.path.join(self.root, name)
        os.makedirs(self.dir, exist_ok=True)
        if self.usage() is None:
            os.rmdir(self.dir)
            raise OSError(f"{self.dir}: no CPU usage counter")

    def _read(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read()

    def usage(self):
        """(total, user, system) ns of CPU spent in the group so far, or None."""
        return self.parse(self.kind, self._read)

    @staticmethod
    def parse(kind, read):
        """usage() of a group of that kind, whose file NAME's text is read(NAME) (here, or
        what hostproc read on the server's host)."""
        try:
            if kind == "v1":
                return tuple(int(read(f"cpuacct.{k}"))
                             for k in ("usage", "usage_user", "usage_sys"))
            stat = dict(line.split() for line in read("cpu.stat").splitlines())
            return tuple(int(stat[k]) * 1000 for k in ("usage_usec", "user_usec",
                                                       "system_usec"))
        except (OSError, ValueError, KeyError):
            return None


class CpuCap(_Cgroup):
    """A CPU quota for the server: `quota_us` of CPU time per `period_us`, enforced by the
    kernel's CFS bandwidth control on every thread of every process moved into the group.
    cgroup v1 (cpu.cfs_quota_us, cpu.cfs_period_us) where the cpu controller is mounted
    as v1, else cgroup v2 (cpu.max). The quota must be at least 1,000 µs."""

    V1 = "/sys/fs/cgroup/cpu"
    V2_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")

    def __init__(self, name, fraction, period_us=2500):
        self.quota_us = max(1000, int(round(fraction * period_us)))
        self.period_us = max(period_us, self.quota_us)
        self.fraction = self.quota_us / self.period_us
        self.kind, self.root = self.detect()
        if not self.kind:
            raise OSError("no writable cgroup cpu controller (v1 cpu.cfs_quota_us or v2 "
                          "cpu.max)")
        self.dir = os.path.join(self.root, name)
        os.makedirs(self.dir, exist_ok=True)
        if self.kind == "v1":
            self._write("cpu.cfs_period_us", self.period_us)
            self._write("cpu.cfs_quota_us", self.quota_us)
        else:
            self._write("cpu.max", f"{self.quota_us} {self.period_us}")

    @classmethod
    def detect(cls):
        if os.access(os.path.join(cls.V1, "cpu.cfs_quota_us"), os.W_OK):
            return "v1", cls.V1
        for root in cls.V2_ROOTS:
            try:
                with open(os.path.join(root, "cgroup.controllers")) as f:
                    if "cpu" not in f.read().split():
                        continue
                with open(os.path.join(root, "cgroup.subtree_control"), "w") as f:
                    f.write("+cpu")
                return "v2", root
            except OSError:
                continue
        return None, None

    def describe(self):
        where = "cpu.cfs_quota_us" if self.kind == "v1" else "cpu.max"
        return (f"{self.quota_us} µs per {self.period_us} µs = {self.fraction:.0%} of a core "
                f"(cgroup {self.kind} {where})")

    def stat(self):
        """(periods throttled, ns held back) so far, from cpu.stat, or (None, None)."""
        nr, ns = None, None
        try:
            with open(os.path.join(self.dir, "cpu.stat")) as f:
                for line in f:
                    k, v = line.split()
                    if k == "nr_throttled":
                        nr = int(v)
                    elif k == "throttled_time":  # v1, ns
                        ns = int(v)
                    elif k == "throttled_usec":  # v2
                        ns = int(v) * 1000
        except (OSError, ValueError):
            pass
        return nr, ns



class Sysctls:
    """Raises the listen-queue limits for the run when it may (root) and restores them:
    10,000 connections opened even at a paced rate can overflow a SYN queue of 2,048."""

    WANT = {"net/core/somaxconn": 16384, "net/ipv4/tcp_max_syn_backlog": 16384}

    def __init__(self):
        self.saved = {}
        self.changed = {}

    def raise_all(self):
        for key, want in self.WANT.items():
            path = "/proc/sys/" + key
            try:
                with open(path) as f:
                    old = int(f.read().split()[0])
                if old >= want:
                    continue
                with open(path, "w") as f:
                    f.write(f"{want}\n")
            except (OSError, ValueError):
                continue
            self.saved[key] = old
            self.changed[key.replace("/", ".")] = (old, want)
        return self.changed

    def restore(self):
        for key, old in self.saved.items():
            try:
                with open("/proc/sys/" + key, "w") as f:
                    f.write(f"{old}\n")
            except OSError:
                pass
        self.saved = {}


class Idlers:
    """build/bench/idlers holding `count` idle keep-alive connections to addr:port: one
    process per place (a client host prefix and its cores, placements()), each with its
    share, its own log (LOG, or LOG-N.log for several), stopped by a line on its stdin
    (stoppable()), so that it reports what it still held, also from another host."""

    def __init__(self, binary, port, count, cores, log, addr="127.0.0.1", places=None):
        self.binary, self.port, self.count, self.addr = binary, port, count, addr
        places = places or [((), cores)]
        self.places = places[:max(1, min(len(places), count))]
        k = len(self.places)
        self.logs = [log] if k == 1 else [f"{log[:-4]}-{i + 1}.log" for i in range(k)]
        self.procs, self.offsets = [], []
        self.open = 0

    def start(self):
        k = len(self.places)
        for i, ((host, cores), log_path) in enumerate(zip(self.places, self.logs)):
            share = self.count // k + (i < self.count % k)
            self.offsets.append(os.path.getsize(log_path) if os.path.exists(log_path) else 0)
            with open(log_path, "ab") as log:
                self.procs.append(spawn(
                    [self.binary, "--addr", self.addr, "--port", str(self.port), "--count",
                     str(share), "--path", "/index.html", "--time-limit", "600"],
                    cores=cores, stdout=log, stderr=log, host=host, stdin=subprocess.PIPE,
                    wrap=stoppable("TERM")))
        for p, log_path, offset in zip(self.procs, self.logs, self.offsets):
            m = wait_for_line(log_path, offset, r"^idlers: ready (\d+) idle .* \((\d+) failed\)",
                              p, 60.0, "idlers")
            self.open += int(m.group(1))
        return self.open

    def stop(self):
        """Stops the idlers; returns how many connections were still open at the end (None
        if one did not say)."""
        kept = 0
        for p, log_path, offset in zip(self.procs, self.logs, self.offsets):
            stop_by_line(p, timeout=5.0)
            with open(log_path, "rb") as f:
                f.seek(offset)
                m = re.search(rb"idlers: exit (\d+) of", f.read())
            kept = kept + int(m.group(1)) if m and kept is not None else None
        return kept


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


# ---- what the gate, tests/ and scripts/ share with the bench ---------------------------------

class StderrLines:
    """A child's stderr pipe, read until its readiness line and from then on drained by a
    thread, so the child never blocks on a full pipe; every line is kept in .lines."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = []
        self.listening = None  # the readiness line's match
        self._drainer = None

    def wait_listening(self, timeout):
        """The readiness line's match (LISTENING_RE: addr, port, model, root); StartError
        if the child exits or says nothing of the kind within timeout seconds."""
        import select

        fd = self.proc.stderr.fileno()
        pending = b""
        end = time.monotonic() + timeout
        while self.listening is None:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise StartError(f"no listening line on stderr within {timeout:g} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                try:
                    self.proc.wait(1)
                except subprocess.TimeoutExpired:
                    pass
                raise StartError(f"{describe_exit(self.proc.poll())} before listening")
            pending += chunk
            while b"\n" in pending and self.listening is None:
                line, pending = pending.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                self.lines.append(text)
                self.listening = LISTENING_RE.match(text)
        self._drainer = threading.Thread(target=self._drain, args=(fd, pending), daemon=True)
        self._drainer.start()
        return self.listening

    def _drain(self, fd, pending):
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            self.lines.extend(line.decode(errors="replace").rstrip("\r") for line in lines)
        if pending:
            self.lines.append(pending.decode(errors="replace"))

    def finish(self, timeout=2):
        """Waits for the last lines of a child that has exited, and closes the pipe."""
        if self._drainer is not None:
            self._drainer.join(timeout)
        self.proc.stderr.close()

    def tail(self, chars=200):
        return "\n".join(self.lines).strip()[-chars:]


class PipeReader(threading.Thread):
    """Drains a pipe in the background, so a chatty child never blocks on a full pipe."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self.pipe, self.chunks = pipe, []
        self.start()

    def run(self):
        for chunk in iter(lambda: self.pipe.read(4096), b""):
            self.chunks.append(chunk)

    def text(self):
        self.join(timeout=5)
        return b"".join(self.chunks).decode(errors="replace")


def children(pid):
    """The processes pid has started (every thread's), from /proc; [] if it is gone."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def threads(pid):
    """The number of pid's threads; 0 if it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def describe_exit(code):
    """A Popen returncode in words."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
