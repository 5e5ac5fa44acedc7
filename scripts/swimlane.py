#!/usr/bin/env python3
"""scripts/swimlane.py - draws one request's system calls as a swimlane SVG.

    scripts/swimlane.py --model MODEL --main-tid TID TRACE OUT.svg

TRACE is `strace -f -tt -T` output cut to the traced requests (scripts/trace.sh makes it).
Time flows down, one row per system call, in the order the calls started (not to scale: the
time column gives the real offsets). A run of three or more identical passes (busypoll's
empty accept4/recvfrom pairs) keeps its first and last pass as rows and draws the passes
between as one tall orange band, one tick per pass, with their count and duration. Lanes: each thread strace saw (the main thread, a
connection thread, glibc's aio thread), then the kernel, and for io_uring its io-wq workers.

strace sees only what user threads ask of the kernel. The kernel lane is drawn from what
each call implies (its name, result and duration): "asleep" for a call that waited, "copy"
for the bytes a call moved. io-wq workers are kernel threads, which strace cannot trace;
their lane says when they would work. The picture shows one cycle: from after the
/trace-begin marker's answer to the read of the second request.
"""
import argparse
import os
import re
import sys
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from c10kutil import model_traits, models_with  # noqa: E402

SLEPT_MS = 0.05  # under strace a call that does not wait takes 5-35 µs; one that took longer slept

LINE = re.compile(r"^(\d+)\s+(\d+):(\d+):(\d+\.\d+)\s+(.*)$")
DONE = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>.*?)\s+<(?P<dur>[\d.]+)>$")
UNFINISHED = re.compile(r"^(?P<name>\w+)\((?P<args>.*?)\s*<unfinished \.\.\.>$")
RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<args>.*)\)\s+=\s+(?P<ret>.*?)\s+<(?P<dur>[\d.]+)>$")
WAITS = {"epoll_wait", "epoll_pwait", "select", "pselect6", "poll", "ppoll", "rt_sigtimedwait",
         "sigtimedwait", "accept", "accept4"}
READS = {"recvfrom", "read", "recvmsg", "readv"}
BLOCKING_SOCKETS = set(models_with("blockingio"))  # the models whose reads may sleep
WRITES = {"sendto", "sendmsg", "write", "writev"}


class Call:
    def __init__(self, tid, start, name, args):
        self.tid, self.start, self.name, self.args = tid, start, name, args
        self.ret, self.dur = "?", 0.0

    @property
    def end(self):
        return self.start + self.dur

    def key(self):
        slept = self.name in WAITS and "EAGAIN" not in self.ret and self.dur * 1000 >= SLEPT_MS
        return (self.tid, self.name, self.ret, slept, id(self) if self.name == "io_uring_enter" else 0)


def parse(path):
    calls, pending = [], {}
    for raw in open(path, encoding="utf-8", errors="replace"):
        m = LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        tid = int(m[1])
        t = int(m[2]) * 3600 + int(m[3]) * 60 + float(m[4])
        rest = m[5]
        if (d := DONE.match(rest)):
            c = Call(tid, t, d["name"], d["args"])
            c.ret, c.dur = d["ret"], float(d["dur"])
            calls.append(c)
        elif (u := UNFINISHED.match(rest)):
            c = Call(tid, t, u["name"], u["args"])
            pending[tid] = c
            calls.append(c)
        elif (r := RESUMED.match(rest)) and tid in pending:
            c = pending.pop(tid)
            c.args += r["args"]
            c.ret, c.dur = r["ret"], float(r["dur"])
    return calls


def window(calls):
    """One cycle: after the begin marker's 404 went out, to the second request's read."""
    first = 0
    for i, c in enumerate(calls):
        if "404 Not Found" in c.args:
            first = i + 1
    reads = [i for i, c in enumerate(calls) if i >= first and "GET /index.html" in c.args]
    last = reads[1] if len(reads) > 1 else len(calls) - 1
    return calls[first:last + 1]


class Spin:
    """Passes 2 to n-1 of a run of identical passes: drawn as one tall band, not one row."""

    def __init__(self, calls, n, k):
        self.tid, self.start, self.end = calls[0].tid, calls[0].start, calls[-1].end
        self.n, self.k, self.names = n, k, [c.name for c in calls[:k]]
        self.rows = 3 if n < 10 else SPIN_ROWS


def collapse(calls):
    """A run of n >= 3 identical blocks of 1-4 calls (busypoll's empty passes) becomes its
    first block, a Spin band for the passes between, and its last block: the spin keeps
    its height in the picture instead of shrinking to one row."""
    rows, i = [], 0
    while i < len(calls):
        best = (1, 1)
        for k in range(1, 5):
            block = [c.key() for c in calls[i:i + k]]
            if len(block) < k:
                break
            n = 1
            while [c.key() for c in calls[i + n * k:i + (n + 1) * k]] == block:
                n += 1
            if n >= 3 and n * k > best[0] * best[1]:
                best = (k, n)
        k, n = best
        if n >= 3:
            rows += calls[i:i + k]
            rows.append(Spin(calls[i + k:i + (n - 1) * k], n - 2, k))
            rows += calls[i + (n - 1) * k:i + n * k]
        else:
            rows += calls[i:i + k]
        i += k * n
    return rows


def first_arg(c):
    return c.args.split(",", 1)[0].strip()


def short_ret(ret):
    m = re.match(r"(-?\d+)(?: (E[A-Z]+))?", ret)
    if not m:
        return ret[:12]
    return f"{m[1]} {m[2]}" if m[2] else m[1]


def nbytes(c):
    m = re.match(r"(\d+)", c.ret)
    return int(m[1]) if m else 0


def label(c):
    ret = short_ret(c.ret)
    if c.name == "io_uring_enter":
        a = [x.strip() for x in c.args.split(",")]
        sub, wait = (a[1], a[2]) if len(a) > 2 else ("?", "?")
        return f"io_uring_enter(submit {sub}, wait {wait}) = {ret}"
    if c.name == "futex":
        op = "WAKE" if "WAKE" in c.args else "WAIT"
        return f"futex({op}) = {ret}"
    if c.name in ("rt_sigtimedwait", "rt_sigqueueinfo"):
        sig = re.search(r"SIGRT_\d+|SIGIO", c.args + c.ret)
        return f"{c.name}({sig[0] if sig else ''}) = {ret}"
    fd = first_arg(c)
    return f"{c.name}({fd if fd.isdigit() else ''}) = {ret}"


def kernel(c, model, state):
    """What the kernel did for this call, as far as the call's name, result and time imply."""
    slept = c.dur * 1000 >= SLEPT_MS
    if c.name in ("openat", "openat2") and nbytes(c) > 0:
        state[first_arg(Call(0, 0, "", c.ret))] = "file"
        return ("none", "file lookup: " + (re.search(r'"([^"]*)"', c.args) or ["", ""])[1])
    if c.name in READS and state.get(first_arg(c)) == "file":
        return ("copy", f"copy {nbytes(c)} B page cache → user")
    if c.name == "close":
        state.pop(first_arg(c), None)
        return ("none", "close")
    n, err = nbytes(c), "EAGAIN" in c.ret
    asleep = f"asleep {c.dur * 1000:.2f} ms" if slept else ""
    if c.name == "io_uring_enter":
        # strace cannot show the submission entries. bin/uring's loop alternates: a turn
        # that submits a send (the kernel runs it inline), then one that submits the next
        # recv and sleeps until it completes. The first call of the cycle sends.
        state["enters"] = state.get("enters", 0) + 1
        if state["enters"] % 2 == 0 and not slept:
            return ("copy", "recv: data already there; copy into a buffer, on this thread (phase 2)")
        if state["enters"] % 2 == 0:
            return ("sleep", f"recv: {asleep} until data (phase 1), then the copy "
                             "on this thread (phase 2)")
        return ("copy", "send, run inline at submit: copy user → socket buffer")
    if c.name in WAITS and not (c.name.startswith("accept") and n > 0):
        if err:
            return ("none", "nothing queued: EAGAIN")
        if c.ret.startswith("0"):
            return ("none", "nothing ready: returns at once")
        what = "a ready fd"
        if c.name == "rt_sigtimedwait":
            what = "a queued signal: " + ("a completion" if model == "aio" else "one fd is ready")
        phase = "" if model == "aio" else " (phase 1)"
        return ("sleep" if slept else "none",
                f"{asleep} until {what}{phase}" if slept else f"{what}: already there")
    if c.name.startswith("accept"):
        return ("none", f"new connection: fd {n}")
    if c.name in READS:
        if err:
            return ("none", "nothing to read: EAGAIN")
        if n == 0:
            return ("none", "end of stream")
        if slept and model in BLOCKING_SOCKETS:
            return ("sleep", f"{asleep} until data (phase 1), then copy {n} B "
                             "socket buffer → user (phase 2)")
        return ("copy", f"copy {n} B socket buffer → user (phase 2)")
    if c.name in WRITES:
        return ("copy", f"copy {n} B user → socket buffer; TCP sends it")
    if c.name == "sendfile":
        return ("copy", f"{n} B page cache → socket, no copy through user space")
    if c.name in ("pread64", "pwrite64") and "ESPIPE" in c.ret:
        return ("none", "ESPIPE: a socket has no offset (glibc retries without one)")
    if c.name == "rt_sigqueueinfo":
        return ("none", "queues a real-time signal to the main thread: the completion")
    if c.name == "futex":
        if "WAKE" in c.args:
            return ("none", "wakes a thread waiting on this futex")
        return ("sleep", f"{asleep} on a futex, until woken") if slept else ("none", "futex: no wait")
    if c.name in ("mmap", "munmap", "mremap", "brk"):
        return ("none", f"{c.name}: the process's own memory")
    if c.name in ("epoll_ctl",):
        return ("none", "changes the interest list")
    return ("none", c.name)


FILL = {"sleep": "#d9d9d9", "copy": "#c6dbef", "none": "#ffffff", "spin": "#fbd7a6"}
ROW, TOP, TIMECOL, LANE, KLANE, WQLANE = 24, 110, 96, 280, 500, 200
SPIN_ROWS = 6  # a long spin band's height, in rows (a short one: 3)


def draw_spin(o, r, y, h, lane_x, kx, t0):
    """Busy passes: a tall orange band with one tick per pass (up to 60), awake throughout."""
    o.append(f'<text x="{TIMECOL - 8}" y="{y + 15}" text-anchor="end">'
             f'{(r.start - t0) * 1000:.3f}</text>')
    o.append(f'<text x="{TIMECOL - 8}" y="{y + h - 6}" text-anchor="end">'
             f'{(r.end - t0) * 1000:.3f}</text>')
    bx = lane_x + 12
    o.append(f'<rect x="{bx}" y="{y + 3}" width="{LANE - 24}" height="{h - 6}" rx="3" '
             f'fill="{FILL["spin"]}" stroke="#e08a00"/>')
    ticks = min(r.n, 60)
    for j in range(ticks):
        ty = y + 6 + (h - 12) * (j + 0.5) / ticks
        o.append(f'<line x1="{bx + 4}" y1="{ty:.1f}" x2="{bx + 22}" y2="{ty:.1f}" '
                 'stroke="#e08a00"/>')
    calls = f"{r.n * r.k} calls" if r.k > 1 else f"{r.n} calls"
    for j, line in enumerate([f"spinning: {r.n} more passes ({calls}),",
                              f"each pass: {', '.join(r.names)}: EAGAIN;",
                              f"{(r.end - r.start) * 1000:.2f} ms awake, never asleep"]):
        o.append(f'<text x="{bx + 30}" y="{y + 20 + j * 16}">{escape(line)}</text>')
    o.append(f'<line x1="{bx + LANE - 24}" y1="{y + h // 2}" x2="{kx + 4}" y2="{y + h // 2}" '
             'stroke="#999" stroke-dasharray="2 2"/>')
    o.append(f'<rect x="{kx + 6}" y="{y + 3}" width="{KLANE - 12}" height="{h - 6}" rx="3" '
             f'fill="{FILL["spin"]}" stroke="#e08a00"/>')
    for j, line in enumerate(["nothing ready, each time: returns at once (EAGAIN).",
                              "The thread never sleeps: the core runs these calls",
                              "until the data comes (compare epoll: one call, asleep)."]):
        o.append(f'<text x="{kx + 11}" y="{y + 20 + j * 16}">{escape(line)}</text>')


def io_wq(model):
    """Whether model drives io_uring, whose io-wq workers get a lane (the iouring trait)."""
    return "iouring" in model_traits(model)


def draw(calls, model, main_tid, out):
    rows = collapse(calls)
    heights = [r.rows * ROW if isinstance(r, Spin) else ROW for r in rows]
    ys = [TOP + sum(heights[:i]) for i in range(len(rows))]
    bottom = TOP + sum(heights)
    state = {}  # fds of open files, io_uring_enter calls seen
    tids = [main_tid] + sorted({c.tid for c in calls} - {main_tid})
    names = {"aio": "glibc aio thread", "blocking": "connection thread"}
    lanes = {t: ("main thread" if t == main_tid else names.get(model, "thread")) + f" ({t})"
             for t in tids}
    if model == "blocking" and len(tids) > 1:
        lanes[main_tid] = f"main thread, in accept ({main_tid})"
    x0 = {t: TIMECOL + i * LANE for i, t in enumerate(tids)}
    kx = TIMECOL + len(tids) * LANE
    wq = io_wq(model)
    width = max(kx + KLANE + (WQLANE if wq else 0) + 10, 920)
    height = max(bottom, TOP + (130 if wq else 0)) + 40
    t0 = calls[0].start if calls else 0
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
         f'<title>bin/{model}: one request\'s system calls, by thread, with the kernel lane</title>',
         f'<rect width="{width}" height="{height}" fill="#fff"/>',
         f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(model)}: one keep-alive '
         'GET /index.html (4 KiB), from strace -f -tt -T</text>',
         '<text x="10" y="40">time flows down, one row per system call (not to scale); '
         'grey: asleep in the kernel; blue: the kernel copies bytes'
         + ('; orange: calls that fail at once, awake' if any(isinstance(r, Spin) for r in rows)
            else '') + '.</text>',
         '<text x="10" y="56">The kernel lane is inferred from each call\'s name, result and '
         'duration' + (", and for io_uring from the loop's order (strace cannot show "
                        "submission entries)" if wq else "") + '.</text>']
    heads = [(TIMECOL // 2, "ms", "")] + [(x0[t] + LANE // 2, lanes[t], "") for t in tids]
    heads.append((kx + KLANE // 2, "kernel", ""))
    if wq:
        heads.append((kx + KLANE + WQLANE // 2, "io-wq workers", ""))
    for x, text, _ in heads:
        o.append(f'<text x="{x}" y="{TOP - 16}" text-anchor="middle" font-weight="bold">'
                 f'{escape(text)}</text>')
    foot = height - 14
    for t in tids:
        if not any(c.tid == t for c in calls):
            o.append(f'<rect x="{x0[t] + 3}" y="{TOP + 2}" width="5" height="{bottom - TOP - 4}" '
                     f'fill="{FILL["sleep"]}" stroke="#888"/>')
            o.append(f'<text x="{x0[t] + 14}" y="{TOP + 16}" fill="#555">asleep in a call made '
                     'before this cycle</text>')
    for x in [x0[t] for t in tids] + [kx] + ([kx + KLANE] if wq else []):
        o.append(f'<line x1="{x}" y1="{TOP - 30}" x2="{x}" y2="{bottom}" stroke="#bbb"/>')
    if wq:
        wx = kx + KLANE + 8
        note = ["kernel threads: strace", "cannot see them.", "Idle in this trace: the",
                "4 KiB body is sent from", "memory, inline. A file", "body's splice (the", "1 MiB rows) runs here."]
        o.append(f'<rect x="{wx - 4}" y="{TOP}" width="{WQLANE - 8}" height="{len(note) * 15 + 8}" '
                 'fill="none" stroke="#888" stroke-dasharray="4 3"/>')
        for i, s in enumerate(note):
            o.append(f'<text x="{wx + 2}" y="{TOP + 15 + i * 15}" fill="#555">{escape(s)}</text>')
    for i, c in enumerate(rows):
        y = ys[i]
        if isinstance(c, Spin):
            draw_spin(o, c, y, heights[i], x0[c.tid], kx, t0)
            continue
        o.append(f'<text x="{TIMECOL - 8}" y="{y + 15}" text-anchor="end">'
                 f'{(c.start - t0) * 1000:.3f}</text>')
        # A call that outlives the next rows: a bar down its lane while it is in the kernel.
        later = [j for j, d in enumerate(rows) if j > i and d.start < c.end]
        if later:
            h = ys[max(later)] + heights[max(later)] - y
            o.append(f'<rect x="{x0[c.tid] + 3}" y="{y + 2}" width="5" height="{h - 4}" '
                     f'fill="{FILL["sleep"]}" stroke="#888"/>')
        kind, text = kernel(c, model, state)
        bx = x0[c.tid] + 12
        o.append(f'<rect x="{bx}" y="{y + 3}" width="{LANE - 24}" height="{ROW - 6}" rx="3" '
                 f'fill="{FILL[kind]}" stroke="#333"/>')
        o.append(f'<text x="{bx + 5}" y="{y + 16}">{escape(label(c))}</text>')
        o.append(f'<line x1="{bx + LANE - 24}" y1="{y + ROW // 2}" x2="{kx + 4}" '
                 f'y2="{y + ROW // 2}" stroke="#999" stroke-dasharray="2 2"/>')
        o.append(f'<rect x="{kx + 6}" y="{y + 3}" width="{KLANE - 12}" height="{ROW - 6}" rx="3" '
                 f'fill="{FILL[kind]}" stroke="#666"/>')
        text = text if len(text) <= 84 else text[:82] + "…"
        o.append(f'<text x="{kx + 11}" y="{y + 16}">{escape(text)}</text>')
    o.append(f'<text x="10" y="{foot}">Regenerate: make trace MODEL={escape(model)} '
             '(scripts/trace.sh, scripts/swimlane.py). Under strace every call is slower; '
             'read the order and the kind, not the durations.</text>')
    o.append("</svg>")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(o) + "\n")
    return len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--main-tid", type=int, required=True)
    ap.add_argument("trace")
    ap.add_argument("out")
    a = ap.parse_args()
    calls = window(parse(a.trace))
    if not calls:
        print(f"swimlane: no system calls in {a.trace}", file=sys.stderr)
        return 1
    draw(calls, a.model, a.main_tid, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
