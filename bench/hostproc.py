"""hostproc.py - the server's processes on the server's host, read through its prefix.

With BENCH_SERVER_HOST (a command prefix such as `ssh -tt user@host` or `ip netns exec NS`)
the server runs where the harness's own /proc and cgroups may not see it: over ssh the pid
the harness holds is the local ssh's. So every reading of the server goes through the
prefix, as one short command on the server's host:

    start     the server's command is wrapped in `sh -c` (WRAP) that prints its pid on
              that host ("c10k-pid: N"), moves itself into a counting cgroup made there
              (when the host has a writable one, as procs.CpuAccount here), then execs the
              server: every process the server forks later is counted
    edges     one `head` per window edge reads the cgroup's counter, or without one the
              server's /proc/P/stat and /proc/P/task/*/schedstat (its processes found
              before the window), with /proc/stat, /proc/pressure/cpu and the server's
              /proc/PID/status (VmRSS, Threads): nothing else of ours runs there
    between   the server's process tree, children, fds and liveness, one command each,
              outside any window

Syscalls are not counted there (perf is not attached through a prefix). Standard library.
"""

import re
import shlex

from c10kutil import parse_cpu_stat, parse_psi_total, parse_stat_fields, tree_under
from procs import CpuAccount, run_on

# Prints the pid the server will have on its host, joins the counting cgroup ($1, if
# any), then becomes the server ("$@" after the cgroup).
WRAP = 'echo "c10k-pid: $$"; if [ -n "$1" ]; then echo $$ > "$1/cgroup.procs"; fi; shift; ' \
    'exec "$@"'
PID_LINE = r"^c10k-pid: (\d+)"

# The counting cgroup on the server's host, found as procs.CpuAccount finds one here:
# cgroup v1 cpuacct, else a writable v2 root (cpu.stat needs no controller). Prints
# "KIND DIR" or nothing.
MAKE_CGROUP = """\
name=$1
if [ -r /sys/fs/cgroup/cpuacct/cpuacct.usage ] && [ -w /sys/fs/cgroup/cpuacct ]; then
    mkdir -p "/sys/fs/cgroup/cpuacct/$name" && echo "v1 /sys/fs/cgroup/cpuacct/$name"
    exit 0
fi
for root in /sys/fs/cgroup/unified /sys/fs/cgroup; do
    if [ -e "$root/cgroup.controllers" ] && [ -w "$root" ]; then
        mkdir -p "$root/$name" && [ -r "$root/$name/cpu.stat" ] && echo "v2 $root/$name"
        exit 0
    fi
done
"""
# Moves what is left back to the root group and removes the group (a process still
# exiting keeps it busy for a moment).
REMOVE_CGROUP = """\
d=$1; root=${d%/*}
for i in 1 2 3 4 5 6 7 8 9 10; do
    for p in $(cat "$d/cgroup.procs" 2>/dev/null); do echo "$p" > "$root/cgroup.procs"; done
    rmdir "$d" 2>/dev/null && exit 0
    [ -d "$d" ] || exit 0
    sleep 0.2
done
"""
HEAD_RE = re.compile(r"^==> (.*) <==$")
MAX_THREADS = 512  # as c10kutil.run_ns: more threads, and schedstat is not read


def parse_head(text):
    """{path: text} from `head -v` over several files."""
    out, cur = {}, None
    for line in text.replace("\r\n", "\n").split("\n"):
        m = HEAD_RE.match(line)
        if m:
            cur = m[1]
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return {k: "\n".join(v).strip() + "\n" for k, v in out.items()}


class ServerHost:
    """The server's host, reached through `prefix` (a list, as shlex splits
    BENCH_SERVER_HOST)."""

    def __init__(self, prefix, cgroup_name):
        self.prefix = list(prefix)
        self.kind = self.cgroup = None
        rc, out = run_on(self.prefix, ["sh", "-c", MAKE_CGROUP, "sh", cgroup_name])
        words = out.split()
        if rc == 0 and len(words) == 2:
            self.kind, self.cgroup = words

    def describe(self):
        """How the server's CPU is read (env.txt, summary.md)."""
        how = (f"its cgroup {self.kind} counter {self.cgroup} (every process it forks)"
               if self.cgroup else "per process, /proc/PID/stat and /proc/PID/task/*/schedstat"
               " of its processes (no writable cgroup there)")
        return (f"on the server host through its prefix `{shlex.join(self.prefix)}`, one "
                f"`head` at each window edge: {how}")

    def wrap(self):
        """The argv that goes before the server's own (see WRAP)."""
        return ["sh", "-c", WRAP, "c10k", self.cgroup or ""]

    def remove(self):
        if self.cgroup:
            run_on(self.prefix, ["sh", "-c", REMOVE_CGROUP, "sh", self.cgroup])
            self.cgroup = None

    # -- between windows ---------------------------------------------------------------

    def sh(self, script, timeout=30):
        return run_on(self.prefix, ["sh", "-c", script], timeout=timeout)

    def read(self, paths):
        """{path: text} of the files (globs allowed) there, by one `head`; missing ones
        are left out."""
        _, out = self.sh("exec head -v -c 1048576 -- " + " ".join(paths) + " 2>/dev/null")
        return parse_head(out)

    def put(self, path, text, dirs=()):
        """Writes a file there (a peer's configuration), making its directory and dirs;
        through `ip netns exec` it is the same file, written again."""
        q = shlex.quote(path)
        mk = " ".join(shlex.quote(d) for d in [path.rsplit("/", 1)[0], *dirs])
        # In the command line, not on stdin: through `ssh -tt` stdin is a terminal there.
        self.sh(f"mkdir -p {mk} && printf '%s' {shlex.quote(text)} > {q}.tmp && "
                f"mv {q}.tmp {q}")

    def tree(self, pid):
        """pid and every process under it there; [] if pid is gone."""
        parents = {}
        for path, text in self.read(["/proc/[0-9]*/stat"]).items():
            try:
                parents[int(path.split("/")[2])] = int(parse_stat_fields(text)[1])
            except (ValueError, IndexError):
                continue
        if pid not in parents:
            return []
        children = {}
        for p, pp in parents.items():
            children.setdefault(pp, []).append(p)
        return tree_under(children, pid)

    def children(self, pid):
        _, out = self.sh(f"cat /proc/{int(pid)}/task/{int(pid)}/children")
        return [int(k) for k in out.split() if k.isdigit()]

    def alive(self, pid):
        return self.sh(f"test -d /proc/{int(pid)}")[0] == 0

    def fds(self, pid):
        """Open fds of pid's tree there; None if it is gone."""
        tree = self.tree(pid)
        if not tree:
            return None
        dirs = " ".join(f"/proc/{p}/fd" for p in tree)
        rc, out = self.sh(f"find {dirs} -mindepth 1 -maxdepth 1 2>/dev/null | wc -l")
        return int(out.split()[0]) if out.split() and out.split()[0].isdigit() else None

    def edge_tree(self, pid):
        """What an edge needs found beforehand: the server's processes, unless the cgroup
        counts them."""
        return None if self.cgroup else (self.tree(pid) or [pid])

    # -- at a window's edge ------------------------------------------------------------

    def fill(self, snap, pid, tree):
        """Sets a measure.Snapshot's figures from one read there; raises OSError if the
        server is gone."""
        status = f"/proc/{pid}/status"
        paths = ["/proc/stat", "/proc/pressure/cpu", status]
        if self.cgroup:
            names = ("cpuacct.usage", "cpuacct.usage_user", "cpuacct.usage_sys") \
                if self.kind == "v1" else ("cpu.stat",)
            paths += [f"{self.cgroup}/{n}" for n in names]
        else:
            tree = tree or [pid]
            paths += [f"/proc/{p}/stat" for p in tree] + \
                [f"/proc/{p}/task/*/schedstat" for p in tree]
        files = self.read(paths)
        if status not in files:
            raise OSError(f"the server (pid {pid} on the server host) is gone")
        snap.stat = parse_cpu_stat(files.get("/proc/stat", ""))
        snap.psi = parse_psi_total(files.get("/proc/pressure/cpu", ""))
        s = dict(line.split(":", 1) for line in files[status].splitlines() if ":" in line)
        snap.rss_kib = int(s.get("VmRSS", "0 kB").split()[0])
        snap.threads = int(s.get("Threads", "0").split()[0])
        if self.cgroup:
            snap.acct = CpuAccount.parse(self.kind, lambda n: files[f"{self.cgroup}/{n}"])
            snap.run, snap.user_sys = None, (0, 0)
        else:
            snap.acct = None
            user = system = 0
            for p in tree:
                fields = parse_stat_fields(files.get(f"/proc/{p}/stat", ""))
                if len(fields) > 14:
                    user += int(fields[11]) + int(fields[13])
                    system += int(fields[12]) + int(fields[14])
            snap.user_sys = (user, system)
            sched = {path.split("/")[4]: text for path, text in files.items()
                     if path.endswith("/schedstat")}
            snap.run = (sum(int(t.split()[0]) for t in sched.values()), frozenset(sched)) \
                if sched and len(sched) <= MAX_THREADS else None
        snap.ticks = sum(snap.user_sys)
