"""scaling.py - BENCH_WORKERS=1,2,4,...: every server and peer measured once per worker
count (as NAME-wN), read as a scaling curve per server.

    throughput   per worker count, in each keep-alive workload of the efficiency grid: the
                 capacity at SLO where the server missed it below the client's ceiling (the
                 p99 crossing, efficiency.capacity()), else the highest rate that met it
    limited by   what stopped it: "client-bound" (it met the SLO at every rate the client
                 could offer: the figure is the client's, a lower bound for the server),
                 "server CPU" (at the first rate it missed, its CPU was >= SERVER_CPU_BOUND
                 of the cores it was given), "SLO miss" (it missed with CPU to spare:
                 latency from waiting, a lock, a shared core)
    ideal        the fewest workers' throughput times the cores the others were given over
                 its own (N workers run on the first N server cores): linear in cores, flat
                 where more workers only share the same cores
    CPU/request  at the highest rate that met the SLO; ideal: flat

On a machine with one server core (this 2-core VM) every worker count shares that core:
the curve says what more workers cost there, not how the model scales; both summary.md and
the plot say so.
"""

import os
import re
import statistics

import efficiency
import plots
import report

WORKERS_SUFFIX = re.compile(r"^(.+)-w(\d+)$")
# Server CPU over the window at or above this share of the cores it had: it was CPU-bound.
SERVER_CPU_BOUND = 0.85


def split(name):
    """("epoll", 2) from "epoll-w2"; (name, None) for a name without a worker count."""
    m = WORKERS_SUFFIX.match(name)
    return (m[1], int(m[2])) if m else (name, None)


def cores_given(cfg, workers):
    return min(workers, len(cfg.server_cores))


def limit_at(rows, server, w, rate, cores):
    """Why server missed at rate: its median CPU over the window against its cores."""
    util = [r["server_util"] for r in rows if r["server"] == server and
            efficiency.row_workload(r) == w and r["offered_rps"] == rate and
            efficiency.usable(r) and r.get("server_util") is not None]
    if util and statistics.median(util) >= SERVER_CPU_BOUND * cores:
        return "server CPU"
    return "SLO miss"


def point(cfg, fig, rows, server, w, workers):
    """One point of a curve: {workers, cores, thr, how, cpu, limit}, or None unmeasured."""
    pts = sorted((rate, f) for (s, c, rate), f in fig.items() if s == server and c == w)
    if not pts:
        return None
    ceiling = max((r.get("ceiling") or 0 for r in rows if efficiency.row_workload(r) == w),
                  default=0)
    cores = cores_given(cfg, workers)
    met = [rate for rate, f in pts if f["n"] and not f["missed"]]
    missed = [rate for rate, f in pts if f["missed"]]
    mid = efficiency.capacity(fig, server, w, ceiling)[2]
    best = max(met) if met else None
    if not missed:
        thr, how, limit = best, "highest rate met" if best else "no usable point", \
            "client-bound"
    elif mid:
        thr, how, limit = mid, "capacity at SLO", limit_at(rows, server, w, min(missed), cores)
    else:
        below = [r for r in met if r < min(missed)]
        thr, how = (max(below), "highest rate met") if below else (None, "missed the lowest")
        limit = limit_at(rows, server, w, min(missed), cores)
    at = dict(pts).get(max([r for r in met if thr and r <= thr], default=best))
    cpu = at["cpu_us_per_req"][0] if at and at["cpu_us_per_req"] else None
    return dict(workers=workers, cores=cores, thr=thr, how=how, cpu=cpu, limit=limit)


def curves(cfg, rows):
    """{workload: {base server: [point()...] by worker count}} for the keep-alive workloads."""
    eff = [r for r in rows if r.get("phase") in ("grid", "knee")]
    fig = efficiency.summarise(eff)
    out = {}
    for w in efficiency.workloads(cfg):
        if w[1]:
            continue  # churn: its own ceiling and costs; the curves are keep-alive's
        by = {}
        for name in cfg.servers + cfg.peers:
            base, workers = split(name)
            p = point(cfg, fig, eff, name, w, workers) if workers else None
            if p:
                by.setdefault(base, []).append(p)
        if by:
            out[w] = {b: sorted(ps, key=lambda p: p["workers"]) for b, ps in by.items()}
    return out


def ideal(ps):
    """The ideal throughput at each point: the fewest workers' figure x cores / its cores."""
    first = next((p for p in ps if p["thr"]), None)
    return [first["thr"] * p["cores"] / first["cores"] if first else None for p in ps]


def shared_note(cfg):
    """What the plot and the table say when workers outnumber the server's cores."""
    most = max(cfg.workers)
    n = len(cfg.server_cores)
    if most <= n:
        return ""
    return (f"Only {n} server core{'s' if n > 1 else ''} (CPU "
            f"{','.join(map(str, cfg.server_cores))}) here: {most} workers share "
            f"{'them' if n > 1 else 'it'}, so the curve shows what more workers cost on the "
            "same cores, not how the model scales; the ideal line is flat there. "
            "docs/lab-bench.md runs it where the cores exist.")


def section(cfg, rows):
    """summary.md's scaling table (BENCH_WORKERS with more than one count)."""
    if len(getattr(cfg, "workers", [])) < 2:
        return []
    cs = curves(cfg, rows)
    if not cs:
        return []
    lines = ["## Scaling with workers", "",
             f"Every server and peer once per worker count ({','.join(map(str, cfg.workers))}; "
             "`BENCH_WORKERS`), N workers pinned to the first N server cores: our `--workers N`, "
             "nginx `worker_processes`, h2o `num-threads`, lighttpd `server.max-worker`. "
             "Throughput: capacity at SLO where it was missed below the client's ceiling, "
             "else the highest rate that met it (medians of the efficiency grid). Ideal: the "
             "fewest workers' throughput × the cores given over its cores. CPU µs/req at the "
             "highest rate met. Limited by: client-bound (met the SLO at every rate the client "
             "offered), server CPU (its cores were ≥ "
             f"{SERVER_CPU_BOUND:.0%} busy where it missed), SLO miss (missed with CPU to "
             "spare).", ""]
    note = shared_note(cfg)
    if note:
        lines += [f"**{note}**", ""]
    for w, by in cs.items():
        lines += [f"### {efficiency.title(w)[0].upper() + efficiency.title(w)[1:]}", "",
                  "| server | workers | cores | throughput req/s | ideal | CPU µs/req | "
                  "limited by |", "|---|---:|---:|---:|---:|---:|---|"]
        for base, ps in by.items():
            for p, ide in zip(ps, ideal(ps)):
                thr = f"{report.k(p['thr'])} ({p['how']})" if p["thr"] else p["how"]
                lines.append(f"| {base} | {p['workers']} | {p['cores']} | {thr} | "
                             f"{report.k(ide) if ide else '–'} | "
                             f"{report.n_auto(p['cpu']) if p['cpu'] else '–'} | "
                             f"{p['limit']} |")
        lines.append("")
    return lines


def plot(run_dir, cfg, rows):
    """plots/scaling_cN: one panel per server, throughput (solid, labelled with what
    limited each point) and its ideal (dashed) against workers, CPU µs per request on the
    right axis (dotted). One key for the figure, beside its title, and no axis titles in
    the panels (the key says which axis is which): inside a panel they covered the labels
    of the points, and beside it one panel's right axis title ran into the next one's."""
    if len(getattr(cfg, "workers", [])) < 2:
        return
    for w, by in curves(cfg, rows).items():
        names = list(by)
        cols = min(4, len(names))
        nrows = -(-len(names) // cols)
        height = 200 + 330 * nrows
        # The figure's one key, drawn with the first panel that has both figures: gnuplot
        # leaves out of a key what has no point. (A key at screen coordinates still fits
        # into one panel's width: one column, in the top left corner, beside the title.)
        keyed = next((i for i, b in enumerate(names) if any(p["thr"] for p in by[b])
                      and any(p["cpu"] for p in by[b])), 0)
        key = (f"set key at screen 0.01, screen {1 - 6 / height:.4f} left top vertical Left "
               "reverse font ',9' samplen 3 spacing 1 noenhanced\n")
        data, cmds = [], []
        for i, base in enumerate(names):
            ps = by[base]
            block = plots.block_name("s", base)
            data.append(f"{block} << EOD")
            for p, ide in zip(ps, ideal(ps)):
                vals = [p["workers"], p["thr"], ide, p["cpu"]]
                # the label's height last: on the axis where no rate met the SLO
                data.append(" ".join("?" if v is None else f"{v:.6g}" for v in vals)
                            + f' "{p["limit"]}" {p["thr"] or 0:.6g}')
            data.append("EOD")
            c = plots.colour(base, names)
            # A panel with no figure on an axis gets a fixed range there: gnuplot stops
            # the whole script at an axis it cannot autoscale.
            empty, no_cpu = not any(p["thr"] for p in ps), not any(p["cpu"] for p in ps)
            cmds.append(
                ("unset label 99\n" if i else "")  # the footnote once
                + (key if i == keyed else "unset key\n")
                + ("set yrange [0:1]\nset label 98 'no rate met the SLO' at graph 0.5, "
                   "graph 0.5 center font ',9'\n" if empty else "")
                + ("set y2range [0:1]\n" if no_cpu else "")
                + f"set title {plots.gp_str(base)} font ',11' noenhanced\n"
                f"plot {block} using 1:2 with linespoints lc rgb '{c}' lw 2 pt 7 "
                "title 'throughput, requests/s (left axis)', "
                f"{block} using 1:3 with lines lc rgb '{c}' dt 2 lw 1 title 'ideal', "
                f"{block} using 1:4 axes x1y2 with linespoints lc rgb '#777777' dt 3 pt 6 "
                "title 'CPU µs per request (right axis)', "
                + labels(block, cfg.workers)
                + ("\nunset label 98\nset yrange [0:*]" if empty else "")
                + ("\nset y2range [0:*]" if no_cpu else ""))
        xs = sorted(set(cfg.workers))
        note = (f"Open loop, {efficiency.title(w)}: throughput is the capacity at SLO (p99 ≤ "
                "10 ms, achieved ≥ 99%) or the highest rate met; each point labelled with what "
                "limited it. N workers on the first N server cores. " + shared_note(cfg))
        setup = plots.COMMON_SETUP + [
            "set xlabel 'workers' font ',9'", "set ytics nomirror",
            "set y2tics font ',8'", "set tics font ',8'", "set yrange [0:*]",
            "set y2range [0:*]", "set offsets 0, 0, graph 0.15, 0",
            f"set xrange [{min(xs) - 0.6:g}:{max(xs) + 1.1:g}]",
            "set xtics (" + ", ".join(f'"{x}" {x}' for x in xs) + ")",
            f"set label 99 {plots.gp_str(plots.wrap(note))} at screen 0.01, screen "
            f"{40 / height:.3f} font ',9' noenhanced",
            f"set multiplot layout {nrows},{cols} title "
            f"{plots.gp_str('Scaling with workers, ' + efficiency.title(w))} font ',14' "
            f"margins 0.06,0.94,{120 / height:.3f},{1 - 95 / height:.3f} "
            f"spacing 0.14,{110 / height:.3f}",
        ]
        cmds.append("unset multiplot")
        plots.write_and_run(run_dir, f"scaling_{'churn' if w[1] else 'c'}{w[0]}",
                            {"data": data, "setup": setup, "plot": "\n".join(cmds)},
                            size=(1100, height))


def labels(block, workers):
    """What limited each point, over it (on the axis if it has no throughput): centred, but
    the last point's label starts at it, so that two neighbours' labels at the same height
    do not run into each other."""
    last = max(workers)
    out = []
    for cond, how in ((f"$1 == {last}", "left offset -0.3,1"),
                      (f"$1 != {last}", "center offset 0,1")):
        out.append(f"{block} using 1:6:({cond} ? stringcolumn(5) : '') with labels {how} "
                   "font ',8' notitle")
    return ", ".join(out)


def files(run_dir):
    """The scaling plots a run wrote (for tests)."""
    d = os.path.join(run_dir, "plots")
    return sorted(f for f in os.listdir(d) if f.startswith("scaling_")) \
        if os.path.isdir(d) else []
