"""efficiency.py - the open loop as efficiency curves, read against a null server.

A workload is (conns, close): N established keep-alive connections, or churn, N at a
time each carrying one request (`Connection: close`), a new connection per request.

    calibrate  bench/floor (the null server: one recv, one send, nothing else) in each
               workload, rates climbing x1.5 then bisected: the client's ceiling is
               the highest offered rate at which loadgen kept its schedule (not client-bound,
               achieved >= 99% of offered). A client-bound point at which loadgen had CPU to
               spare is measured again, up to twice: on a shared machine other work on the
               client core makes one window late, not loadgen's own limit.
    grid       every server, the floor and the peers, at fractions of that ceiling (make
               bench: 10, 50, 90%; churn 25, 50, 90%: the budget goes to repetitions
               and knees rather than rungs), uncapped, repetitions outermost so that a burst of someone
               else's work hits one repetition of everyone rather than every repetition of
               one server. A server that fell far behind at a rate skips the rates above it
               in that repetition (they are past its knee).
    knee       where a server missed the SLO below the ceiling, rates between its last pass
               and its first miss in steps of at most 10%, repeated; capacity at SLO is where
               the median p99 crosses 10 ms, interpolated (log p99 linear in rate).

Every figure is a median over repetitions with its interval from order statistics
(interval()). A ratio of two servers is paired (paired()): within one repetition both were
measured seconds apart, so the ratio of each repetition is taken and its median and interval
reported; a slow drift of the machine's load, which moves both, then cancels. "A is cheaper
than B" only where that interval lies wholly below 1 (dearer: above); otherwise no verdict.
"""

import math
import statistics
import time

import c10kutil
import openloop
import report

FRACTIONS = (0.10, 0.25, 0.50, 0.75, 0.90)
CEILING_START = 4000
CEILING_STEP = 1.5
CEILING_REFINE = 2
CEILING_TRIES = 3  # measurements of one calibration rate before it counts as missed
CEILING_RETRY_PAUSE_S = 1.0  # between them: a busy spell on the client core passes
FLOOR_BUSY = 0.8  # the null server's share of its cores above which a miss is its own
# Before the calibration: CPU pressure (PSI "some", 10 s average) at most this, waited for
# up to QUIET_WAIT_S. A run started while an earlier one's servers were still exiting
# measured a ceiling of 4,400 req/s at 100 connections, a tenth of what loadgen keeps here.
QUIET_PRESSURE = 5.0
QUIET_WAIT_S = 90
KNEE_STEP = 1.08  # at most 10% between rates near the knee
KNEE_POINTS = 5  # rates around the coarse grid's p99 crossing, KNEE_STEP apart
# A repetition stops climbing for a server whose answers fell below this share of the
# offered rate: every rate above is past its knee.
FAR_BEHIND = 0.5
# A grid point where loadgen fell behind with CPU to spare (other work on its core) is
# measured once more, up to this share of the grid's points, so that a busy spell costs a
# repetition its figure less often without letting a busy run overrun its time.
RETRY_SHARE = 0.15
LEVEL = 0.95
# Paired repetitions a verdict needs. The interval of n is min-max until n = 6, and where
# two servers do not differ at all, all n ratios fall on one side of 1, giving a false
# verdict, with probability 2^(1-n): 25% for 3, 6% for 5. The grid point the claims are
# read at (CLAIM_FRACTION) gets extra repetitions for that (BENCH_CLAIM_REPS).
MIN_VERDICT_N = 5
CLAIM_FRACTION = 0.5
FLOOR = "floor"

# ---- statistics -----------------------------------------------------------------------------


def coverage(n, k):
    """The probability that [x(k), x(n-k+1)] of n samples holds the population median:
    1 - 2 P(Binomial(n, 1/2) <= k - 1), whatever the distribution (order statistics)."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n


def interval(values, level=LEVEL):
    """(median, low, high, coverage) of values, or None without any: the widest k such
    that [x(k), x(n-k+1)] covers the median with at least `level`; with fewer than 6 values
    no pair reaches 95%, and the interval is [min, max] with its actual coverage (75% of
    3 values, 87.5% of 4, 93.75% of 5)."""
    xs = sorted(v for v in values if v is not None)
    n = len(xs)
    if not n:
        return None
    k = 1
    while k + 1 <= (n + 1) // 2 and coverage(n, k + 1) >= level:
        k += 1
    return statistics.median(xs), xs[k - 1], xs[n - k], coverage(n, k)


def ratio_interval(a, b):
    """a / b with the interval [a.low / b.high, a.high / b.low], from two interval()s."""
    if not a or not b or not b[0] or not b[1] or not b[2]:
        return None
    return a[0] / b[0], a[1] / b[2], a[2] / b[1]


def paired(rows, a, b, conns, rate, metric="cpu_us_per_req"):
    """interval() of a's metric over b's, repetition by repetition, at one point: the
    repetitions where both were usable; with their number appended."""
    by, w = {}, workload(conns)
    for r in rows:
        if (row_workload(r) == w and r["offered_rps"] == rate and usable(r)
                and r.get(metric) and r["server"] in (a, b)):
            by[(r["server"], r.get("rep"))] = r[metric]
    return ratio_by_key({rep: v for (s, rep), v in by.items() if s == a},
                        {rep: v for (s, rep), v in by.items() if s == b})


def ratio_by_key(a, b):
    """interval() of a[k] / b[k] over the keys (repetitions, rounds) both have, with their
    number appended; None if they share none."""
    ratios = [v / b[k] for k, v in a.items() if k in b and b[k]]
    iv = interval(ratios)
    return iv + (len(ratios),) if iv else None


def fmt_ratio(iv):
    """A paired ratio as the tools print it: 'median [low–high]  n=N  verdict'."""
    return f"{fmt_interval(iv, 2)}  n={iv[4]}  {verdict(iv)}" if iv else "–"


def verdict(iv):
    """'cheaper', 'dearer' or 'no verdict' from a paired ratio's interval (none from fewer
    than MIN_VERDICT_N repetitions)."""
    if not iv:
        return None
    if iv[4] < MIN_VERDICT_N:
        return "no verdict"
    return "cheaper" if iv[2] < 1 else "dearer" if iv[1] > 1 else "no verdict"


def compare(a, b):
    """'lower', 'higher' or 'overlap': a's interval against b's (None if either is missing)."""
    if not a or not b:
        return None
    if a[2] < b[1]:
        return "lower"
    if a[1] > b[2]:
        return "higher"
    return "overlap"


def fmt_interval(iv, digits=1):
    if not iv:
        return "–"
    return f"{iv[0]:.{digits}f} [{iv[1]:.{digits}f}–{iv[2]:.{digits}f}]"


def round2(x):
    """A rate to two significant figures (a grid that reads well and repeats exactly)."""
    return float(f"{x:.2g}")


def workload(conns, close=0):
    """A workload key: (connections, 1 for churn else 0); a bare int is keep-alive."""
    if isinstance(conns, tuple):
        return conns
    return (int(conns), int(float(close or 0)))


def row_workload(row):
    return workload(row["conns"], row.get("close") or 0)


def workloads(cfg):
    """The workloads of a run: each BENCH_OPEN_CONNS count kept alive, then churn."""
    out = [workload(c) for c in cfg.open_conns]
    if getattr(cfg, "churn_conns", 0):
        out.append(workload(cfg.churn_conns, 1))
    return out


def title(w):
    conns, close = workload(w)
    if close:
        return f"churn ({conns:,} at a time, a new connection per request)"
    return f"{conns:,} connections"


# ---- what a point says ----------------------------------------------------------------------


def usable(row):
    """A repetition whose figures are the server's: measured, the client kept up."""
    return row["status"] in ("ok", "over")


def missed(rows):
    """A grid or knee rate the server missed: most of its usable repetitions missed the
    SLO, or it refused or failed."""
    if any(r["status"] in ("refused", "failed") for r in rows):
        return True
    use = [r for r in rows if usable(r)]
    return bool(use) and sum(r["status"] == "over" for r in use) * 2 > len(use)


def summarise(rows):
    """Per (server, workload, offered rate): the interval of each figure over the usable
    repetitions, and how many were dropped as client-bound."""
    out = {}
    groups = {}
    for r in rows:
        groups.setdefault((r["server"], row_workload(r), r["offered_rps"]), []).append(r)
    for key, rs in groups.items():
        use = [r for r in rs if usable(r)]
        fig = {"n": len(use), "dropped": len(rs) - len(use), "missed": missed(rs),
               "status": sorted({r["status"] for r in rs}),
               "capped": any(r.get("capped") for r in rs),
               # loadgen's steady-state check failed: the window's halves differed.
               "unsteady": sum(r.get("steady") == 0 for r in use),
               "fraction": rs[0].get("fraction")}
        for m in ("cpu_us_per_req", "cpu_user_us_per_req", "cpu_sys_us_per_req", "p50_ms",
                  "p99_ms", "p999_ms"):
            fig[m] = interval([r.get(m) for r in use])
        fig["achieved"] = interval([r["achieved_rps"] / r["offered_rps"] for r in use])
        out[key] = fig
    return out


def crossing(points):
    """Capacity at SLO from [(rate, median p99, missed)] sorted by rate: where p99 crosses
    the SLO between the last rate met and the next missed, interpolated with log p99 linear
    in rate; the last rate met if the miss was not by p99 (too few answers)."""
    for (ra, pa, ma), (rb, pb, mb) in zip(points, points[1:]):
        if not ma and mb:
            if pa and pb and pb > openloop.SLO_P99_MS > pa:
                t = (math.log(openloop.SLO_P99_MS) - math.log(pa)) / (math.log(pb) - math.log(pa))
                return ra + t * (rb - ra)
            return ra
    return None


def capacity(fig, server, conns, ceiling):
    """(text, low, mid, high) of a server's capacity at SLO at one connection count: '≥
    ceiling' when it met the SLO at every rate measured; '< lowest' when it missed even the
    lowest; else the p99 crossing with its bracket: the nearest rates below and above it
    that most repetitions met and missed."""
    w = workload(conns)
    pts = sorted((rate, f["p99_ms"][0] if f["p99_ms"] else None, f["missed"])
                 for (s, c, rate), f in fig.items() if s == server and c == w)
    pts = [p for p in pts if p[1] is not None or p[2]]
    if not pts:
        return "–", None, None, None
    if not any(m for _, _, m in pts):
        return f"≥ ceiling ({report.k(ceiling)})", None, None, None
    if pts[0][2]:
        return f"< {report.k(pts[0][0])}", None, None, pts[0][0]
    mid = crossing(pts)
    low = max(r for r, _, m in pts if not m and r <= (mid or 0)) if mid else None
    high = min(r for r, _, m in pts if m)
    return (f"{report.k(mid)} [{report.k(low)}–{report.k(high)}]" if mid else "–",
            low, mid, high)


def knee_rates(lo, hi, fig, server, conns):
    """Up to KNEE_POINTS rates KNEE_STEP apart (3 significant figures), inside the grid's last
    pass lo and first miss hi (3% clear of each), the nearest to where the grid's medians put
    the p99 crossing (the geometric middle if they do not say)."""
    w = workload(conns)
    pts = sorted((rate, f["p99_ms"][0] if f["p99_ms"] else None, f["missed"])
                 for (s, c, rate), f in fig.items() if s == server and c == w)
    centre = crossing(pts) or math.sqrt(lo * hi)
    reach = int(math.log(hi / lo) / math.log(KNEE_STEP)) + 1
    inside = [k for k in range(-reach, reach + 1)
              if lo * 1.03 < centre * KNEE_STEP ** k < hi / 1.03]
    chosen = sorted(inside, key=abs)[:KNEE_POINTS]
    return sorted({float(f"{centre * KNEE_STEP ** k:.3g}") for k in chosen})


# ---- the runs -------------------------------------------------------------------------------


class Efficiency:
    """The calibration, grid and knee of one run, driven through the Bench's start/stop and
    open-loop point (bench.py)."""

    def __init__(self, bench, csv_path):
        self.b, self.cfg, self.csv = bench, bench.cfg, csv_path
        self.rows = []
        self.ceiling = {}  # workload -> rate
        self.retries_left = 0

    def point(self, started, w, rate, phase, rep, fraction=None):
        conns, close = w
        what = (f"{started[0].name} {'churn' if close else 'open'} c={conns} rate={rate:g} "
                f"{phase} rep {rep}")
        if self.b.cap:
            self.b.cap.add_session(started[0].proc.pid)
        row = self.b.open_point(started, conns, rate, bool(close), what)
        if row is None:
            return None
        row.update(phase=phase, rep=rep, fraction=fraction, ceiling=self.ceiling.get(w))
        self.rows.append(row)
        c10kutil.append_csv(self.csv, openloop.OPEN_HEADER, row)
        print(report.open_progress_line(row) + f" {phase} rep {rep}", flush=True)
        return row

    def kept(self, started, w, rate):
        """Whether loadgen kept its schedule against the floor at rate (a retry when it was
        late with CPU to spare: someone else's work on its core)."""
        for attempt in range(CEILING_TRIES):
            if attempt:
                time.sleep(getattr(self.cfg, "ceiling_retry_pause_s", CEILING_RETRY_PAUSE_S))
            row = self.point(started, w, rate, "ceiling", 0)
            if row is None:
                return False
            if row["status"] == "ok":
                return True
            # A miss by a null server far from busy is a stall of the machine (a 10 ms
            # one fails the SLO), as is a late client with CPU to spare: measured again.
            saturated = (row.get("client_cpu") or 0) >= openloop.CLIENT_SATURATED
            cores = len(getattr(started[0], "cores", None) or [0])  # one worker on each
            busy = (row.get("server_util") or 0) >= FLOOR_BUSY * cores
            stalled = row["status"] == "over" and not busy and \
                row["achieved_rps"] >= openloop.SLO_ACHIEVED * rate
            if saturated or (row["status"] != "client_bound" and not stalled):
                return False
        return False

    def calibrate(self):
        cfg = self.cfg
        if cfg.ceiling:
            # Given (BENCH_CEILING): a test, or a rerun at the rates of an earlier run.
            self.ceiling = {w: cfg.ceiling for w in workloads(cfg)}
            self.b.notes.append(f"the client's ceiling was given (BENCH_CEILING="
                                f"{cfg.ceiling:g}), not measured")
            return True
        self.wait_quiet(wait_s=getattr(cfg, "quiet_wait_s", QUIET_WAIT_S))
        started = self.b.start(FLOOR)
        if not started:
            return False
        try:
            for w in workloads(cfg):
                start = cfg.churn_start if w[1] else cfg.open_start
                rate, passed, failed = float(start), None, None
                while rate <= cfg.open_max:
                    if self.kept(started, w, rate):
                        passed = rate
                        rate = round2(rate * CEILING_STEP)
                    else:
                        failed = rate
                        if passed is not None:
                            break
                        rate = round2(rate / CEILING_STEP)
                        if rate < 500:
                            break
                for _ in range(CEILING_REFINE if passed and failed else 0):
                    mid = round2(math.sqrt(passed * failed))
                    if not passed < mid < failed:
                        break
                    if self.kept(started, w, mid):
                        passed = mid
                    else:
                        failed = mid
                if passed is None:
                    # No rate kept: the machine, not a server, limits loadgen here (seen
                    # while bin/fork's thousands of children from the idle sweep exited).
                    # A made-up ceiling would put the whole grid past every server's knee.
                    print(f"bench: loadgen kept its schedule at no rate down to {failed:,.0f} "
                          f"req/s against the null server, {title(w)}: the "
                          "machine is too busy; no efficiency curves there", flush=True)
                    self.b.notes.append(f"no client's ceiling, {title(w)}: "
                                        "loadgen kept its schedule at no rate")
                    continue
                self.ceiling[w] = passed
                print(f"bench: the client's ceiling, {title(w)}: "
                      f"{self.ceiling[w]:,.0f} req/s", flush=True)
        finally:
            self.b.stop(started)
        return True

    def wait_quiet(self, limit=QUIET_PRESSURE, wait_s=QUIET_WAIT_S):
        """Waits until other work on the machine has settled (CPU pressure at most limit)
        before the ceiling is measured, since every grid rate follows from it."""
        t0 = time.monotonic()
        p = c10kutil.psi_some_avg10() if wait_s else None
        while p is not None and p > limit and time.monotonic() - t0 < wait_s:
            time.sleep(2)
            p = c10kutil.psi_some_avg10()
        if p is not None and p > limit:
            self.b.notes.append(f"the calibration started with the CPU pressure at {p:.0f}% "
                                f"(PSI some avg10) after {wait_s} s of waiting for {limit:g}%")
        elif time.monotonic() - t0 > 1:
            print(f"bench: waited {time.monotonic() - t0:.0f} s for the machine to settle "
                  "before the calibration", flush=True)

    def grid_point(self, started, w, rate, rep, frac):
        """One grid point, measured again once if loadgen fell behind with CPU to spare; the
        repetition's figure is the usable one (summarise() and paired() skip the other)."""
        row = self.point(started, w, rate, "grid", rep, frac)
        if (row and row["status"] == "client_bound" and self.retries_left > 0
                and (row.get("client_cpu") or 0) < openloop.CLIENT_SATURATED
                and not openloop.overloaded(row)):
            self.retries_left -= 1
            row = self.point(started, w, rate, "grid", rep, frac) or row
        return row

    def fractions(self, w, only=None):
        """The grid's fractions in workload w: cfg.fractions, or for churn its own
        churn_fractions (its points cost a connection each; the budget goes to keep-alive's
        curves); only: of those, just these (the claims' repetitions)."""
        churn = getattr(self.cfg, "churn_fractions", None)
        mine = churn if w[1] and churn else self.cfg.fractions
        return [f for f in mine if only is None or f in only]

    def grid(self, targets, reps, fractions=None, first_rep=1, deadline=math.inf):
        cfg = self.cfg
        self.retries_left += int(RETRY_SHARE * reps * (len(targets) + 1) * sum(
            len(self.fractions(w, fractions)) for w in workloads(cfg)))
        for rep in range(first_rep, first_rep + reps):
            if time.monotonic() > deadline:
                self.b.notes.append(f"repetitions from {rep} on were not run: time budget")
                return
            for name in [FLOOR] + targets:
                started = self.b.start(name)
                if not started:
                    continue
                try:
                    for w in workloads(cfg):
                        if not started:
                            break  # it exited and would not start again
                        if w not in self.ceiling:
                            continue  # no ceiling measured there (calibrate())
                        for frac in self.fractions(w, fractions):
                            if not started[0].alive():
                                self.b.stop(started)
                                started = self.b.start(name)
                                if not started:
                                    break
                            rate = round2(frac * self.ceiling[w])
                            row = self.grid_point(started, w, rate, rep, frac)
                            if row is None or row["status"] in ("refused", "failed"):
                                break
                            if openloop.overloaded(row) and \
                                    row["achieved_rps"] < FAR_BEHIND * rate:
                                break
                finally:
                    if started:
                        self.b.stop(started)

    def knees(self, targets, reps, deadline):
        """Fine rates between each server's last pass and first miss below the ceiling."""
        fig = summarise([r for r in self.rows if r["phase"] == "grid"])
        plan = {}
        for name in targets:
            for w in workloads(self.cfg):
                pts = sorted((rate, f["missed"]) for (s, c, rate), f in fig.items()
                             if s == name and c == w)
                first = next((i for i, (_, m) in enumerate(pts) if m), None)
                if not first:  # none missed, or even the lowest did: no knee to find
                    continue
                lo, hi = pts[first - 1][0], pts[first][0]
                rates = knee_rates(lo, hi, fig, name, w)
                if rates:
                    plan.setdefault(name, []).append((w, rates))
        for rep in range(1, reps + 1):
            for name, work in plan.items():
                if time.monotonic() > deadline:
                    self.b.notes.append("the knee search stopped at its time budget")
                    return
                started = self.b.start(name)
                if not started:
                    continue
                try:
                    for w, rates in work:
                        for rate in rates:
                            self.point(started, w, rate, "knee", rep)
                finally:
                    self.b.stop(started)


# ---- summary.md -----------------------------------------------------------------------------


def section(cfg, rows, targets):
    """summary.md's efficiency section: calibration, CPU per request against the floor and
    the peers, latency, capacity at SLO; every figure a median with its interval."""
    if not rows:
        return []
    ceilings = {}
    for r in rows:
        if r.get("ceiling"):
            ceilings[row_workload(r)] = r["ceiling"]
    eff = [r for r in rows if r.get("phase") in ("grid", "knee")]
    fig = summarise(eff)
    reps = max((r.get("rep") or 0 for r in eff if r.get("fraction") != CLAIM_FRACTION),
               default=0)
    claim_reps = max((r.get("rep") or 0 for r in eff), default=0)
    capped = any(r.get("capped") for r in rows)
    cov = coverage(reps, 1) if reps else 0
    lines = [
        "## Efficiency curves, open loop" + (" (CAPPED: see notes)" if capped else ""), "",
        f"bench/loadgen offers fixed rates over N established keep-alive connections, "
        f"{cfg.open_secs:g} s measured after {cfg.open_warm:g} s of warm-up, every connection "
        f"primed first; the server "
        + ("CPU-capped (`BENCH_CPU_QUOTA`): every figure below is a capped one. " if capped
           else "uncapped on its core. ")
        + "**floor** is bench/floor, the null server (one recv, one send of a prebuilt "
        "answer): the kernel's share of a request. **Ceiling**: the highest rate loadgen kept "
        "its schedule at against the floor; the grid is fractions of it. Each cell is the "
        f"median of {reps} interleaved repetitions"
        + (f" ({claim_reps} at {CLAIM_FRACTION:.0%} of the ceiling)" if claim_reps > reps
           else "")
        + f" with, in brackets, the interval from order statistics (min–max of {reps}: it "
        f"holds the true median with probability {cov:.1%}; 95% needs 6 repetitions). "
        "Repetitions where loadgen fell behind "
        "(client-bound) are dropped and counted. CPU µs/req is the server's user + system "
        "CPU over the window per answer in it; × floor is the median of the repetitions' "
        "ratios to the floor at the same rate (paired: both measured seconds apart in each "
        "repetition), with their interval.", ""]
    for conns in workloads(cfg):
        ceiling = ceilings.get(conns)
        if not ceiling:
            continue
        rates = sorted({rate for (s, c, rate), f in fig.items() if c == conns
                        and f["fraction"] is not None})
        lines += [f"### {title(conns)[0].upper() + title(conns)[1:]}: ceiling "
                  f"{ceiling:,.0f} req/s", ""]
        head = ["server"] + [f"{report.k(r)}/s µs/req" for r in rates] + \
            [f"× floor @ {report.k(rates[len(rates) // 2])}/s" if rates else "× floor",
             f"user / sys @ {report.k(rates[len(rates) // 2])}/s" if rates else "user/sys",
             "capacity at SLO"]
        lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        mid = rates[len(rates) // 2] if rates else None
        for s in [FLOOR] + targets:
            cells = [f"**{s}**" if s not in cfg.peers else s]
            for rate in rates:
                f = fig.get((s, conns, rate))
                if not f:
                    cells.append("–")
                elif not f["n"]:
                    cells.append("client-bound" if "client_bound" in f["status"] else
                                 "/".join(f["status"]))
                else:
                    mark = " ✗" if f["missed"] else ""
                    cells.append(fmt_interval(f["cpu_us_per_req"]) + mark)
            f = fig.get((s, conns, mid))
            cells.append(fmt_interval(paired(eff, s, FLOOR, conns, mid), 2)
                         if s != FLOOR else "1")
            if f and f["cpu_user_us_per_req"] and f["cpu_sys_us_per_req"]:
                cells.append(f"{f['cpu_user_us_per_req'][0]:.1f} / "
                             f"{f['cpu_sys_us_per_req'][0]:.1f}")
            else:
                cells.append("–")
            cells.append(capacity(fig, s, conns, ceiling)[0])
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "✗: missed the SLO (p99 ≤ 10 ms, achieved ≥ 99%) in most repetitions.",
                  ""]
        lines += latency_table(fig, conns, rates, [FLOOR] + targets)
    lines += claims(cfg, fig, eff, targets)
    return lines


def latency_table(fig, conns, rates, names):
    lines = [f"p50 / p99 / p99.9 ms and achieved ÷ offered, {title(conns)} (medians):",
             "", "| server | " + " | ".join(f"{report.k(r)}/s" for r in rates) + " |",
             "|---|" + "---:|" * len(rates)]
    for s in names:
        cells = [s]
        for rate in rates:
            f = fig.get((s, conns, rate))
            if not f or not f["n"]:
                cells.append("–")
                continue
            p = [f[m][0] if f[m] else None for m in ("p50_ms", "p99_ms", "p999_ms")]
            cells.append(" / ".join(report.n_auto(v) for v in p)
                         + f" · {f['achieved'][0]:.0%}"
                         + (f" ({f['dropped']} cb)" if f["dropped"] else "")
                         + (f" ({f['unsteady']} ns)" if f["unsteady"] else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", "(N cb): repetitions dropped as client-bound; (N ns): repetitions whose "
                    "window was not in a steady state (its halves' answers or mean latency "
                    "differed; docs/loadgen.md), kept but to be read with care.", ""]


def claim_rate(fig, w):
    """(fraction, rate) the claims are read at in workload w: CLAIM_FRACTION of the
    ceiling, or the highest fraction of a grid without it; None without a grid there."""
    fracs = {f["fraction"]: rate for (_, c, rate), f in fig.items()
             if c == w and f["fraction"] is not None}
    if not fracs:
        return None
    frac = CLAIM_FRACTION if CLAIM_FRACTION in fracs else max(fracs)
    return frac, fracs[frac]


def claims(cfg, fig, rows, targets, rerun=None):
    """The ratios a reader takes away, each with its interval; a verdict only where the
    intervals are apart. Between the markers scripts/readme-results.py copies. rerun: the
    grid and knee rows of a second run of the same code; then a ratio is stated only where
    the second run's median (at its own claim rate) lands inside this run's interval."""
    peers = [p for p in report.RATIO_PEERS if p in targets]
    ours = [s for s in targets if s not in cfg.peers]
    lines = ["<!-- results:begin -->", "### CPU per request, relative (this run)", "",
             "CPU µs per request over another's, at 50% of the client's ceiling (the highest "
             "fraction measured, if not 50%): the median of "
             "the ratios within each repetition (both measured seconds apart) [their interval "
             "from order statistics; n paired repetitions]. \"cheaper\" or \"dearer\" only "
             f"where n ≥ {MIN_VERDICT_N} and the interval lies wholly below or above 1; "
             "otherwise the difference is within this run's noise."
             + (" Stated only where a second run of the same code, made later, put the "
                "same ratio inside this interval (its median after \"rerun\")."
                if rerun is not None else ""), ""]
    fig_b = summarise(rerun) if rerun is not None else None
    for conns in workloads(cfg):
        at = claim_rate(fig, conns)
        if not at:
            continue
        frac, rate = at
        at_b = claim_rate(fig_b, conns) if fig_b is not None else None
        withdrawn = []
        lines.append(f"{title(conns)[0].upper() + title(conns)[1:]}, {rate:,.0f} req/s "
                     f"({frac:.0%} of the ceiling):")
        lines.append("")
        for s in ours:
            a = fig.get((s, conns, rate))
            if not a or not a["cpu_us_per_req"]:
                continue
            parts = []
            # A variant (NAME@LIB, a server slowed on purpose; NAME+OPTION, one run with an
            # option of its own) is also read against NAME.
            base = [s.split("@")[0].split("+")[0]] if "@" in s or "+" in s else []
            for other in [FLOOR] + peers + base:
                ri = paired(rows, s, other, conns, rate)
                if not ri:
                    continue
                v = verdict(ri)
                v = v if v == "no verdict" else f"{v} than {other}"
                again = ""
                if rerun is not None:
                    rb = paired(rerun, s, other, conns, at_b[1]) if at_b else None
                    if not rb or not ri[1] <= rb[0] <= ri[2]:
                        withdrawn.append(f"{s} × {other}"
                                         + (f" (rerun {rb[0]:.2f})" if rb else ""))
                        continue
                    again = f"; rerun {rb[0]:.2f}"
                parts.append(f"× {other} {fmt_interval(ri, 2)} ({v}, n={ri[4]}{again})")
            if parts:
                lines.append(f"- {s}: " + "; ".join(parts))
        if withdrawn:
            lines += ["", "Not stated: the second run's ratio fell outside this run's interval, "
                      "or it had none: " + ", ".join(withdrawn) + "."]
        lines.append("")
    lines += ["<!-- results:end -->", ""]
    return lines
