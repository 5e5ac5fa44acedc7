"""report.py - what a run leaves behind in results/RUN_ID/: the CSVs, summary.md and env.txt."""

import hashlib
import os
import platform
import re
import shlex
import subprocess
import time

import procs
from c10kutil import append_csv, medians  # noqa: F401 (append_csv: gate.py uses it)
from openloop import SLO_ACHIEVED, SLO_P99_MS, capacity, fixed_cpu

CSV_HEADER = ["server", "model", "conns", "file", "rep", "rps", "mbps", "p50_ms", "p90_ms",
              "p99_ms", "max_ms", "errors", "non2xx", "cpu_us_per_req", "syscalls_per_req",
              "ctxsw_per_req", "rss_kib", "threads", "softirq_us_per_req", "server_util",
              "wrk_cpu", "wrk_bound", "cpu_pressure", "steal", "window_s"]
IDLE_HEADER = ["server", "model", "idle", "idle_open", "idle_kept"] + CSV_HEADER[2:]

# Every metric of a closed-loop row that gets a median (and min-max) over repetitions.
METRICS = ("rps", "mbps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "cpu_us_per_req",
           "syscalls_per_req", "ctxsw_per_req", "rss_kib", "threads", "softirq_us_per_req",
           "server_util", "wrk_cpu", "cpu_pressure")
SUMS = ("errors", "non2xx", "wrk_bound")
# The peers every ratio is taken to, in this order, when they ran.
RATIO_PEERS = ("nginx", "h2o")


def closed_medians(rows, keys):
    return medians(rows, keys, METRICS, SUMS)


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


def open_progress_line(row):
    """'epoll open c=10000 @ 32,000/s: 32,000 achieved, p99 1.2 ms, 9.8 µs/req [ok]'."""
    kind = "churn" if row.get("close") else "open"
    p99 = f"{row['p99_ms']:.1f} ms" if row.get("p99_ms") is not None else "-"
    cpu = f", {row['cpu_us_per_req']:.1f} µs/req" if row.get("cpu_us_per_req") else ""
    util = f" (server {row['server_util']:.0%})" if row.get("server_util") is not None else ""
    cli = f", client {row['client_cpu']:.0%}" if row.get("client_cpu") is not None else ""
    errs = f", {row['errors']} errors" if row.get("errors") else ""
    return (f"  {row['server']} {kind} c={row['conns']} @ {row['offered_rps']:,.0f}/s: "
            f"{row['achieved_rps']:,.0f} achieved, p99 {p99}{cpu}{util}{cli}{errs} "
            f"[{row['status']}]")


def k(v):
    """A rate for a table: 57k, 5.7k, 570."""
    if v is None:
        return "–"
    if v >= 10000:
        return f"{v / 1000:.0f}k"
    if v >= 1000:
        return f"{v / 1000:.1f}k"
    return f"{v:.0f}"


def ratio(a, b, digits=2):
    return f"{a / b:.{digits}f}" if a is not None and b else "–"


def open_figures(open_rows, targets, cfg):
    """Per server: capacity at SLO per (conns, close), and the point at the fixed load."""
    out = {}
    for s in targets:
        f = {}
        for conns in cfg.open_conns:
            rs = [r for r in open_rows if r["server"] == s and r["conns"] == conns
                  and not r["close"]]
            f[("cap", conns)] = cap_cell(rs)
            f[("low", conns)] = min((r["offered_rps"] for r in rs), default=None)
        if cfg.churn_conns:
            rs = [r for r in open_rows if r["server"] == s and r["close"]]
            f[("cap", "churn")] = cap_cell(rs)
            f[("fixed", "churn")] = [r for r in rs if r.get("fixed")]
        many = max(cfg.open_conns) if cfg.open_conns else None
        f[("fixed", many)] = [r for r in open_rows if r["server"] == s and r["conns"] == many
                              and not r["close"] and r.get("fixed")]
        out[s] = f
    return out


def cap_cell(rows):
    """(capacity or None, text for the table)."""
    if not rows:
        return None, "–"
    if all(r["status"] == "refused" for r in rows):
        return None, "refused"
    best, bound = capacity(rows)
    if best is None:
        low = min(r["offered_rps"] for r in rows)
        why = "client-bound" if any(r["status"] == "client_bound" for r in rows) else \
            f"< {k(low)}"
        return None, why
    return best, ("≥ " if bound else "") + k(best)


def cpu_cell(rows):
    """(CPU µs per request at the fixed load, text): the mean of its measurements, with
    their spread; or why there is none."""
    if not rows:
        return None, "–"
    v, spread = fixed_cpu(rows)
    if v is None:
        return None, rows[0]["status"].replace("_", "-")
    mark = "" if all(r["status"] == "ok" for r in rows) else " (missed SLO)"
    noise = f" ±{spread / 2:.0%}" if spread is not None else ""
    return v, f"{v:.1f}{noise}{mark}"


def softirq_mean(rows):
    vals = [r["softirq_us_per_req"] for r in rows or [] if r.get("softirq_us_per_req")
            is not None and r["status"] in ("ok", "over")]
    return sum(vals) / len(vals) if vals else None


def headline_section(cfg, open_rows, targets, cap_desc):
    """The capacity-at-SLO table and CPU per request at the fixed load, with ratios."""
    fig = open_figures(open_rows, targets, cfg)
    many = max(cfg.open_conns)
    peers = [p for p in RATIO_PEERS if p in targets]
    quotas = {r["cpu_quota"] for r in open_rows if r.get("capped") and r.get("cpu_quota")}
    quota = max(quotas) if quotas else None
    if quota and not cap_desc:  # a replot: the CSV says what the cap was
        cap_desc = f"{quota:.0%} of a core (a cgroup CPU quota)"
    lines = ["## Capacity at SLO and CPU per request, open loop", "",
             f"bench/loadgen offers a fixed rate over N established keep-alive connections "
             f"(opened before the window; each sends at rate ÷ N), {cfg.open_secs:g} s measured "
             f"after {cfg.open_warm:g} s of warm-up; latency from each request's scheduled time. "
             f"**Capacity at SLO**: the highest offered rate at which achieved ≥ "
             f"{SLO_ACHIEVED:.0%} of offered, p99 ≤ {SLO_P99_MS:g} ms, no errors, the client "
             f"kept up. "
             + (f"The server's CPU is capped at {cap_desc}, so one client core outruns every "
                f"server: capacity per CPU-second = capacity ÷ {quota:g}. "
                if quota else "The server is not CPU-capped. ")
             + f"**CPU µs/req** is the server's own CPU (all threads, over exactly the window) "
             f"per request at a fixed {cfg.fixed_rps:,.0f} req/s over {many:,} connections"
             + (f" (churn: {cfg.churn_fixed_rps:,.0f} new connections/s)" if cfg.churn_conns
                else "")
             + "; softirq on the server's core is shown apart. Ratios: × "
             + " and × ".join(peers) + " are the server's figure over the peer's in this run "
             "(capacity: higher is better; CPU: lower is better). 'refused': the server did not "
             "hold the connections; 'client-bound': loadgen could not keep its schedule, so "
             "no server figure.", ""]
    head = ["server"] + [f"capacity @ {c:,}" for c in cfg.open_conns]
    if quota:
        head.append(f"per CPU-s @ {many:,}")
    head += [f"capacity × {p}" for p in peers]
    if cfg.churn_conns:
        head.append("churn capacity")
    head += [f"CPU µs/req @ {many:,}", "softirq µs/req"] + [f"CPU × {p}" for p in peers]
    if cfg.churn_conns:
        head.append("churn CPU µs/req")
    lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for s in targets:
        f = fig[s]
        cells = [s if s in cfg.peers else f"**{s}**"]
        cells += [f[("cap", c)][1] for c in cfg.open_conns]
        cap_many = f[("cap", many)][0]
        if quota:
            cells.append(k(cap_many / quota) if cap_many else "–")
        cells += [ratio(cap_many, fig[p][("cap", many)][0]) for p in peers]
        if cfg.churn_conns:
            cells.append(f[("cap", "churn")][1])
        cpu, text = cpu_cell(f[("fixed", many)])
        cells.append(text)
        cells.append(n_auto(softirq_mean(f[("fixed", many)])))
        cells += [ratio(cpu, cpu_cell(fig[p][("fixed", many)])[0]) for p in peers]
        if cfg.churn_conns:
            cells.append(cpu_cell(f[("fixed", "churn")])[1])
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += idle_lesson(fig, many, cfg)
    return lines


def idle_lesson(fig, many, cfg):
    """Gammo, Brecht et al. (OLS 2004) and Chandra & Mosberger (2001): with many connections
    held, a model whose every wait walks all of them falls far behind epoll. Stated from
    this run's figures, whichever way they fall."""
    few = min(cfg.open_conns)
    if few == many or "epoll" not in fig:
        return []
    e_many = fig["epoll"][("cap", many)][0]
    said, ratios = [], []
    for s in ("poll", "busypoll", "select"):
        if s not in fig:
            continue
        (_, t_few), (c_many, t_many) = fig[s][("cap", few)], fig[s][("cap", many)]
        at_few = f" (at {few:,} connections: {t_few})"
        if c_many is not None:
            rel = f", {c_many / e_many:.2f}× epoll's {k(e_many)}" if e_many else ""
            said.append(f"{s}'s capacity at {many:,} connections is {k(c_many)}{rel}{at_few}")
            if e_many and s != "select":
                ratios.append(c_many / e_many)
        elif t_many.startswith("<"):
            # Not even the lowest rate tried met the SLO.
            said.append(f"{s} met the SLO at no rate tried at {many:,} connections ({t_many} "
                        f"req/s){at_few}")
            if e_many and s != "select":
                ratios.append(fig[s][("low", many)] / e_many)  # at most this
        else:
            said.append(f"{s} at {many:,} connections: {t_many}{at_few}")
    if not said:
        return []
    text = "**The idle-connection lesson under open load.** " + "; ".join(said) + "."
    if e_many:
        text += f" epoll held {k(e_many)} at {many:,} connections."
    if ratios:
        if all(r < 0.5 for r in ratios):
            text += (" As Gammo, Brecht et al. (OLS 2004) and Chandra & Mosberger (2001) "
                     "found with httperf, the models that scan every connection on every wait "
                     "fall far below epoll once thousands of connections are held.")
        else:
            text += (" Here they do not fall far (below half) of epoll's, unlike what Gammo, "
                     "Brecht et al. (OLS 2004) and Chandra & Mosberger (2001) found with "
                     "httperf: see the CPU per request, which shows the scans' cost.")
    return [text, ""]


def closed_section(cfg, rows, targets, sizes):
    med = closed_medians(rows, ("server", "conns", "file"))
    peers = [p for p in RATIO_PEERS if p in targets]
    lines = ["## Closed loop (wrk): wrk's peak, one point per server", "",
             f"wrk (`-t{len(cfg.client_cores)}`, keep-alive, `--latency`) on CPU "
             f"{','.join(map(str, cfg.client_cores))}, server uncapped on CPU "
             f"{','.join(map(str, cfg.server_cores))}; {cfg.warm:g} s warm-up, then "
             f"{cfg.secs:g} s measured, {cfg.reps} repetition(s). Medians; req/s also min–max. "
             "**× peer**: the median req/s over the peer's at the same point. CPU µs (the "
             "server's, all threads, from right before wrk starts to right before it stops: "
             "wrk's connects are inside, as wrk cannot open them earlier), softirq µs on the "
             "server's core, ctxsw and syscalls are per request; **util** the server's CPU "
             "over the window (1.0 = one core); **wrk** its own CPU share: at ≥ 0.9 wrk was the "
             "limit (flagged *wrk-bound*: that req/s is wrk's, not the server's). Latency is "
             "closed-loop (coordinated omission): the open-loop section is the one to read "
             "for latency.", ""]
    trimmed = [f"`{f}` at c={c}" for c in cfg.conns for f in cfg.files if cfg.skip(c, f)]
    if trimmed:
        lines += [f"Not measured: {', '.join(trimmed)} (`BENCH_TRIM=0` runs it).", ""]
    for file in cfg.files:
        lines += [f"### {file} ({sizes.get(file, 0):,} B)", ""]
        head = ["conns", "server", "req/s (min–max)"] + [f"× {p}" for p in peers] + [
            "MB/s", "p99 ms", "CPU µs/req", "softirq µs", "util", "syscalls/req",
            "ctxsw/req", "RSS KiB", "threads", "wrk", "errors"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|---:|---|" + "---:|" * (len(head) - 2))
        for conns in cfg.conns:
            for s in targets:
                m = med.get((s, conns, file))
                if not m:
                    continue
                name = f"**{s}**" if s not in cfg.peers else s
                rng = f" ({n(m['rps_min'])}–{n(m['rps_max'])})" if m["reps"] > 1 else ""
                errs = "0" if not (m["errors"] or m["non2xx"]) else f"{m['errors']}/{m['non2xx']}"
                wrk = n_auto(m["wrk_cpu"]) + (" *wrk-bound*" if m["wrk_bound"] else "")
                cells = [f"{conns:,}", name, f"{n(m['rps'])}{rng}"]
                # A req/s that measured wrk is no server's figure: no ratio from it.
                ref_bound = {p: (med.get((p, conns, file)) or {}).get("wrk_bound") for p in peers}
                cells += ["wrk-bound" if m["wrk_bound"] or ref_bound[p] else
                          ratio(m["rps"], (med.get((p, conns, file)) or {}).get("rps"))
                          for p in peers]
                cells += [n(m["mbps"]), n_auto(m["p99_ms"]), n_auto(m["cpu_us_per_req"]),
                          n_auto(m["softirq_us_per_req"]), n_auto(m["server_util"]),
                          n_auto(m["syscalls_per_req"]), n_auto(m["ctxsw_per_req"]),
                          n(m["rss_kib"]), n(m["threads"]), wrk, errs]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def write_summary(path, cfg, rid, rows, idle_rows, open_rows, sizes, syscalls, failures,
                  notes, elapsed, cap_desc, efficiency_lines=()):
    targets = cfg.servers + cfg.peers
    lines = [f"# c10k bench: {rid}", ""]
    took = f" · took {fmt_duration(elapsed)}" if elapsed is not None else ""
    lines.append(f"`make bench{'' if cfg.mode == 'full' else '-' + cfg.mode}` · "
                 f"{rid[:10]}{took} · machine and versions in `env.txt` · method in "
                 "docs/bench.md")
    lines.append("")
    sys_note = {"perf": "counted by `perf stat -e raw_syscalls:sys_exit` during the run",
                # runs from before bench/syscalls.py (replot):
                "strace": "counted by `strace -c -f` on a separate 1 s run (perf could not "
                          "attach here), so they come from a slowed server",
                "none": "not counted (BENCH_PERF=0, or perf could not attach here)",
                "remote": "not counted: the server ran on another host (BENCH_SERVER_HOST), "
                          "where perf is not attached"}[syscalls]
    tuning = ("" if "nginx" not in getattr(cfg, "base_peers", cfg.peers)
              else " (nginx tuned for static files)"
              if cfg.nginx_tuned else " (nginx plain)")
    lines += [f"Servers: {' '.join(cfg.servers)}; peers, on the same cores as ours: "
              f"{', '.join(cfg.peers)}{tuning}. "
              f"Server on CPU {','.join(map(str, cfg.server_cores))}, clients on CPU "
              f"{','.join(map(str, cfg.client_cores))} (`taskset`). Syscalls {sys_note}."
              + (f" The server's CPU read {cfg.cpu_read}." if getattr(cfg, "cpu_read", None)
                 else ""), ""]
    lines += list(efficiency_lines)
    if open_rows:
        lines += headline_section(cfg, open_rows, targets, cap_desc)
    if rows:
        lines += closed_section(cfg, rows, targets, sizes)
    if idle_rows:
        lines += idle_section(cfg, idle_rows, targets)
    if notes:
        lines += ["## Notes", ""] + [f"- {x}" for x in notes] + [""]
    if failures:
        lines += ["## Failures", ""]
        lines += [f"- {what}: {why}" for what, why in failures]
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def rss_slope(points):
    """Least-squares slope of RSS (KiB) over idle connections held: what one more held
    connection costs, without the fixed part that peak ÷ N spreads over the connections."""
    pts = [(x, y) for x, y in points if x is not None and y is not None]
    if len(pts) < 2 or len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


def idle_slopes(idle_rows, servers):
    out = {}
    for s in servers:
        pts = [(r["idle_open"] if r["idle_open"] is not None else r["idle"], r["rss_kib"])
               for r in idle_rows if r["server"] == s]
        out[s] = rss_slope(pts)
    return out


def idle_section(cfg, idle_rows, servers):
    med = closed_medians(idle_rows, ("server", "idle"))
    steps = sorted({r["idle"] for r in idle_rows})
    select_max = max((r["idle"] for r in idle_rows if r["server"] == "select"), default=None)
    select_note = (f"`select` is swept only up to M={select_max:,}: it cannot hold an fd at "
                   "or above FD_SETSIZE (1024)." if select_max is not None else "")
    slopes = idle_slopes(idle_rows, servers)
    lines = ["## Idle connections: 100 busy while M idle keep-alive connections are held", "",
             "wrk drives 100 connections on `index.html` while `bench/idlers` holds M others "
             "open and silent (each sent one request and read its answer). Cells: median req/s "
             "and, in brackets, the ratio to the same server at M=0; then CPU µs per request at "
             "the largest M. A model whose every wait walks all its connections (select, poll, "
             "busypoll) slows down as M grows. **RSS per idle connection** is the slope of RSS "
             "over the connections held (least squares over the steps), not peak ÷ N. "
             + select_note, "",
             "| server | " + " | ".join(f"M={m:,}" for m in steps) +
             " | CPU µs/req at top M | RSS per idle conn (KiB) |",
             "|---|" + "---:|" * (len(steps) + 2)]
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
        top = max((m for m in steps if (s, m) in med), default=None)
        cpu_top = med[(s, top)]["cpu_us_per_req"] if top is not None else None
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {n_auto(cpu_top)} | "
                     f"{n_auto(slopes[s]) if slopes[s] is not None else '–'} |")
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


def kernel_config(key):
    """A kernel build option's value (CONFIG_HZ: the scheduler tick, on which a CFS quota
    is enforced), from /boot/config-RELEASE or /proc/config.gz; "unknown" without either."""
    import gzip

    paths = [(f"/boot/config-{platform.release()}", open), ("/proc/config.gz", gzip.open)]
    for path, opener in paths:
        try:
            with opener(path, "rt") as f:
                for line in f:
                    if line.startswith(key + "="):
                        return line.split("=", 1)[1].strip() + f" ({path})"
        except OSError:
            continue
    return "unknown"


def cpu_model():
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def kernel_cmdline():
    """The kernel's own parameters: what follows a bare "--" goes to init, not the kernel."""
    return _read("/proc/cmdline").split(" -- ")[0]


def steal_share():
    """Share of all CPU time stolen by the hypervisor since boot (/proc/stat)."""
    for line in _read("/proc/stat").splitlines():
        if line.startswith("cpu "):
            vals = [int(v) for v in line.split()[1:]]
            return f"{vals[7] / max(sum(vals[:8]), 1):.2%} since boot" if len(vals) > 7 else "?"
    return "unavailable"


def hosts(cfg):
    """env.txt's lines for every host a run used: its command prefix, kernel and CPU, read
    through the prefix (the harness's own machine: "here")."""
    where = [("server host", getattr(cfg, "server_host", []))] + \
        [(f"client host {i + 1}", h) for i, h in enumerate(getattr(cfg, "client_hosts", []))]
    if not any(h for _, h in where):
        return []
    # One line each: kernel, CPU model, CPUs, the device the host reaches the server
    # through (lo, a veth, a NIC), and "veth" if it is one.
    probe = ('echo "$(uname -r)"; '
             'echo "$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2)"; echo "$(nproc --all)"; '
             f'dev=$(ip -o route get {shlex.quote(cfg.server_addr)} | '
             'sed -n "s/.* dev \\([^ ]*\\).*/\\1/p"); echo "$dev"; '
             'echo "$(ip -o -d link show dev "$dev" | grep -ow veth | head -1)"')
    out = []
    for what, prefix in where:
        info = [s.strip() for s in procs.run_on(prefix, ["sh", "-c", probe])[1].splitlines()]
        info += [""] * (5 - len(info))
        kind = "loopback" if info[3] == "lo" else info[4]
        out.append((what, f"{' '.join(prefix) or 'here'}: kernel {info[0] or '?'}, cpu "
                          f"{info[1] or '?'}, {info[2] or '?'} CPUs; to {cfg.server_addr} "
                          f"via {info[3] or '?'}" + (f" ({kind})" if kind else "")))
    return out


def workers_note(cfg):
    """env.txt's line on how many workers each server ran."""
    w = getattr(cfg, "workers", [])
    if len(w) > 1:
        return (f"swept: {','.join(map(str, w))} (NAME-wN: N workers on the first N server "
                "cores; more workers than cores share them)")
    if w or len(cfg.server_cores) > 1:
        n = w[0] if w else len(cfg.server_cores)
        return (f"{n} (our --workers; nginx worker_processes, h2o num-threads, lighttpd "
                "server.max-worker)")
    return ("each model's default (one server core: no --workers; bin/prefork runs 4 "
            "processes, bin/actor 2 loops), one per peer")


def bin_hashes(repo, servers):
    out = []
    for s in servers:
        try:
            with open(os.path.join(repo, "bin", s), "rb") as f:
                out.append(f"{s}={hashlib.sha256(f.read()).hexdigest()[:12]}")
        except OSError:
            pass
    return " ".join(out)


def make_cflags(repo):
    """CFLAGS as the Makefile builds bin/*."""
    return _first(_cmd(["make", "-s", "-C", repo, "--no-print-directory",
                        "--eval=bench-print-cflags: ; @echo $(CFLAGS)", "bench-print-cflags"]))


def write_env(path, cfg, rid, syscalls, repo, sysctls_raised=None, targets=()):
    """Writes env.txt: the machine, the versions, the settings of the run."""
    import resource

    def dpkg(pkg):
        v = _cmd(["dpkg-query", "-W", "-f=${Version}", pkg])
        return v if v and "no packages" not in v else "not installed"

    def sysctl(key):
        now = _read("/proc/sys/" + key.replace(".", "/"))
        if sysctls_raised and key in sysctls_raised:
            old, new = sysctls_raised[key]
            return f"{new} for this run (was {old}; restored at the end)"
        return now

    commit = _cmd(["git", "-C", repo, "rev-parse", "HEAD"])
    dirty = _cmd(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"])
    peers = getattr(cfg, "base_peers", None) or getattr(cfg, "peers", ["nginx"])
    items = [
        ("run", rid),
        ("mode", cfg.mode),
        ("date", time.strftime("%Y-%m-%d %H:%M:%S %z")),
        ("git commit", commit + (" (with uncommitted changes)" if dirty else "")),
        ("kernel", " ".join(platform.uname()[:3]) + " " + platform.uname().version),
        ("kernel command line", kernel_cmdline()),
        ("CONFIG_HZ", kernel_config("CONFIG_HZ")),
        ("cpu", cpu_model()),
        ("cores", f"{os.cpu_count()} online, {len(cfg.cpus)} usable "
                  f"({','.join(map(str, cfg.cpus))})"),
        ("steal time", steal_share()),
        ("pinning", f"servers and peers on CPU {','.join(map(str, cfg.server_cores))} "
                    f"(taskset); wrk -t{len(cfg.client_cores)}, loadgen, idlers and the "
                    f"harness on CPU {','.join(map(str, cfg.client_cores))}"
                    + (" (one core: shared!)" if cfg.server_cores == cfg.client_cores else "")),
        ("server workers", workers_note(cfg)),
        ("server CPU read", getattr(cfg, "cpu_read", "per process here")),
        ("loadgen instances", f"{getattr(cfg, 'client_instances', 1)} per point, each its "
                              "share of the connections and the rate, histograms merged "
                              "(loadgen --merge)"),
        ("server address", getattr(cfg, "server_addr", "127.0.0.1")
         + (" (loopback)" if getattr(cfg, "server_addr", "127.0.0.1").startswith("127.")
            else "")),
    ] + hosts(cfg) + [
        ("load average at start", _read("/proc/loadavg")),
        ("cpu pressure at start", _first(_read("/proc/pressure/cpu"))),
        ("memory", _first(_read("/proc/meminfo"))),
        ("glibc", _first(_cmd(["ldd", "--version"]))),
        ("compiler", _first(_cmd([os.environ.get("CC", "cc"), "--version"]))),
        ("CFLAGS", make_cflags(repo)),
        ("bin/* sha256", bin_hashes(repo, getattr(cfg, "base_servers", cfg.servers))),
        ("wrk", _first(_cmd(["wrk", "-v"])) + f" (package {dpkg('wrk')})"),
        ("nginx", _first(_cmd([cfg.nginx, "-v"])) + f" ({cfg.nginx}, package "
                  f"{dpkg('nginx-light')}, "
                  f"{'tuned for static files' if getattr(cfg, 'nginx_tuned', False) else 'plain'})"),
        ("h2o", (_first(_cmd(["h2o", "--version"])) + f" (package {dpkg('h2o')})")
         if "h2o" in peers else "not run"),
        ("lighttpd", (_first(_cmd(["lighttpd", "-v"])) + f" (package {dpkg('lighttpd')})")
         if "lighttpd" in peers else "not run"),
        ("liburing", dpkg("liburing-dev")),
        ("http-parser", dpkg("libhttp-parser-dev")),
        ("python", platform.python_version()),
        ("gnuplot", _first(_cmd(["gnuplot", "--version"]))),
        ("perf", _first(_cmd(["perf", "--version"]))),
        ("syscall counting", syscalls),
        ("RLIMIT_NOFILE", "%d soft, %d hard" % resource.getrlimit(resource.RLIMIT_NOFILE)),
        ("net.core.somaxconn", sysctl("net.core.somaxconn")),
        ("net.ipv4.tcp_max_syn_backlog", sysctl("net.ipv4.tcp_max_syn_backlog")),
        ("net.ipv4.tcp_syncookies", _read("/proc/sys/net/ipv4/tcp_syncookies")),
        ("net.ipv4.tcp_tw_reuse", _read("/proc/sys/net/ipv4/tcp_tw_reuse")),
        ("net.ipv4.ip_local_port_range", _read("/proc/sys/net/ipv4/ip_local_port_range")),
        ("io_uring_disabled", _read("/proc/sys/kernel/io_uring_disabled")),
        ("servers", " ".join(targets or cfg.servers)),
        ("closed loop", f"conns {','.join(map(str, cfg.conns))} x {','.join(cfg.files)} x "
                        f"{cfg.reps} rep(s), {cfg.secs:g} s after {cfg.warm:g} s warm-up"),
        ("idle sweep", f"M={','.join(map(str, cfg.idle))} x {cfg.idle_reps} rep(s)"
                       if cfg.idle_reps and cfg.idle else "none"),
        ("open loop", (f"conns {','.join(map(str, cfg.open_conns))}, from "
                       f"{cfg.open_start:g} req/s x{cfg.open_step:g}, {cfg.open_refine} "
                       f"refinements, {cfg.open_secs:g} s windows after {cfg.open_warm:g} s; "
                       f"churn at {cfg.churn_conns or 'none'}; "
                       + (f"CPU quota {cfg.quota:g} of a core (capped: nr_throttled and "
                          "throttled_ms per point in openloop.csv)" if cfg.quota > 0 else
                          "server uncapped (no CPU quota)")
                       + f"; fixed load {cfg.fixed_rps:g} req/s")
         if getattr(cfg, "open_conns", None) else "none"),
        ("loadgen scheduling", "SCHED_FIFO priority 50 (chrt; BENCH_CLIENT_RT)"
         if getattr(cfg, "client_rt", False) else "ordinary (SCHED_OTHER)"),
        ("CPU pressure per point", "column cpu_pressure of results.csv, idle.csv and "
                                   "openloop.csv (PSI 'some', share of the window)"),
        ("BENCH_SLOW", ",".join(k if v is None else f"{k}:{v}" for k, v in cfg.slow.items())
         or "none"),
    ]
    width = max(len(k) for k, _ in items)
    with open(path, "w") as f:
        for k, v in items:
            v = re.sub(r"\s+", " ", str(v))  # one line per item, whatever a tool printed
            f.write(f"{k + ':':<{width + 1}} {v}\n")
    return width


def append_env_end(path, width):
    """The load average at the end of the run: with the one at its start it brackets what
    else the machine was doing meanwhile (the 15-minute figure covers most of a full run)."""
    with open(path, "a") as f:
        f.write(f"{'load average at end:':<{width + 1}} {_read('/proc/loadavg').strip()}\n")
