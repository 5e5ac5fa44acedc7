"""c10kutil.py - what the bench harness, scripts/ and tests/ share, in one place.

    LISTENING_RE, parse_listening()   the server's readiness line (SPEC.md section 2)
    models(), model_rank(), ...       the model table, servers/models.tsv, and its order
    read_csv(), append_csv()          the run's CSVs, with declared column types
    median(), medians()               per-group medians, with min and max of every metric
    cpu_ticks(), proc_*()             what the kernel says about a server and the processes
                                      under it (/proc/PID/...)
    cpu_stat(), psi_some_us()         per-CPU time (softirq, steal) and CPU pressure

Standard library only; importable from tests/ with bench/ on sys.path.
"""

import csv
import functools
import os
import re
import shlex
import statistics
from collections import defaultdict

CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---- the readiness line ------------------------------------------------------------------

# "listening on 127.0.0.1:8080 model=epoll root=/srv/www" (an IPv6 address in brackets).
LISTENING_RE = re.compile(r"^listening on (\S+):(\d+) model=(\S+) root=(.+)$")
SERVED_RE = re.compile(r"^served \d+ requests on \d+ connections$")


def parse_listening(line):
    """(addr, port, model, root) from a readiness line, or None if it is not one."""
    m = LISTENING_RE.match(line.rstrip("\r\n"))
    if not m:
        return None
    return m[1].strip("[]"), int(m[2]), m[3], m[4]


# ---- the models: servers/models.tsv --------------------------------------------------------

MODELS_TSV = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "servers", "models.tsv")
MODEL_COLUMNS = ("name", "objects", "libs", "sanitizers", "traits", "colour", "point",
                 "valgrind_skip")
LIST_COLUMNS = ("objects", "libs", "sanitizers", "traits")


@functools.lru_cache(maxsize=None)
def models(path=MODELS_TSV):
    """{name: {column: value}} from the model table, in its rows' order (the order every
    tool lists the models in; the file's header says what each column holds): "-" is
    empty (None, or () in the list columns, which are tuples); point is an int."""
    table = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            cells = re.split(r"\t+", line)
            if len(cells) != len(MODEL_COLUMNS):
                raise ValueError(f"{path}:{n}: {len(cells)} tab-separated cells, "
                                 f"not {len(MODEL_COLUMNS)} ({', '.join(MODEL_COLUMNS)})")
            row = dict(zip(MODEL_COLUMNS, (None if c == "-" else c for c in cells)))
            for col in LIST_COLUMNS:
                row[col] = tuple(row[col].split(",")) if row[col] else ()
            row["point"] = int(row["point"])
            table[row["name"]] = row
    return table


def model_rank(name):
    """Sort key for server names: the table's order, then (an executable in bin/ without
    a row: a user's own experiment) by name, after every model."""
    order = list(models())
    return (order.index(name) if name in order else len(order), name)


def option_variant(name):
    """NAME+OPTION, a server of ours run with one of its own options (the busy-polling
    ones: epoll+busy-poll=50, uring+sqpoll), measured as a server of its own:
    ("epoll", ["--busy-poll", "50"]). A plain name: (name, [])."""
    base, plus, opt = name.partition("+")
    if not plus:
        return name, []
    flag, eq, value = opt.partition("=")
    return base, ["--" + flag] + ([value] if eq else [])


def option_variant_binary(name, binary, directory):
    """An executable named NAME in directory that execs binary with the variant's options
    before the ones it is given (so it is the server's process: its pid, its CPU)."""
    _, args = option_variant(name)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in [binary] + args)
                + ' "$@"\n')
    os.chmod(path, 0o755)
    return path


def model_traits(name):
    """The traits column of name's row; () for a name without one (a peer, or a binary
    without a row)."""
    row = models().get(name)
    return row["traits"] if row else ()


def models_with(trait):
    """The models whose row has trait, in the table's order."""
    return [name for name, row in models().items() if trait in row["traits"]]


# ---- CSV -----------------------------------------------------------------------------------

# Columns that hold text or whole numbers; every other column is a float. Declared, not
# guessed from the cell: "57000" in a rate column is still a rate.
TEXT_COLUMNS = {"server", "model", "file", "status", "run", "mode", "kind", "note", "phase"}
INT_COLUMNS = {"conns", "rep", "idle", "idle_open", "idle_kept", "errors", "non2xx",
               "rss_kib", "threads", "requests", "capped", "client_bound", "wrk_bound",
               "close", "late_sends", "setup_failed", "fixed", "steady", "primed",
               "nr_throttled", "instances", "workers"}


def convert(column, cell):
    if cell is None or cell == "":
        return None
    if column in TEXT_COLUMNS:
        return cell
    try:
        return int(cell) if column in INT_COLUMNS else float(cell)
    except ValueError:
        return cell  # a column this module does not know: kept as written


def read_csv(path):
    """The rows of a CSV the bench wrote, as dicts of typed values (None for empty)."""
    with open(path, newline="") as f:
        return [{k: convert(k, v) for k, v in r.items()} for r in csv.DictReader(f)]


# Digits after the point per column when written; other columns are written as they are.
DECIMALS = {"rps": 1, "mbps": 2, "p50_ms": 3, "p90_ms": 3, "p99_ms": 3, "p999_ms": 3,
            "max_ms": 3, "cpu_us_per_req": 3, "syscalls_per_req": 3, "ctxsw_per_req": 4,
            "offered_rps": 1, "achieved_rps": 1, "softirq_us_per_req": 3, "client_cpu": 3,
            "cpu_quota": 3, "cpu_pressure": 3, "server_util": 3, "wrk_cpu": 3,
            "behind_ms": 3, "window_s": 3, "steal": 4, "cpu_user_us_per_req": 3,
            "cpu_sys_us_per_req": 3, "late_p999_ms": 3, "throttled_ms": 3, "fraction": 3,
            "edge_late_ms": 1,
            "ceiling": 1}


def fmt_cell(key, v):
    if v is None:
        return ""
    if key in DECIMALS and isinstance(v, (int, float)):
        return f"{v:.{DECIMALS[key]}f}"
    return str(v)


def append_csv(path, header, row):
    """Appends one row, writing the header first if the file is new (so an interrupted
    run still leaves every finished measurement on disk)."""
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(header)
        w.writerow([fmt_cell(k, row.get(k)) for k in header])


# ---- medians -------------------------------------------------------------------------------

def median(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def group(rows, keys):
    """{(row[k] for k in keys): [rows]} in first-seen order."""
    out = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def medians(rows, keys, metrics, sums=()):
    """Per group: the median of every metric, with its min and max (as METRIC_min and
    METRIC_max, for error bars), the number of rows (reps) and the totals of `sums`."""
    out = {}
    for key, rs in group(rows, keys).items():
        m = {"reps": len(rs)}
        for k in metrics:
            vals = [r.get(k) for r in rs if r.get(k) is not None]
            m[k] = statistics.median(vals) if vals else None
            m[k + "_min"] = min(vals) if vals else None
            m[k + "_max"] = max(vals) if vals else None
        for k in sums:
            m[k] = sum(r.get(k) or 0 for r in rs)
        out[key] = m
    return out


# ---- /proc: one server, with the processes under it -------------------------------------
# bin/fork's children, bin/prefork's processes and the workers of --workers are part of
# the server: every reader below sums over pid and the processes under it.

def parse_stat_fields(text):
    """The fields of a /proc/PID/stat line after its "(comm)": [0] state, [1] ppid, [11]
    utime, [12] stime, [13] cutime, [14] cstime (proc(5) numbers them from 3); [] if none."""
    return text.rsplit(")", 1)[1].split() if ")" in text else []


def process_tree(pid):
    """pid and every process under it, found through the parent pid in /proc/*/stat;
    [] if pid is gone."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        children.setdefault(ppid, []).append(int(name))
    if not os.path.exists(f"/proc/{pid}"):
        return []
    return tree_under(children, pid)


def tree_under(children, pid):
    """pid and every process under it, from {ppid: [pids]}."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def cpu_ticks(pid):
    """User + system CPU of pid and the processes under it, in clock ticks: every thread,
    exited ones too, and the children each has reaped (cutime, cstime)."""
    return sum(cpu_ticks_split(pid))


def cpu_ticks_split(pid, tree=None):
    """(user, system) CPU of pid and the processes under it, in clock ticks, as cpu_ticks;
    tree as for run_ns()."""
    user = system = 0
    for p in tree or process_tree(pid) or [pid]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            if p == pid:
                raise
            continue  # a child that exited meanwhile: its reaper's cutime has it
        user += int(fields[11]) + int(fields[13])  # utime, cutime
        system += int(fields[12]) + int(fields[14])  # stime, cstime
    return user, system


def run_ns(pid, max_threads=512, tree=None):
    """(ns on a CPU summed over the live threads of pid's tree, their tids) from
    /proc/P/task/*/schedstat: nanosecond resolution where /proc/P/stat counts 10 ms
    ticks, but blind to threads that have exited; None for more than max_threads threads
    (reading thousands of files would itself take a while). tree: process_tree(pid), if
    the caller has it (walking /proc takes tens of ms on a busy machine)."""
    try:
        tasks = [(p, t) for p in tree or process_tree(pid)
                 for t in os.listdir(f"/proc/{p}/task")]
        if not tasks or len(tasks) > max_threads:
            return None
        total = 0
        for p, tid in tasks:
            with open(f"/proc/{p}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total, frozenset(t for _, t in tasks)


def cpu_seconds(pid):
    return cpu_ticks(pid) / CLK_TCK


def read_status(path, keys):
    """{key: first number} for the given keys of a /proc status file."""
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = int(v.split()[0])
    return out


def _status_sum(pid, field, name="status"):
    """The sum of /proc/P/<name>'s field over pid's tree; None if pid is gone."""
    total = None
    for p in process_tree(pid):
        try:
            total = (total or 0) + read_status(f"/proc/{p}/{name}", (field,)).get(field, 0)
        except OSError:
            pass  # exited meanwhile
    return total


def proc_rss_kib(pid):
    return _status_sum(pid, "VmRSS")


def proc_pss_kib(pid):
    """Pss summed over pid's tree: shared pages (fork's copy-on-write ones) counted once."""
    return _status_sum(pid, "Pss", "smaps_rollup")


def proc_threads(pid):
    return _status_sum(pid, "Threads")


def proc_fds(pid):
    """Number of open fds of pid's tree; None if it is gone."""
    kinds = proc_fd_kinds(pid)
    return None if kinds is None else sum(kinds.values())


def io_uring_direct_files(fdinfo):
    """The targets ("socket:[123]") of the direct descriptors an io_uring's fdinfo lists:
    files a process holds in a ring's table (bin/uring's connections) instead of its fd
    table, so /proc/PID/fd does not show them."""
    targets, listing = [], False
    for line in fdinfo.splitlines():
        if line.startswith("UserFiles:"):
            listing = True
        elif listing and line[:1].isspace() and ":" in line:
            targets.append(line.split(":", 1)[1].strip())
        elif listing:
            break
    return targets


def proc_fd_kinds(pid):
    """{"socket": n, "pipe": n, "anon": n, "file": n} over the open fds of pid's tree,
    and the direct descriptors in its io_urings' tables; None if it is gone."""
    kinds = {"socket": 0, "pipe": 0, "anon": 0, "file": 0}
    tree = process_tree(pid)
    if not tree:
        return None
    for p in tree:
        try:
            names = os.listdir(f"/proc/{p}/fd")
        except OSError:
            continue  # a child that exited meanwhile
        for name in names:
            try:
                target = os.readlink(f"/proc/{p}/fd/{name}")
            except OSError:
                continue  # closed meanwhile
            targets = [target]
            if target == "anon_inode:[io_uring]":
                try:
                    with open(f"/proc/{p}/fdinfo/{name}") as f:
                        targets += io_uring_direct_files(f.read())
                except OSError:
                    pass  # closed meanwhile
            for t in targets:
                kind = t.split(":", 1)[0]
                if kind == "anon_inode":
                    kind = "anon"
                kinds[kind if kind in kinds else "file"] += 1
    return kinds


def ctxsw_by_thread(pid):
    """{tid: voluntary + nonvoluntary context switches} for every live thread of pid's tree."""
    out = {}
    keys = ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
    for p in process_tree(pid):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                s = read_status(f"/proc/{p}/task/{tid}/status", keys)
            except OSError:
                continue  # the thread ended between listdir and open
            out[tid] = sum(s.values())
    return out


def session_pids(sid):
    """Every process in session sid (a server with its children, nginx's master and
    worker), found by scanning /proc."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of proc(5): the session id
            out.append(int(name))
    return out


# ---- /proc: the machine ------------------------------------------------------------------

CPU_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_stat():
    """{cpu number: {field: ticks}} from /proc/stat's per-CPU lines."""
    with open("/proc/stat") as f:
        return parse_cpu_stat(f.read())


def parse_cpu_stat(text):
    """cpu_stat() of /proc/stat's text (read here, or on another host)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            out[int(name[3:])] = {k: int(v) for k, v in zip(CPU_STAT_FIELDS, vals)}
    return out


def cpu_stat_delta(before, after, cpus, field):
    """Seconds of `field` (softirq, steal, ...) spent on cpus between two cpu_stat() reads."""
    return sum(after[c][field] - before[c][field] for c in cpus if c in before and c in after) \
        / CLK_TCK


PRESSURE_PATH = "/proc/pressure/cpu"


def psi_some_avg10():
    """The share (%) of the last 10 s during which some task waited for a CPU, or None."""
    try:
        with open(PRESSURE_PATH) as f:
            for line in f:
                if line.startswith("some "):
                    return float(line.split("avg10=", 1)[1].split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return None


def psi_some_us():
    """Total µs during which some task waited for a CPU (PSI), or None without PSI."""
    try:
        with open(PRESSURE_PATH) as f:
            return parse_psi_total(f.read())
    except OSError:
        return None


def parse_psi_total(text):
    """psi_some_us() of /proc/pressure/cpu's text; None without a "some" line."""
    for line in text.splitlines():
        if line.startswith("some "):
            try:
                return int(line.rsplit("total=", 1)[1])
            except (ValueError, IndexError):
                return None
    return None
