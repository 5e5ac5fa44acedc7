"""report.py - what a run leaves behind in results/RUN_ID/: the CSVs, summary.md and env.txt."""

import csv
import os
import platform
import re
import statistics
import subprocess
import time
from collections import defaultdict

CSV_HEADER = ["server", "model", "conns", "file", "rep", "rps", "mbps", "p50_ms", "p90_ms",
              "p99_ms", "max_ms", "errors", "non2xx", "cpu_us_per_req", "syscalls_per_req",
              "ctxsw_per_req", "rss_kib", "threads"]
IDLE_HEADER = ["server", "model", "idle", "idle_open", "idle_kept"] + CSV_HEADER[2:]


# ---- CSV -----------------------------------------------------------------------------------

# Digits after the point per column; everything else is written as is.
DECIMALS = {"rps": 1, "mbps": 2, "p50_ms": 3, "p90_ms": 3, "p99_ms": 3, "max_ms": 3,
            "cpu_us_per_req": 3, "syscalls_per_req": 3, "ctxsw_per_req": 4}


def fmt_cell(key, v):
    if v is None:
        return ""
    if key in DECIMALS:
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


def read_csv(path):
    """Reads a results/idle CSV back into dicts with numbers where there are numbers."""
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            for k, v in r.items():
                if k in ("server", "model", "file"):
                    continue
                r[k] = None if v == "" else (float(v) if "." in v else int(v))
            rows.append(r)
    return rows


# ---- medians ---------------------------------------------------------------------------------

def median(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def group(rows, keys):
    """{(row[k] for k in keys): [rows]} in first-seen order."""
    out = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def medians(rows, keys):
    """Per group: the median of every metric, plus rps min/max, reps and error totals."""
    out = {}
    for key, rs in group(rows, keys).items():
        m = {k: median(r[k] for r in rs) for k in
             ("rps", "mbps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "cpu_us_per_req",
              "syscalls_per_req", "ctxsw_per_req", "rss_kib", "threads")}
        m["rps_min"] = min(r["rps"] for r in rs)
        m["rps_max"] = max(r["rps"] for r in rs)
        m["reps"] = len(rs)
        m["errors"] = sum(r["errors"] or 0 for r in rs)
        m["non2xx"] = sum(r["non2xx"] or 0 for r in rs)
        for k in ("idle_open", "idle_kept"):
            if k in rs[0]:
                m[k] = min(r[k] for r in rs if r[k] is not None) if any(
                    r[k] is not None for r in rs) else None
        out[key] = m
    return out


def fmt_duration(s):
    s = int(round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def progress_line(i, n, row, rep, reps, extra=""):
    p99 = f"{row['p99_ms']:.1f} ms" if row["p99_ms"] is not None else "-"
    line = (f"[{i}/{n}] {row['server']}{extra} c={row['conns']} {row['file']} rep {rep}/{reps}: "
            f"{row['rps']:,.0f} req/s p99 {p99}")
    if row["file"] == "1m.bin":
        line += f" ({row['mbps']:,.0f} MB/s)"
    if row["errors"] or row["non2xx"]:
        line += f" [{row['errors']} socket errors, {row['non2xx']} non-2xx]"
    return line


# ---- summary.md ------------------------------------------------------------------------------

def n(v, digits=0):
    """A number for a table: thousands separated, '–' when missing."""
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def n_auto(v):
    """Two significant-ish digits for small per-request figures."""
    if v is None:
        return "–"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def write_summary(path, cfg, rid, rows, idle_rows, sizes, syscalls, failures, elapsed):
    servers = cfg.servers + ["nginx"]
    med = medians(rows, ("server", "conns", "file"))
    lines = [f"# c10k bench: {rid}", ""]
    took = f" · took {fmt_duration(elapsed)}" if elapsed is not None else ""
    lines.append(f"`make bench{'' if cfg.mode == 'full' else '-' + cfg.mode}` · "
                 f"{rid[:10]}{took} · machine and versions in `env.txt`")
    lines.append("")
    sys_note = {"perf": "counted by `perf stat -e raw_syscalls:sys_enter` during the run",
                "strace": "counted by `strace -c -f` on a separate 1 s run (perf could not "
                          "attach here), so they come from a slowed server",
                "none": "not counted (BENCH_PERF=0)"}[syscalls]
    lines += [
        f"Server pinned to CPU {','.join(map(str, cfg.server_cores))}, wrk "
        f"(`-t{len(cfg.client_cores)}`, keep-alive, `--latency`) to CPU "
        f"{','.join(map(str, cfg.client_cores))}. Each measurement: {cfg.warm:g} s warm-up, "
        f"then {cfg.secs:g} s measured; {cfg.reps} repetition(s), each server restarted per "
        f"repetition.",
        "",
        "Figures are medians over repetitions; req/s also shows min–max. **× nginx** is the "
        "median req/s over nginx's median at the same point of this run. CPU µs, context "
        "switches (ctxsw) and syscalls are the server's own per request, read from the kernel "
        f"(for nginx: its worker); syscalls {sys_note}. RSS is the peak resident set "
        "sampled during the run. Errors: wrk's socket errors / non-2xx responses, summed over "
        "repetitions.",
        "",
    ]
    trimmed = [f"`{f}` at c={c}" for c in cfg.conns for f in cfg.files if cfg.skip(c, f)]
    if trimmed:
        lines += [f"Not measured, to keep `make bench` within 15 minutes: {', '.join(trimmed)} "
                  "(`BENCH_TRIM=0` runs it).", ""]

    for file in cfg.files:
        lines += [f"## {file} ({sizes.get(file, 0):,} B)", ""]
        lines.append("| conns | server | req/s (min–max) | × nginx | MB/s | p50 ms | p99 ms | "
                     "CPU µs/req | syscalls/req | ctxsw/req | RSS KiB | threads | errors |")
        lines.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for conns in cfg.conns:
            base = med.get(("nginx", conns, file))
            for s in servers:
                m = med.get((s, conns, file))
                if not m:
                    continue
                ratio = (m["rps"] / base["rps"]) if base and base["rps"] else None
                name = f"**{s}**" if s != "nginx" else "nginx"
                rng = f" ({n(m['rps_min'])}–{n(m['rps_max'])})" if m["reps"] > 1 else ""
                errs = "0" if not (m["errors"] or m["non2xx"]) else f"{m['errors']}/{m['non2xx']}"
                lines.append(
                    f"| {conns:,} | {name} | {n(m['rps'])}{rng} | "
                    f"{'–' if ratio is None else f'{ratio:.2f}'} | {n(m['mbps'])} | "
                    f"{n_auto(m['p50_ms'])} | {n_auto(m['p99_ms'])} | "
                    f"{n_auto(m['cpu_us_per_req'])} | {n_auto(m['syscalls_per_req'])} | "
                    f"{n_auto(m['ctxsw_per_req'])} | {n(m['rss_kib'])} | {n(m['threads'])} | "
                    f"{errs} |")
        lines.append("")

    if idle_rows:
        lines += idle_section(cfg, idle_rows, servers)

    if failures:
        lines += ["## Failures", ""]
        lines += [f"- {what}: {why}" for what, why in failures]
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def idle_section(cfg, idle_rows, servers):
    med = medians(idle_rows, ("server", "idle"))
    steps = sorted({r["idle"] for r in idle_rows})
    select_max = max((r["idle"] for r in idle_rows if r["server"] == "select"), default=None)
    select_note = (f"`select` is swept only up to M={select_max:,}: it cannot hold an fd at "
                   "or above FD_SETSIZE (1024)." if select_max is not None else "")
    lines = ["## Idle connections: 100 busy while M idle keep-alive connections are held", "",
             "wrk drives 100 connections on `index.html` while `bench/idlers` holds M others "
             "open and silent (each sent one request and read its answer). Cells: median req/s "
             "and, in brackets, the ratio to the same server at M=0. A model whose every wait "
             "walks all its connections (select, poll, busypoll) slows down as M grows. "
             + select_note, "",
             "| server | " + " | ".join(f"M={m:,}" for m in steps) +
             " | RSS per idle conn (KiB) |",
             "|---|" + "---:|" * (len(steps) + 1)]
    for s in servers:
        if not any((s, m) in med for m in steps):
            continue
        zero = med.get((s, 0))
        cells = []
        for m in steps:
            x = med.get((s, m))
            if not x:
                cells.append("–")
                continue
            cell = n(x["rps"])
            if zero and m and zero["rps"]:
                cell += f" ({x['rps'] / zero['rps']:.2f})"
            if m and x.get("idle_open") is not None and x["idle_open"] < m:
                cell += f" held {x['idle_open']:,}"
            cells.append(cell)
        top = max((m for m in steps if (s, m) in med and m), default=None)
        per_conn = None
        if zero and top and med[(s, top)]["rss_kib"] and zero["rss_kib"]:
            held = med[(s, top)].get("idle_open") or top
            per_conn = (med[(s, top)]["rss_kib"] - zero["rss_kib"]) / max(held, 1)
        lines.append(f"| {s} | " + " | ".join(cells) +
                     f" | {n_auto(per_conn) if per_conn is not None else '–'} |")
    lines.append("")
    return lines


# ---- env.txt ---------------------------------------------------------------------------------

def _cmd(args):
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"


def _first(text):
    return text.splitlines()[0] if text else "unavailable"


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "unavailable"


def cpu_model():
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def write_env(path, cfg, rid, syscalls, repo):
    import resource

    def dpkg(pkg):
        v = _cmd(["dpkg-query", "-W", "-f=${Version}", pkg])
        return v if v and "no packages" not in v else "not installed"

    commit = _cmd(["git", "-C", repo, "rev-parse", "HEAD"])
    dirty = _cmd(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"])
    items = [
        ("run", rid),
        ("mode", cfg.mode),
        ("date", time.strftime("%Y-%m-%d %H:%M:%S %z")),
        ("git commit", commit + (" (with uncommitted changes)" if dirty else "")),
        ("kernel", " ".join(platform.uname()[:3]) + " " + platform.uname().version),
        ("cpu", cpu_model()),
        ("cores", f"{os.cpu_count()} online, {len(cfg.cpus)} usable "
                  f"({','.join(map(str, cfg.cpus))})"),
        ("pinning", f"servers and nginx on CPU {','.join(map(str, cfg.server_cores))} "
                    f"(taskset); wrk -t{len(cfg.client_cores)}, idlers and the harness on CPU "
                    f"{','.join(map(str, cfg.client_cores))}"
                    + (" (one core: shared!)" if cfg.server_cores == cfg.client_cores else "")),
        ("load average at start", _read("/proc/loadavg")),
        ("memory", _first(_read("/proc/meminfo"))),
        ("wrk", _first(_cmd(["wrk", "-v"])) + f" (package {dpkg('wrk')})"),
        ("nginx", _first(_cmd([cfg.nginx, "-v"])) + f" ({cfg.nginx}, package "
                  f"{dpkg('nginx-light')})"),
        ("liburing", dpkg("liburing-dev")),
        ("http-parser", dpkg("libhttp-parser-dev")),
        ("compiler", _first(_cmd([os.environ.get("CC", "cc"), "--version"]))),
        ("python", platform.python_version()),
        ("gnuplot", _first(_cmd(["gnuplot", "--version"]))),
        ("perf", _first(_cmd(["perf", "--version"]))),
        ("syscall counting", syscalls),
        ("RLIMIT_NOFILE", "%d soft, %d hard" % resource.getrlimit(resource.RLIMIT_NOFILE)),
        ("net.core.somaxconn", _read("/proc/sys/net/core/somaxconn")),
        ("net.ipv4.tcp_tw_reuse", _read("/proc/sys/net/ipv4/tcp_tw_reuse")),
        ("net.ipv4.ip_local_port_range", _read("/proc/sys/net/ipv4/ip_local_port_range")),
        ("io_uring_disabled", _read("/proc/sys/kernel/io_uring_disabled")),
        ("servers", " ".join(cfg.servers) + " nginx"),
        ("conns", ",".join(map(str, cfg.conns))),
        ("files", ",".join(cfg.files)),
        ("reps", cfg.reps),
        ("seconds per measurement", f"{cfg.secs:g} after {cfg.warm:g} s warm-up"),
        ("idle sweep", f"M={','.join(map(str, cfg.idle))} x {cfg.idle_reps} rep(s)"
                       if cfg.idle_reps else "none"),
        ("BENCH_SLOW", ",".join(k if v is None else f"{k}:{v}" for k, v in cfg.slow.items())
         or "none"),
    ]
    width = max(len(k) for k, _ in items)
    with open(path, "w") as f:
        for k, v in items:
            v = re.sub(r"\s+", " ", str(v))  # one line per item, whatever a tool printed
            f.write(f"{k + ':':<{width + 1}} {v}\n")
