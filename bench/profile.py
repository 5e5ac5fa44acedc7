"""profile.py - where a server's CPU goes, per model: `make profile MODEL=epoll`, or
`make profile MODELS="epoll uring coro nginx"` for bars side by side.

For each server in turn: start it pinned to CPU 0 (a peer with one worker, as the bench
starts it: bench/procs.py), open N keep-alive connections with build/bench/loadgen pinned
to CPU 1, offer a fixed open-loop rate, and over exactly the measured window (after the
warm-up) sample CPU 0 with `perf record -e cpu-clock -g -C 0`, keeping the samples of the
server's processes. perf is started during the warm-up with its events disabled and
switched on and off through its control FIFO at the window's edges, where the server's CPU
time (/proc: every thread, ns from schedstat or utime+stime ticks) is read too. Nothing of
ours samples beside it.

Why the CPU and not the process (-p): a per-task cpu-clock event is stopped and restarted
at every context switch of the task (a timer reprogrammed, costly in a VM), and an
open-loop server switches every other request or so. The CPU-wide event runs regardless,
so the server pays only for the samples: `--overhead` repeats each run without perf (the
two CPU-per-request figures agreed within the noise here). `--count` adds a `perf stat` on
the server's tasks (system calls and context switches per request): that one is per task
and may cost the server, so its runs are for the counts, not for the CPU figures.

Each sample's call chain (leaf first) is sorted into one bucket by the rules below; a
bucket's share of the samples times the server's CPU time over the window, divided by the
answers that arrived in it, is that bucket's µs per request.

    Rules, tried frame by frame from the leaf towards the root; the first rule that
    matches a frame decides. A sample whose leaf is in user space is user space.

    bucket   holds                         a frame matching (regex ^name on the symbol)
    -------  ----------------------------  ----------------------------------------------
    parser   user space: HTTP parsing      user-space LEAF containing "parse"
    handler  user space: answering         user-space LEAF handler_, files_, clock_,
                                           beneath_, ngx_http_, h2o_, http_response
    user     user space: the rest          any other user-space leaf (event loop, libc,
                                           [unknown])
    syscall  system-call entry and exit    kernel LEAF ONLY: entry_SYSCALL, do_syscall_64,
                                           syscall_, x64_sys_call, __x64_sys_,
                                           exit_to_user_mode, FPU restore (every syscall
                                           sits above do_syscall_64: only the leaf counts)
    sched    scheduler and wake-ups        schedule, __schedule, finish_task_switch,
                                           try_to_wake_up, ttwu_, __wake_up, wake_up_,
                                           *_task_fair, pick_next, update_curr, psi_,
                                           __switch_to, hrtimer sleeps; the sockets'
                                           wake-up callbacks sock_def_readable,
                                           sock_def_write_space, sk_stream_write_space
                                           (they wake the peer's waiter, interrupts off)
    copy     user<->kernel copies          copy_user, rep_movs, _copy_to_iter,
                                           _copy_from_iter, copy_page_*_iter, memcpy,
                                           memmove (kernel), skb_copy_datagram_iter
    poller   epoll/poll/io_uring           ep_, do_epoll_, *poll_wait, do_sys_poll,
                                           do_select, io_uring, io_, __io_,
                                           tctx_task_work; the readiness questions
                                           tcp_poll, sock_poll, pipe_poll
    net      sockets, TCP/IP, loopback     tcp_, ip_, inet_, sock_, sk_, skb_, *_skb,
                                           net_rx_action, netif_, process_backlog,
                                           __napi_poll, loopback_xmit, __dev_queue_xmit,
                                           __sys_send, __sys_recv, ___sys_*msg,
                                           release_sock, lock_sock (and __ forms)
    kernel   other kernel                  nothing above matched (files, memory, timers)

    The rules are ordered: sched before poller (io_schedule is the scheduler), copy before
    net (skb_copy_datagram_iter's copy is a copy), poller before net (tcp_poll, which epoll
    or io_uring calls to ask a socket whether it is ready, is the poller's question).
    Locks (_raw_spin_*) match nothing, so a lock counts for whoever took it.

Caveats a reader should know: cpu-clock in this VM is a timer, not a hardware counter, so
time spent with interrupts off is charged where they come back on (finish_task_switch,
_raw_spin_unlock_irqrestore): scheduler figures include that. On loopback the receiving
side's TCP work runs in the sender's softirq, so the server pays for part of the client's
receive path, and vice versa. One run is one sample of a noisy machine (the same server at
the same load has varied 16-21 µs per request between back-to-back runs here): use --reps
for interleaved rounds.
The `coverage` column (samples ÷ the server's CPU time × the sampling rate) should be near
1: much less means samples were lost or the server ran where perf did not look.

    python3 bench/profile.py [--conns 100] [--rate 5000] [--secs 5] [--warmup 2]
                             [--freq 4000] [--reps 1] [--count] [--overhead]
                             [--out DIR] NAME...
    python3 bench/profile.py --replot DIR

NAME is any bin/* server, a peer (nginx, h2o, lighttpd), or a binary in build/bench/ that
prints the servers' readiness line (e.g. a null server, `floor`). Writes DIR/profile.csv
(one row per run), DIR/profile.txt (the table), DIR/profile.png and .svg (stacked bars,
median of the reps), and under DIR/logs/ the perf data and, per run, LABEL.leaves.txt: the
most frequent leaf symbols of every bucket. Needs root (kernel symbols, CPU-wide events;
perf_event_paranoid is 2 here).
"""

import argparse
import collections
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import measure
import openloop
import plots
import procs
import www
from c10kutil import (append_csv, median, option_variant, option_variant_binary,
                      process_tree, psi_some_avg10, read_csv)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.path.join(REPO, os.environ.get("BUILD", "build"))
SERVER_CORES, CLIENT_CORES = [0], [1]

# ---- the classifier (the table in the docstring, in code) ---------------------------------

# (bucket, label for tables and plots, colour)
BUCKETS = [
    ("parser", "user: HTTP parser", "#9edae5"),
    ("handler", "user: handler", "#17becf"),
    ("user", "user: loop, libc, other", "#aec7e8"),
    ("syscall", "syscall entry/exit", "#ffbb78"),
    ("sched", "scheduler, wake-ups", "#d62728"),
    ("copy", "copies user<->kernel", "#9467bd"),
    ("poller", "epoll/poll/io_uring", "#2ca02c"),
    ("net", "sockets, TCP/IP, loopback", "#1f77b4"),
    ("kernel", "other kernel", "#7f7f7f"),
]
BUCKET_NAMES = [b[0] for b in BUCKETS]

PARSER_RE = re.compile(r"parse", re.I)
HANDLER_RE = re.compile(r"^(handler_|files_|clock_|beneath_|ngx_http_|h2o_|http_response)")
SYSCALL_LEAF_RE = re.compile(
    r"^(entry_SYSCALL|do_syscall_64|syscall_|x64_sys_call|__x64_sys_|exit_to_user_mode|"
    r"fpregs_|switch_fpu_return|restore_fpregs)")
STACK_RULES = [
    ("sched", re.compile(
        r"^(schedule|__schedule|io_schedule|finish_task_switch|try_to_wake_up|ttwu_|"
        r"__wake_up|wake_up_|[a-z_]*_task_fair|pick_next|put_prev_task|set_next_entity|"
        r"update_curr|update_load_avg|psi_|__switch_to|switch_mm|context_switch|"
        r"prepare_task_switch|dequeue_task|enqueue_task|select_task_rq|"
        r"schedule_hrtimeout|hrtimer_sleep|do_nanosleep|"
        r"sock_def_readable|sock_def_write_space|sk_stream_write_space|sock_def_wakeup)")),
    ("copy", re.compile(
        r"^(copy_user|rep_movs|_copy_to_iter|_copy_from_iter|copy_page_to_iter|"
        r"copy_page_from_iter|__memcpy|memcpy|memmove|__memmove|copy_to_user|copy_from_user|"
        r"_copy_to_user|_copy_from_user|simple_copy_to_iter|skb_copy_datagram_iter)")),
    ("poller", re.compile(
        r"^(ep_|do_epoll_|__x64_sys_epoll|__do_sys_epoll|__se_sys_epoll|[a-z_]*poll_wait|"
        r"do_sys_poll|do_poll|do_select|core_sys_select|io_uring|__io_|io_|"
        r"tctx_task_work|__x64_sys_io_uring|__do_sys_io_uring|tcp_poll|sock_poll|pipe_poll)")),
    ("net", re.compile(
        r"^(tcp_|__tcp_|ip_|__ip_|inet_|__inet_|sock_|__sock_|sk_|__sk_|skb_|__skb_|"
        r"[a-z_]*_skb|kfree_skb|net_rx_action|__netif_|netif_|process_backlog|__napi_poll|"
        r"loopback_xmit|__dev_queue_xmit|dev_hard_start_xmit|__sys_send|__sys_recv|"
        r"___sys_|____sys_|release_sock|lock_sock|__release_sock|sockfd_lookup|"
        r"__x64_sys_(send|recv|sendto|recvfrom|sendmsg|recvmsg|accept|accept4|shutdown))")),
]


def classify(frames):
    """The bucket of one sample; frames are (symbol, dso) from the leaf to the root."""
    if not frames:
        return "kernel"
    leaf_sym, leaf_dso = frames[0]
    if not leaf_dso.startswith("[kernel"):
        if PARSER_RE.search(leaf_sym):
            return "parser"
        if HANDLER_RE.search(leaf_sym):
            return "handler"
        return "user"
    if SYSCALL_LEAF_RE.search(leaf_sym):
        return "syscall"
    for sym, dso in frames:
        if not dso.startswith("[kernel"):
            break  # the kernel part of the chain is over: user frames decide nothing
        for bucket, rx in STACK_RULES:
            if rx.search(sym):
                return bucket
    return "kernel"


FRAME_RE = re.compile(r"^\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")
# "comm pid/tid ..." opens a sample or a task event; comm may hold spaces.
HEADER_RE = re.compile(r"^(\S.*?)\s+(\d+)/(\d+)\s*(.*)$")
FORK_RE = re.compile(r"PERF_RECORD_FORK\((\d+):\d+\):\((\d+):\d+\)")


def parse_script(text):
    """(samples, parents) from `perf script -F comm,pid,tid,ip,sym,dso --show-task-events`:
    each sample as (pid, frames), the frames (symbol, dso) from the leaf to the root (a
    symbol perf could not name is '[unknown]'; a +0xOFFSET suffix is dropped); parents
    {child pid: parent pid} from the fork records, to follow a server's new children."""
    samples, parents = [], {}
    pid, frames = None, None
    for line in text.splitlines():
        m = FRAME_RE.match(line)
        if m and frames is not None:
            frames.append((m.group(1).split("+0x")[0], m.group(2)))
            continue
        if frames is not None:
            samples.append((pid, frames))
        pid, frames = None, None
        h = HEADER_RE.match(line)
        if not h:
            continue  # a blank line between samples
        f = FORK_RE.search(h.group(4))
        if f:
            if f.group(1) != f.group(2):
                parents[int(f.group(1))] = int(f.group(2))
        elif "PERF_RECORD" not in h.group(4):
            pid, frames = int(h.group(2)), []
    if frames is not None:
        samples.append((pid, frames))
    return samples, parents


def descendants(roots, parents):
    """roots and every process forked under them, per the fork records."""
    keep = set(roots)
    children = collections.defaultdict(list)
    for child, parent in parents.items():
        children[parent].append(child)
    todo = list(keep)
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in keep:
                keep.add(c)
                todo.append(c)
    return keep


def count_buckets(samples):
    """({bucket: samples}, {bucket: Counter of leaf symbols}): the second shows what the
    rules put where, so a reader can check them."""
    counts = dict.fromkeys(BUCKET_NAMES, 0)
    leaves = {b: collections.Counter() for b in BUCKET_NAMES}
    for frames in samples:
        b = classify(frames)
        counts[b] += 1
        leaves[b][frames[0][0] if frames else "[none]"] += 1
    return counts, leaves


def write_leaves(path, counts, leaves, top=12):
    total = sum(counts.values()) or 1
    with open(path, "w") as f:
        for b, label, _ in BUCKETS:
            f.write(f"{label}: {counts[b]} samples ({counts[b] / total:.1%})\n")
            for sym, n in leaves[b].most_common(top):
                f.write(f"    {n:7d}  {sym}\n")


# ---- one run -----------------------------------------------------------------------------

class ProfileError(Exception):
    pass


def make_target(name, root, run_dir, log_dir):
    """A server the bench can start: a peer (procs.PEERS), bin/NAME, bin/NAME with an
    option of its own (NAME+OPTION, c10kutil.option_variant), or build/bench/NAME (with an
    option too: floor+uring, the null server's io_uring loop)."""
    if name in procs.PEERS:
        cls, binary = procs.PEERS[name]
        return cls(binary, root, SERVER_CORES, run_dir)
    model, _ = option_variant(name)
    for d in (os.path.join(REPO, "bin"), os.path.join(BUILD_DIR, "bench")):
        path = os.path.join(d, model)
        if not os.access(path, os.X_OK):
            continue
        if model != name and log_dir:  # checking the name only (no log_dir): nothing written
            path = option_variant_binary(name, path, log_dir)
        return procs.Server(path, root, SERVER_CORES, log_dir)
    raise ProfileError(f"no server named {name}: not a peer ({', '.join(procs.PEERS)}), "
                       f"not in bin/ nor in {os.path.relpath(BUILD_DIR, REPO)}/bench/ "
                       "(run make)")


STAT_EVENTS = ["raw_syscalls:sys_enter", "context-switches"]


def read_stat(path):
    """{event: count} from `perf stat -x,` output (value,unit,event,...)."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[0].replace(".", "").isdigit():
                    out[parts[2]] = float(parts[0])
    except OSError:
        pass
    return out


class PerfControl:
    """A perf command (record or stat) on pids, started with its events off and switched by
    writing to its control FIFO; each command returns when perf acknowledges it."""

    def __init__(self, perf_args, out, log):
        base = out + ".ctl"
        self.ctl_path, self.ack_path = base, base + ".ack"
        for p in (self.ctl_path, self.ack_path):
            if os.path.exists(p):
                os.unlink(p)
            os.mkfifo(p)
        # O_RDWR: neither open waits for perf to open its end.
        self.ctl = os.open(self.ctl_path, os.O_RDWR)
        self.ack = os.open(self.ack_path, os.O_RDWR)
        cmd = ["perf"] + perf_args + ["-D", "-1", "--control",
                                      f"fifo:{self.ctl_path},{self.ack_path}", "-o", out]
        self.proc = procs.spawn(cmd, cores=CLIENT_CORES, stdout=log, stderr=log)

    def command(self, what, timeout=10.0):
        os.write(self.ctl, (what + "\n").encode())
        deadline = time.monotonic() + timeout
        got = b""
        while b"ack\n" not in got:  # perf writes "ack\n\0"
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise ProfileError(f"perf did not acknowledge '{what}'")
            ready, _, _ = select.select([self.ack], [], [], left)
            if ready:
                got += os.read(self.ack, 64)

    def finish(self):
        if self.proc.poll() is None:
            procs.stop(self.proc, sig=signal.SIGINT, grace=30.0)
        for fd in (self.ctl, self.ack):
            os.close(fd)
        for p in (self.ctl_path, self.ack_path):
            os.unlink(p)


def loadgen_window(target, args, label, log, start_perf):
    """One loadgen run against a started target; start_perf(pids) returns the
    PerfControls to switch on and off at the window's edges (none for a bare run).
    Returns (loadgen's JSON, the two Snapshots, the CPU pressure at the start: PSI's share
    of the last 10 s in which some task waited for a CPU, which the server's own threads
    and children do not inflate as they do the load average)."""
    loadgen = os.path.join(BUILD_DIR, "bench", "loadgen")
    cmd = [loadgen, "--host", "127.0.0.1", "--port", str(target.port),
           "--conns", str(args.conns), "--rate", f"{args.rate:g}",
           "--duration", f"{args.secs:g}", "--warmup", f"{args.warmup:g}",
           "--path", "/index.html"]
    pid = target.pid()
    lg = procs.spawn(cmd, cores=CLIENT_CORES, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = procs.PipeReader(lg.stdout)
    err = openloop._Lines(lg.stderr, log)
    perfs = []
    edges = []
    try:
        err.opened.wait(60)
        t0 = err.open_at
        if t0 is None:
            raise ProfileError("loadgen opened no connections: " + " | ".join(err.lines[-3:]))
        # Every process of the server (fork's children exist once the connections are open).
        perfs = start_perf(process_tree(pid))
        openloop.sleep_until(t0 + args.warmup)
        pressure = psi_some_avg10()
        for p in perfs:
            p.command("enable")
        edges.append(measure.Snapshot(pid))
        openloop.sleep_until(t0 + args.warmup + args.secs)
        edges.append(measure.Snapshot(pid))
        for p in reversed(perfs):
            p.command("disable")
        lg.wait(timeout=30)
    finally:
        for p in perfs:
            p.finish()
        procs.stop(lg)
    err.join(timeout=5)
    text = out.text()
    log.write(f"==== {label}: {' '.join(cmd)}\n" + "\n".join(err.lines) + "\n" + text + "\n")
    try:
        j = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ProfileError("loadgen gave no result: " + " | ".join(err.lines[-3:]))
    return j, edges, pressure


def answers_of(j):
    return j.get("window_answers") or j.get("requests") or 0


def bare_cpu_us(target, args, label, log):
    """CPU per request of the same load with no perf attached: what perf itself costs."""
    j, edges, _ = loadgen_window(target, args, label + "-bare", log, lambda pids: [])
    answers = answers_of(j)
    return edges[0].cpu_s(edges[1]) * 1e6 / answers if answers else None


def profile_one(target, args, log_dir, label, log):
    """One loadgen run against a started target, perf over its window; a profile.csv row."""
    data = os.path.join(log_dir, label + ".perf.data")
    counts_path = os.path.join(log_dir, label + ".stat.csv")

    def start_perf(pids):
        profiled.extend(pids)
        # The server's CPU (-C), not its tasks (-p): a per-task cpu-clock event is stopped
        # and restarted (a timer reprogrammed) at every context switch of the server, which
        # costs the server far more than the samples do. Other tasks' samples on that CPU
        # are dropped by pid below.
        # A fixed period (-c, ns of CPU for cpu-clock), not a target frequency (-F).
        record = PerfControl(["record", "-e", "cpu-clock", "-g", "-c",
                              str(int(1e9 / args.freq)),
                              "-C", ",".join(map(str, SERVER_CORES))], data, log)
        if not args.count:
            return [record]
        # Counting, not sampling: system calls and context switches of the server's tasks.
        return [PerfControl(["stat", "-x,", "-e", ",".join(STAT_EVENTS),
                             "-p", ",".join(map(str, pids))], counts_path, log), record]

    profiled = []
    j, edges, pressure = loadgen_window(target, args, label, log, start_perf)
    script = subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,tid,ip,sym,dso",
                             "--show-task-events"],
                            capture_output=True, text=True)
    if script.returncode != 0:
        raise ProfileError("perf script failed: " + script.stderr.strip()[-300:])
    events = read_stat(counts_path) if args.count else {}
    # The server's processes: those at the window's start and any forked under them since
    # (bin/fork's children); the other tasks on its CPU are not its cost.
    samples, parents = parse_script(script.stdout)
    keep = descendants(profiled, parents)
    counts, leaves = count_buckets([f for pid, f in samples if pid in keep])
    write_leaves(os.path.join(log_dir, label + ".leaves.txt"), counts, leaves)
    samples = sum(counts.values())
    answers = answers_of(j)
    cpu_s = edges[0].cpu_s(edges[1])
    window = edges[1].t - edges[0].t
    row = {"server": target.name, "model": target.model, "conns": args.conns,
           "date": time.strftime("%Y-%m-%d", time.gmtime()), "cpu_pressure": pressure,
           "offered_rps": j["offered_rps"], "achieved_rps": j["achieved_rps"],
           "p99_ms": j.get("p99_ms"), "errors": j.get("errors", 0),
           "client_bound": int(bool(j.get("client_bound"))), "requests": answers,
           "window_s": window, "cpu_s": cpu_s, "server_util": cpu_s / window,
           "cpu_us_per_req": cpu_s * 1e6 / answers if answers else None,
           "samples": samples,
           # Samples per sample period of CPU the server used: near 1 when the samples
           # saw all of its time on its core.
           "coverage": samples / (cpu_s * args.freq) if cpu_s > 0 else None,
           "syscalls_per_req": events[STAT_EVENTS[0]] / answers
           if answers and STAT_EVENTS[0] in events else None,
           "ctxsw_per_req": events[STAT_EVENTS[1]] / answers
           if answers and STAT_EVENTS[1] in events else None}
    for b in BUCKET_NAMES:
        share = counts[b] / samples if samples else 0.0
        row[b + "_share"] = share
        row[b + "_us"] = share * row["cpu_us_per_req"] if row["cpu_us_per_req"] else None
    return row


CSV_HEADER = (["server", "model", "date", "cpu_pressure", "conns", "rep", "offered_rps",
               "achieved_rps", "p99_ms",
               "errors", "client_bound", "requests", "window_s", "cpu_s", "server_util",
               "cpu_us_per_req", "bare_cpu_us_per_req", "syscalls_per_req", "ctxsw_per_req",
               "samples", "coverage"]
              + [b + "_share" for b in BUCKET_NAMES] + [b + "_us" for b in BUCKET_NAMES])


# ---- the summary: table and plot ---------------------------------------------------------

def summarise(rows):
    """{server: {column: median over its reps}} in first-seen order."""
    out = {}
    for r in rows:
        out.setdefault(r["server"], []).append(r)
    keys = ["cpu_us_per_req", "bare_cpu_us_per_req", "coverage", "syscalls_per_req",
            "ctxsw_per_req", "achieved_rps", "p99_ms",
            "samples"] + \
        [b + "_share" for b in BUCKET_NAMES]
    summary = {}
    for name, rs in out.items():
        s = {k: median([r.get(k) for r in rs]) for k in keys}
        total = sum(s[b + "_share"] or 0 for b in BUCKET_NAMES) or 1.0
        for b in BUCKET_NAMES:  # medians of shares need not sum to 1: rescale
            s[b + "_share"] = (s[b + "_share"] or 0) / total
            s[b + "_us"] = s[b + "_share"] * (s["cpu_us_per_req"] or 0)
        s["reps"] = len(rs)
        s["client_bound"] = any(r.get("client_bound") for r in rs)
        summary[name] = s
    return summary


def table(summary):
    names = list(summary)
    w = max([10] + [len(n) for n in names])
    lines = [f"{'bucket':<26}" + "".join(f"{n:>{w + 10}}" for n in names),
             f"{'':<26}" + "".join(f"{'share':>{w}}{'µs/req':>10}" for _ in names)]
    for b, label, _ in BUCKETS:
        lines.append(f"{label:<26}" + "".join(
            f"{summary[n][b + '_share'] * 100:>{w - 1}.1f}%{summary[n][b + '_us']:>10.2f}"
            for n in names))
    lines.append(f"{'total CPU per request':<26}" + "".join(
        f"{'':>{w}}{summary[n]['cpu_us_per_req'] or 0:>10.2f}" for n in names))
    if any(summary[n]["bare_cpu_us_per_req"] for n in names):
        lines.append(f"{'... without perf attached':<26}" + "".join(
            f"{'':>{w}}{summary[n]['bare_cpu_us_per_req'] or 0:>10.2f}" for n in names))
    if any(summary[n]["syscalls_per_req"] is not None for n in names):
        lines.append(f"{'syscalls, ctx switches/req':<26}" + "".join(
            f"{summary[n]['syscalls_per_req'] or 0:>{w}.2f}"
            f"{summary[n]['ctxsw_per_req'] or 0:>10.2f}" for n in names))
    lines.append(f"{'achieved req/s, p99 ms':<26}" + "".join(
        f"{summary[n]['achieved_rps']:>{w}.0f}{summary[n]['p99_ms'] or 0:>10.3f}"
        for n in names))
    lines.append(f"{'samples, coverage, reps':<26}" + "".join(
        f"{summary[n]['samples']:>{w}.0f}{summary[n]['coverage'] or 0:>6.2f}"
        f"{summary[n]['reps']:>4}" for n in names))
    bound = [n for n in names if summary[n]["client_bound"]]
    if bound:
        lines.append("client-bound (the client fell behind; not the server's figure): "
                     + ", ".join(bound))
    return "\n".join(lines)


def plot(run_dir, summary, note):
    """One stacked bar per server: µs of CPU per request, split into the buckets."""
    names = list(summary)
    data = ["$profile << EOD", "# server " + " ".join(BUCKET_NAMES)]
    for n in names:
        data.append(plots.gp_str(n) + " " +
                    " ".join(f"{summary[n][b + '_us']:.4f}" for b in BUCKET_NAMES))
    data.append("EOD")
    setup = plots.COMMON_SETUP + [
        "set style data histograms",
        "set style histogram rowstacked",
        "set style fill solid 0.9 border rgb '#333333'",
        "set boxwidth 0.6",
        "set yrange [0:*]",
        f"set xrange [-0.6:{len(names) - 0.4}]",
        "set key invert",  # listed top to bottom as the bars stack
        "set ylabel 'server CPU per request (µs)'",
        "set title " + plots.gp_str("Where the CPU goes: server CPU per request, by bucket "
                                    "(perf cpu-clock samples)"),
        "set label 1 " + plots.gp_str(plots.wrap(note, 120)) +
        " at screen 0.01, screen 0.06 font ',9'",
        "set bmargin 7",
    ]
    parts = []
    for i, (b, label, colour) in enumerate(BUCKETS):
        using = f"{i + 2}:xtic(1)" if i == 0 else f"{i + 2}"
        parts.append(f"$profile using {using} title {plots.gp_str(label)} "
                     f"lc rgb '{colour}'")
    body = {"data": data, "setup": setup, "plot": "plot " + ", \\\n     ".join(parts)}
    plots.write_and_run(run_dir, "profile", body, size=(max(1000, 160 * len(names) + 420), 620))
    return os.path.join(run_dir, "profile.png")


def note_for(rows):
    r = rows[0]
    psi = [x["cpu_pressure"] for x in rows if x.get("cpu_pressure") is not None]
    bound = sorted({x["server"] for x in rows if x.get("client_bound")},
                   key=[x["server"] for x in rows].index)
    load = f", CPU pressure at the windows' start {min(psi):.0f}-{max(psi):.0f}%" if psi \
        else ""
    return (f"{r['conns']} keep-alive connections, {r['offered_rps']:,.0f} req/s open loop "
            f"(loadgen on CPU 1, server on CPU 0), {r['window_s']:.1f} s window; "
            f"median of {max(summarise(rows)[r['server']]['reps'], 1)} run(s) per server; "
            f"{r.get('date') or ''}, shared 2-core machine{load}: noisy."
            + (f" Client-bound (loadgen fell behind, so not the server's figure) in some "
               f"run of: {', '.join(bound)}." if bound else ""))


def finish(run_dir, rows):
    summary = summarise(rows)
    print(table(summary), flush=True)
    png = plot(run_dir, summary, note_for(rows))
    with open(os.path.join(run_dir, "profile.txt"), "w") as f:
        f.write(table(summary) + "\n")
    print(f"profile: {os.path.relpath(os.path.join(run_dir, 'profile.csv'), REPO)}, "
          f"{os.path.relpath(png, REPO)}", flush=True)


# ---- main --------------------------------------------------------------------------------

def run_id():
    stamp = time.strftime("%Y-%m-%dT%H%M")
    rid, n = f"{stamp}-profile", 1
    while os.path.exists(os.path.join(REPO, "results", rid)):
        n += 1
        rid = f"{stamp}-profile-{n}"
    return rid


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="servers: bin/* names, peers, build/bench/*")
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--secs", type=float, default=5.0, help="measured window")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--freq", type=int, default=4000, help="perf samples per CPU-second")
    ap.add_argument("--reps", type=int, default=1, help="interleaved rounds over the servers")
    ap.add_argument("--count", action="store_true",
                    help="perf stat on the server's tasks beside the record: system calls "
                         "and context switches per request (it costs the server CPU)")
    ap.add_argument("--overhead", action="store_true",
                    help="after each profiled run, the same load without perf")
    ap.add_argument("--out", help="run directory (default results/DATE-profile)")
    ap.add_argument("--replot", metavar="DIR", help="redraw DIR's table and plot only")
    args = ap.parse_args(argv)
    if args.replot:
        rows = read_csv(os.path.join(args.replot, "profile.csv"))
        finish(args.replot, rows)
        return 0
    names = " ".join(args.names).replace(",", " ").split()
    if not names:
        ap.error("name at least one server (MODEL=epoll or MODELS=\"epoll uring nginx\")")
    if os.geteuid() != 0:
        sys.exit("profile: needs root (perf with kernel symbols; perf_event_paranoid)")
    try:  # every name before the first run: a typo should not cost a run
        for name in names:
            make_target(name, "", "", "")
    except ProfileError as e:
        sys.exit(f"profile: {e}")
    run_dir = args.out or os.path.join(REPO, "results", run_id())
    log_dir = os.path.join(run_dir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    root = os.path.join(REPO, "www")
    www.generate(root)
    procs.install_cleanup()
    csv_path = os.path.join(run_dir, "profile.csv")
    rows = []
    with open(os.path.join(log_dir, "profile.log"), "a") as log:
        for rep in range(args.reps):
            for name in names:
                target = make_target(name, root, run_dir, log_dir)
                label = f"{name}-rep{rep}"
                try:
                    target.start()
                    row = profile_one(target, args, log_dir, label, log)
                    if args.overhead:
                        row["bare_cpu_us_per_req"] = bare_cpu_us(target, args, label, log)
                except (procs.StartError, ProfileError, measure.MeasureError, OSError) as e:
                    print(f"profile: {name}: {e}", flush=True)
                    continue
                finally:
                    target.stop()
                row["rep"] = rep
                rows.append(row)
                append_csv(csv_path, CSV_HEADER, row)
                print(f"profile: {name} rep {rep}: {row['cpu_us_per_req']:.2f} µs/request, "
                      f"{row['samples']} samples", flush=True)
    if not rows:
        return 1
    finish(run_dir, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
