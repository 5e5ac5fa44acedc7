#!/usr/bin/env python3
"""test_bench.py - the bench harness's rules, on made-up figures.

No server, no load: it checks what the harness decides from loadgen's results and the
kernel's figures: which open-loop point counts as the server's (a client-bound one never
does), the ladder of offered rates, capacity at SLO and its bracket, the CPU-per-request
noise estimate, memory per connection as a slope, the CSV's declared column types, the
readiness line, and when scripts/bench-compare.py says two runs agree; the efficiency curves'
intervals (order statistics and their coverage), ratios and verdicts, the p99 crossing and
capacity at SLO, and scripts/readme-results.py copying a summary's block into a README.
Plain pytest functions (`pytest-3 tests/test_bench.py`).
"""

import importlib.util
import os
import sys
import tempfile
from types import SimpleNamespace

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
import c10kutil
import efficiency
import openloop
import report

def point(rate, achieved=None, p99=1.0, errors=0, non2xx=0, client_bound=0, setup_failed=0,
          requests=None, server="epoll", conns=10000, close=0, fixed=0, cpu=10.0):
    achieved = rate if achieved is None else achieved
    row = {"server": server, "conns": conns, "close": close, "offered_rps": float(rate),
           "achieved_rps": float(achieved), "p99_ms": p99, "errors": errors, "non2xx": non2xx,
           "client_bound": client_bound, "setup_failed": setup_failed, "fixed": fixed,
           "requests": int(achieved * 2) if requests is None else requests,
           "cpu_us_per_req": cpu, "softirq_us_per_req": 1.0}
    row["status"] = openloop.judge(row, conns, close)
    return row


def test_judge():
    assert point(8000)["status"] == "ok", "judge: kept up, p99 1 ms: ok"
    assert point(8000, client_bound=1)["status"] == "client_bound", (
        "judge: a client-bound point is never the server's, however good it looks")
    assert point(8000, p99=10.5)["status"] == "over", "judge: p99 over 10 ms misses the SLO"
    assert point(8000, achieved=7900)["status"] == "over", "judge: achieved < 99% misses"
    assert point(8000, achieved=7930)["status"] == "ok", "judge: achieved 99.1% meets it"
    assert point(8000, errors=1)["status"] == "over", "judge: an error misses the SLO"
    assert point(8000, non2xx=3)["status"] == "over", "judge: a non-2xx misses the SLO"
    assert point(8000, setup_failed=9000)["status"] == "refused", (
        "judge: 9,000 of 10,000 connections not held (select's FD_SETSIZE): refused")
    assert point(8000, setup_failed=12)["status"] == "over", (
        "judge: a few connections not held: missed, not refused")
    assert point(8000, setup_failed=9000, close=1, conns=1000)["status"] == "over", (
        "judge: churn has no set-up, so no refusal from it")
    assert point(8000, achieved=0, requests=0, errors=16000)["status"] == "failed", (
        "judge: connections held, nothing answered: failed")
    assert (point(1000, achieved=0, requests=103, errors=897, client_bound=1)["status"] ==
            "failed"), "judge: errors for nearly every request fail the server, late client or not"


def ladder(cap, start=2000, step=2, top=256000, refine=2, extra=True):
    lad = openloop.Ladder(start, step, top, refine, extra)
    rate, seq = lad.first(), []
    while rate is not None:
        seq.append(rate)
        rate = lad.next(rate, rate <= cap)
    return seq


def test_ladder():
    seq = ladder(57000)
    assert seq[:6] == [2000, 4000, 8000, 16000, 32000, 64000], f"ladder: doubles: {seq}"
    assert seq[6:8] == [45000, 54000], f"ladder: two bisections, 2 significant figures: {seq}"
    assert seq[-1] == 128000, f"ladder: one more point past saturation: {seq}"
    seq = ladder(5000)
    assert seq == [2000, 4000, 8000, 5700, 4800], f"ladder: two misses, no extra point: {seq}"
    seq = ladder(1500)
    assert seq[:2] == [2000, 1000], f"ladder: steps down when the first rate misses: {seq}"
    seq = ladder(10 ** 9, top=64000)
    assert seq[-1] == 64000 and len(seq) == 6, f"ladder: stops at its top: {seq}"
    seq = ladder(20000, start=4000, step=4, top=64000, refine=0, extra=False)
    assert seq == [4000, 16000, 64000], f"ladder: bench-quick's three points: {seq}"
    lad = openloop.Ladder(2000, 2, 256000, 2, True)
    assert lad.skip(2000) == 4000, "ladder: a point without a figure is climbed past"
    lad = openloop.Ladder(2000, 2, 64000, 2, True)
    lad.skip(2000)
    assert lad.next(4000, False) == 1000, (
        "ladder: stepping down skips a rate already measured without a figure")


def walk(statuses, start=2000):
    """The rates a ladder measures when each point says the next of statuses (a status, or
    a dict of the row's fields): bench.py's loop without the measuring."""
    lad = openloop.Ladder(start, 2, 256000, 2, True)
    rate, seq = lad.first(), []
    for said in statuses:
        if rate is None:
            break
        seq.append(rate)
        row = said if isinstance(said, dict) else {"status": said}
        rate = lad.after(rate, row)
    return seq, rate


def test_ladder_policy():
    seq, nxt = walk(["ok", "ok", "over", "over"])
    assert seq == [2000, 4000, 8000, 8000] and nxt == 5700, (
        f"ladder policy: a first miss is measured once more, then bisected: {seq}, {nxt}")
    seq, nxt = walk(["ok", "over", "ok"])
    assert seq == [2000, 4000, 4000] and nxt == 8000, (
        f"ladder policy: a first miss not confirmed: the climb goes on: {seq}, {nxt}")
    seq, nxt = walk(["ok", "refused"])
    assert seq == [2000, 4000] and nxt is None, "ladder policy: refused connections end it"
    bound = {"status": "client_bound", "client_cpu": 0.3, "offered_rps": 1.0, "achieved_rps": 1.0}
    seq, nxt = walk(["ok", bound, bound])
    assert seq == [2000, 4000, 4000] and nxt == 8000, (
        f"ladder policy: a client-bound point with CPU to spare is measured again, then "
        f"climbed past: {seq}, {nxt}")
    seq, nxt = walk(["ok", dict(bound, client_cpu=0.95)])
    assert nxt is None, "ladder policy: a saturated client ends the ladder"
    seq, nxt = walk([bound] * 8)
    assert len(seq) == 4 and nxt is None, (
        f"ladder policy: at most three client-bound points in a row: {seq}")
    late = {"status": "client_bound", "client_cpu": 0.3, "offered_rps": 8000.0,
            "achieved_rps": 2000.0, "p99_ms": 900.0, "conns": 100, "close": 0}
    assert openloop.overloaded(late), "ladder policy: the made-up point is overloaded"
    seq, nxt = walk(["ok", "ok", late, "over"])
    assert seq == [2000, 4000, 8000, 5700], (
        f"ladder policy: client-bound and overloaded counts as a miss: {seq}")


def test_capacity():
    rows = [point(2000), point(4000), point(8000), point(16000, p99=30)]
    assert openloop.capacity(rows) == (8000, False), "capacity: the highest rate that met it"
    assert openloop.bracket(rows) == (8000, 16000), "bracket: highest pass, lowest miss above"
    rows = [point(2000), point(4000), point(8000, client_bound=1)]
    assert openloop.capacity(rows) == (4000, True), (
        "capacity: a client-bound point above makes it a lower bound, never a figure")
    rows = [point(2000, client_bound=1), point(4000, client_bound=1)]
    assert openloop.capacity(rows)[0] is None, "capacity: all client-bound: no figure"
    rows = [point(8000), point(16000, achieved=12000, client_bound=1)]
    assert openloop.capacity(rows) == (8000, False) and openloop.bracket(rows) == (8000, 16000), (
        "capacity: a client-bound point where the server fell far behind is past the knee")
    cell = report.cap_cell([point(2000, setup_failed=9000)])
    assert cell == (None, "refused"), f"capacity cell: refused is said, not drawn: {cell}"


def test_fixed_cpu():
    rows = [point(8000, fixed=1, cpu=10.0), point(8000, fixed=2, cpu=11.0),
            point(16000, cpu=50.0)]
    mean, spread = openloop.fixed_cpu(rows)
    assert abs(mean - 10.5) < 1e-9 and abs(spread - 1 / 10.5) < 1e-9, (
        f"fixed load: mean of the point and its repeat, and their spread: {mean}, {spread}")
    rows = [point(8000, fixed=1, cpu=10.0, client_bound=1)]
    assert openloop.fixed_cpu(rows) == (None, None), "fixed load: client-bound: no figure"


def test_rss_slope():
    # 12 MiB fixed plus 2 KiB per held connection: peak / N would say 14 KiB at 1,000.
    pts = [(0, 12288), (1000, 14336), (5000, 22528), (9000, 30720)]
    slope = report.rss_slope(pts)
    assert abs(slope - 2.048) < 1e-6, f"RSS per connection is the slope, not peak / N: {slope}"
    assert report.rss_slope([(0, 100)]) is None, "RSS slope: one step, no slope"


def test_csv_types():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.csv")
        row = {"server": "epoll", "conns": 100, "rps": 57000, "p99_ms": None, "status": "ok"}
        c10kutil.append_csv(path, ["server", "conns", "rps", "p99_ms", "status"], row)
        with open(path) as f:
            f.readline()
            raw = f.readline().strip()
        back = c10kutil.read_csv(path)[0]
        assert raw == "epoll,100,57000.0,,ok", f"CSV: written as declared: {raw}"
        with open(path, "w") as f:
            f.write("server,conns,rps,p99_ms,status\nepoll,100,57000,,ok\n")
        back = c10kutil.read_csv(path)[0]
        assert isinstance(back["rps"], float) and back["rps"] == 57000.0, (
            f"CSV: a rate without a decimal point is still a float: {back['rps']!r}")
        assert (isinstance(back["conns"], int) and back["p99_ms"] is None
                and back["server"] == "epoll" and back["status"] == "ok"), (
            f"CSV: int, empty and text columns: {back}")


def test_readiness_line():
    got = c10kutil.parse_listening("listening on 127.0.0.1:8080 model=epoll root=/srv/www")
    assert got == ("127.0.0.1", 8080, "epoll", "/srv/www"), f"readiness line: {got}"
    got = c10kutil.parse_listening("listening on [::1]:8080 model=uring root=www")
    assert got == ("::1", 8080, "uring", "www"), f"readiness line, IPv6: {got}"
    assert c10kutil.parse_listening("served 3 requests on 1 connections") is None, (
        "readiness line: another line is not one")
    import fixtures
    import procs
    assert fixtures.LISTENING_RE is c10kutil.LISTENING_RE is procs.LISTENING_RE, (
        "readiness line: the tests and the bench read it with the same expression")


def test_kernel_cmdline():
    saved = report._read
    report._read = lambda path: "quiet psi=1 rdinit=/init -- --init-arg 1"
    try:
        assert report.kernel_cmdline() == "quiet psi=1 rdinit=/init", (
            "env.txt: the kernel's parameters, not init's arguments")
    finally:
        report._read = saved


def test_idle_lesson():
    cfg = SimpleNamespace(open_conns=[100, 10000])

    def fig(c100, c10k, low=2000):
        return {("cap", 100): (c100, report.k(c100)), ("low", 100): low,
                ("cap", 10000): (c10k, report.k(c10k) if c10k else f"< {report.k(low)}"),
                ("low", 10000): low}

    text = " ".join(report.idle_lesson({"epoll": fig(50000, 45000), "poll": fig(40000, 6000),
                                        "busypoll": fig(30000, 3000)}, 10000, cfg))
    assert "fall far below epoll" in text and "0.13× epoll" in text, (
        f"idle lesson: poll at 0.13 of epoll is stated as the papers found: {text}")
    text = " ".join(report.idle_lesson({"epoll": fig(50000, 45000), "poll": fig(40000, 40000)},
                                       10000, cfg))
    assert "do not fall far" in text, f"idle lesson: said as well when it does not hold: {text}"
    text = " ".join(report.idle_lesson({"epoll": fig(50000, 23000),
                                        "poll": fig(32000, None, low=500)}, 10000, cfg))
    assert "no rate tried" in text and "fall far below epoll" in text, (
        f"idle lesson: no rate met at 10,000 connections is far below epoll: {text}")


def compare_module():
    path = os.path.join(HERE, "..", "scripts", "bench-compare.py")
    spec = importlib.util.spec_from_file_location("bench_compare", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_compare_agreement():
    bc = compare_module()
    devnull = open(os.devnull, "w")
    stdout, sys.stdout = sys.stdout, devnull
    try:
        a = [point(16000), point(32000), point(64000, p99=40), point(45000), point(54000, p99=20),
             point(8000, fixed=1, cpu=10.0), point(8000, fixed=2, cpu=10.4)]
        b = [point(16000), point(32000), point(64000, p99=40), point(45000, p99=20),
             point(38000), point(8000, fixed=1, cpu=10.6), point(8000, fixed=2, cpu=10.2)]
        ok, n = bc.compare_open(a, b)
        assert (ok, n) == (2, 2), (
            f"compare: touching brackets and CPU inside the band agree: {ok} of {n}")
        c = [point(8000), point(16000, p99=40), point(11000), point(13000, p99=20),
             point(8000, fixed=1, cpu=20.0), point(8000, fixed=2, cpu=20.2)]
        ok, n = bc.compare_open(a, c)
        assert (ok, n) == (0, 2), (
            f"compare: disjoint brackets and doubled CPU differ: {ok} of {n}")
    finally:
        sys.stdout = stdout
        devnull.close()


def test_intervals():
    iv = efficiency.interval([3.0, 1.0, 2.0])
    assert iv == (2.0, 1.0, 3.0, 0.75), f"3 values: median 2, [min, max], coverage 75% ({iv})"
    iv = efficiency.interval(list(range(1, 11)))
    # 10 values: [x(2), x(9)] covers the median with 97.9%; [x(3), x(8)] with 89%.
    assert iv[1:3] == (2, 9) and abs(iv[3] - 0.9785) < 1e-3, f"10 values: [x(2), x(9)] ({iv})"
    assert efficiency.interval([None, None]) is None, "no values: no interval"
    assert abs(efficiency.coverage(6, 1) - 0.96875) < 1e-9, "6 values: min-max covers 96.9%"
    a, b = (10.0, 9.0, 11.0, 0.75), (20.0, 18.0, 22.0, 0.75)
    r = efficiency.ratio_interval(a, b)
    assert abs(r[0] - 0.5) < 1e-9 and abs(r[1] - 9 / 22) < 1e-9 and abs(r[2] - 11 / 18) < 1e-9, (
        f"ratio interval: far ends over far ends ({r})")
    assert efficiency.compare(a, b) == "lower" and efficiency.compare(b, a) == "higher", (
        "intervals apart: a verdict")
    assert efficiency.compare(a, (11.5, 10.5, 12.0, 0.75)) == "overlap", (
        "intervals that overlap: no verdict")


def eff_row(server, rate, p99, status=None, cpu=10.0, fraction=None, conns=100, rep=1):
    status = status or ("ok" if p99 <= openloop.SLO_P99_MS else "over")
    return {"server": server, "conns": conns, "offered_rps": float(rate),
            "achieved_rps": float(rate), "p99_ms": p99, "status": status,
            "cpu_us_per_req": cpu, "fraction": fraction, "rep": rep, "phase": "grid"}


def test_capacity_at_slo():
    rows = [eff_row("a", r, p) for r, p in ((1000, 1.0), (2000, 5.0), (4000, 20.0))]
    rows += [eff_row("b", r, 1.0) for r in (1000, 2000, 4000)]
    rows += [eff_row("c", 1000, 50.0)]
    fig = efficiency.summarise(rows)
    text, low, mid, high = efficiency.capacity(fig, "a", 100, 5000)
    # log p99 linear in rate: 5 -> 20 ms over 2000 -> 4000; 10 ms at half way, 3000.
    assert abs(mid - 3000) < 1 and low == 2000 and high == 4000, (
        f"p99 crossing interpolated between the last pass and the first miss ({text})")
    assert efficiency.capacity(fig, "b", 100, 5000)[0].startswith("≥ ceiling"), (
        "no miss below the ceiling: capacity is '≥ ceiling'")
    assert efficiency.capacity(fig, "c", 100, 5000)[0] == "< 1.0k", (
        "missed at the lowest rate: '< lowest'")
    two = [eff_row("d", 1000, 20.0, rep=1), eff_row("d", 1000, 1.0, rep=2),
           eff_row("d", 1000, 30.0, rep=3), eff_row("d", 1000, 1.0, status="client_bound",
                                                    rep=4)]
    f = efficiency.summarise(two)[("d", (100, 0), 1000.0)]
    assert f["missed"] and f["n"] == 3 and f["dropped"] == 1, (
        "a rate is missed when most usable repetitions missed; client-bound ones dropped")


def test_paired():
    rows = []
    # The machine drifts from rep to rep (x1, x1.5, x2), b is always 1.2 x a: the unpaired
    # intervals overlap, the paired ratio is exactly 1.2.
    for rep, drift in ((1, 1.0), (2, 1.5), (3, 2.0)):
        rows += [eff_row("a", 1000, 1.0, cpu=10 * drift, rep=rep),
                 eff_row("b", 1000, 1.0, cpu=12 * drift, rep=rep)]
    fig = efficiency.summarise(rows)
    ri = efficiency.paired(rows, "b", "a", 100, 1000.0)
    assert (efficiency.compare(fig[("b", (100, 0), 1000.0)]["cpu_us_per_req"],
                               fig[("a", (100, 0), 1000.0)]["cpu_us_per_req"]) == "overlap"
            and abs(ri[1] - 1.2) < 1e-9 and abs(ri[2] - 1.2) < 1e-9 and ri[4] == 3), (
        f"paired by repetition: a drift that hides 1.2x unpaired cancels ({ri})")
    assert efficiency.verdict(ri) == "no verdict", (
        f"3 paired repetitions: no verdict (a false one 1 time in 4; "
        f"{efficiency.MIN_VERDICT_N} needed)")
    for rep, drift in ((4, 0.8), (5, 1.2)):
        rows += [eff_row("a", 1000, 1.0, cpu=10 * drift, rep=rep),
                 eff_row("b", 1000, 1.0, cpu=12 * drift, rep=rep)]
    five = efficiency.paired(rows, "b", "a", 100, 1000.0)
    assert five[4] == 5 and efficiency.verdict(five) == "dearer", "5 paired repetitions: dearer"
    rows.append(eff_row("b", 1000, 1.0, cpu=99.0, rep=6, status="client_bound"))
    rows.append(eff_row("a", 1000, 1.0, cpu=10.0, rep=6))
    assert efficiency.paired(rows, "b", "a", 100, 1000.0)[4] == 5, (
        "a repetition without both servers usable is not paired")


class FakeBench:
    """What efficiency.Efficiency needs of bench.Bench, with made-up servers: each answers
    up to its capacity, p99 1 ms below and 50 ms above it; 'noisy' is client-bound once."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.cfg = SimpleNamespace(open_conns=[100], open_start=4000, open_max=256000,
                                   fractions=[0.25, 0.5, 0.9], ceiling=0, quiet_wait_s=0,
                                   ceiling_retry_pause_s=0)
        self.cap, self.notes, self.order, self.noisy_left = None, [], [], 1

    def start(self, name):
        self.order.append(name)
        proc = SimpleNamespace(pid=1)
        return (SimpleNamespace(name=name, proc=proc, alive=lambda: True), None)

    def stop(self, started):
        pass

    def open_point(self, started, conns, rate, close, label):
        name = started[0].name
        cap = self.capacity.get(name, float("inf"))
        cap = cap / 2 if close else cap  # a new connection per request costs more
        row = point(rate, achieved=min(rate, cap * 1.02), p99=1.0 if rate <= cap else 50.0,
                    server=name, conns=conns, close=int(close))
        if name == "noisy" and self.noisy_left:
            self.noisy_left -= 1
            row.update(client_bound=1, client_cpu=0.3, status="client_bound")
        return row


def calibrate(fake, tmp):
    """An Efficiency over the fake bench, its CSV in tmp, after its calibration."""
    eff = efficiency.Efficiency(fake, os.path.join(tmp, "openloop.csv"))
    eff.calibrate()
    return eff


def test_efficiency_runs(tmp_path):
    fake = FakeBench({"floor": 30000, "slow": 9000, "tiny": 3000})
    eff = calibrate(fake, tmp_path)
    # 4k, 6k, 9k, 14k, 21k kept; 32k missed; bisections 26k and 29k kept.
    assert eff.ceiling == {(100, 0): 29000.0}, (
        f"the ceiling: the floor kept up to 29k, missed 32k ({eff.ceiling})")
    fake.order.clear()
    servers = ["fast", "slow", "tiny", "noisy"]
    eff.grid(servers, 2, [0.25, 0.5, 0.9])
    assert fake.order == ["floor"] + servers + ["floor"] + servers, (
        f"repetitions outermost, the floor first in each ({fake.order})")
    grid = [r for r in eff.rows if r["phase"] == "grid"]
    tiny = [r["offered_rps"] for r in grid if r["server"] == "tiny"]
    assert tiny == [7200.0, 7200.0], (
        f"answers under half the offered rate: the higher rates skipped ({tiny})")
    noisy = [r["status"] for r in grid if r["server"] == "noisy" and r["rep"] == 1
             and r["offered_rps"] == 7200.0]
    assert noisy == ["client_bound", "ok"], f"a client-bound point is measured again ({noisy})"
    eff.knees(servers, 1, float("inf"))
    knee = sorted(r["offered_rps"] for r in eff.rows if r["phase"] == "knee"
                  and r["server"] == "slow")
    steps = [b / a for a, b in zip(knee, knee[1:])]
    assert (len(knee) == efficiency.KNEE_POINTS and max(steps) <= 1.1
            and not [r for r in eff.rows if r["phase"] == "knee" and r["server"] != "slow"]), (
        f"a knee only where the SLO was missed between two grid rates, steps ≤ 10% "
        f"({knee})")
    fig = efficiency.summarise([r for r in eff.rows if r["phase"] in ("grid", "knee")])
    text, low, mid, high = efficiency.capacity(fig, "slow", 100, eff.ceiling[(100, 0)])
    assert low and high and low <= 9000 <= high, (
        f"slow's capacity brackets its true 9,000 ({text})")
    assert efficiency.capacity(fig, "fast", 100, eff.ceiling[(100, 0)])[0].startswith("≥"), (
        "fast: ≥ ceiling")


def test_efficiency_churn(tmp_path):
    """Churn is a workload of its own: its own ceiling (set up from churn_start), grid rows
    with close=1 and their own section and claims in summary.md."""
    fake = FakeBench({"floor": 30000, "slow": 9000})
    fake.cfg.churn_conns, fake.cfg.churn_start = 50, 2000
    fake.cfg.fractions, fake.cfg.churn_fractions = [0.1, 0.5, 0.9], [0.25, 0.5, 0.9]
    fake.cfg.open_secs, fake.cfg.open_warm, fake.cfg.peers = 1, 0.3, []
    eff = calibrate(fake, tmp_path)
    assert sorted(eff.ceiling) == [(50, 1), (100, 0)] and eff.ceiling[(50, 1)] < 16000, (
        f"a ceiling for keep-alive and one, lower, for churn ({eff.ceiling})")
    eff.grid(["slow"], 1)
    churn = [r for r in eff.rows if r["phase"] == "grid" and r["close"]]
    kinds = {(r["close"], r["fraction"]) for r in eff.rows if r["phase"] == "grid"}
    assert kinds == {(0, 0.1), (0, 0.5), (0, 0.9), (1, 0.25), (1, 0.5), (1, 0.9)}, (
        f"keep-alive at its fractions, churn at its own ({sorted(kinds)})")
    assert (churn and all(r["conns"] == 50 for r in churn)
            and {r["server"] for r in churn} == {"floor", "slow"}), (
        f"the grid runs churn for every server ({len(churn)} rows)")
    fig = efficiency.summarise([r for r in eff.rows if r["phase"] == "grid"])
    assert (fig[("slow", (50, 1), churn[-1]["offered_rps"])]["n"] == 1
            and not any(k[1] == (50, 0) for k in fig)), (
        "churn rows are grouped apart from keep-alive rows")
    text = "\n".join(efficiency.section(fake.cfg, eff.rows, ["slow"]))
    assert "### Churn (50 at a time" in text and "### 100 connections" in text, (
        "summary.md has a churn section beside the keep-alive one")


class StallBench(FakeBench):
    """The null server misses the SLO once at 14k, far from busy: a stall of the machine."""

    def open_point(self, started, conns, rate, close, label):
        row = super().open_point(started, conns, rate, close, label)
        if started[0].name == "floor" and rate == 14000 and not getattr(self, "stalled", 0):
            self.stalled = 1
            row.update(p99_ms=10.4, server_util=0.33, status="over")
        return row


def test_ceiling_past_a_stall(tmp_path):
    fake = StallBench({"floor": 30000})
    eff = calibrate(fake, tmp_path)
    assert eff.ceiling == {(100, 0): 29000.0}, (
        f"one stalled window of the null server does not lower the ceiling "
        f"({eff.ceiling})")


class BusyBench(FakeBench):
    """A machine too busy for loadgen: every point is client-bound, the floor's too."""

    def open_point(self, started, conns, rate, close, label):
        row = super().open_point(started, conns, rate, close, label)
        row.update(client_bound=1, client_cpu=0.1, status="client_bound")
        return row


def test_no_ceiling_on_a_busy_machine(tmp_path):
    fake = BusyBench({"floor": 30000})
    eff = calibrate(fake, tmp_path)
    assert eff.ceiling == {}, (
        f"no rate kept against the floor: no ceiling, not the top of the range "
        f"({eff.ceiling})")
    eff.grid(["fast"], 1, [0.25, 0.5, 0.9])
    grid = [r for r in eff.rows if r["phase"] == "grid"]
    assert not grid and any("no client's ceiling" in n for n in fake.notes), (
        f"no grid without a ceiling, and the summary says why ({len(grid)} rows)")


def test_compare_efficiency():
    mod = compare_module()

    def run(ratio):
        rows = []
        for rep, drift in enumerate((1.0, 1.3, 0.9, 1.1, 1.2), 1):
            for server, cpu in (("floor", 10.0), ("epoll", 10.0 * ratio), ("nginx", 15.0)):
                r = eff_row(server, 5000, 1.0, cpu=cpu * drift, fraction=0.5, rep=rep)
                r["cpu_us_per_req"] = cpu * drift * (1 + 0.01 * rep)  # a little noise
                rows.append(r)
        return rows

    quiet = open(os.devnull, "w")
    saved, sys.stdout = sys.stdout, quiet
    try:
        same = mod.compare_efficiency(run(1.2), run(1.2))
        moved = mod.compare_efficiency(run(1.2), run(1.5))
    finally:
        sys.stdout = saved
        quiet.close()
    assert same == (2, 2), f"bench-compare: a rerun's ratios land inside the first's ({same})"
    assert moved[0] < moved[1], f"bench-compare: a ratio that moved 25% lands outside ({moved})"


def test_readme_results():
    spec = importlib.util.spec_from_file_location(
        "readme_results", os.path.join(HERE, "..", "scripts", "readme-results.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "results", "RUN")
        os.makedirs(run)
        with open(os.path.join(run, "summary.md"), "w") as f:
            f.write(f"# s\n\n{mod.BEGIN}\n- epoll: × floor 1.20 [1.08–1.33]\n{mod.END}\nrest\n")
        with open(os.path.join(run, "env.txt"), "w") as f:
            f.write("load average at start: 0.50 0.40 0.30 1/100 7\n")
        readme = os.path.join(tmp, "README.md")
        with open(readme, "w") as f:
            f.write(f"# r\n\n## Results\n\n{mod.BEGIN}\ntyped by hand\n{mod.END}\n\nafter\n")
        differs = mod.main(["--check", "--readme", readme, run])
        mod.main(["--readme", readme, run])
        with open(readme) as f:
            text = f.read()
        same = mod.main(["--check", "--readme", readme, run])
    assert differs == 1 and same == 0, "readme-results --check: differs before, matches after"
    assert ("typed by hand" not in text and "× floor 1.20 [1.08–1.33]" in text
            and "results/RUN/summary.md" in text and "0.50 0.40 0.30" in text
            and text.endswith("\n\nafter\n")), (
        "readme-results: the block is the summary's, with the run and its load average")


def test_readme_rerun():
    """--rerun: a ratio the second run reproduces is stated, one it does not is withdrawn."""
    spec = importlib.util.spec_from_file_location(
        "readme_results", os.path.join(HERE, "..", "scripts", "readme-results.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def write_run(d, nginx_cpu):
        os.makedirs(os.path.join(d, "logs"))
        with open(os.path.join(d, "logs", "config.json"), "w") as f:
            f.write('{"open_conns": [100], "churn_conns": 0, "servers": ["epoll"], '
                    '"peers": ["nginx"]}')
        with open(os.path.join(d, "env.txt"), "w") as f:
            f.write("load average at start: 0.50 0.40 0.30 1/100 7\n")
        rows = []
        for rep in range(1, 6):
            for server, cpu in (("floor", 10.0), ("epoll", 12.0), ("nginx", nginx_cpu)):
                r = eff_row(server, 5000, 1.0, cpu=cpu * (1 + 0.01 * rep), fraction=0.5, rep=rep)
                r["cpu_us_per_req"] += 0.05 * rep * (server == "epoll")
                r.update(close=0, achieved_rps=5000.0)
                rows.append(r)
        for r in rows:
            c10kutil.append_csv(os.path.join(d, "openloop.csv"), list(r), r)

    with tempfile.TemporaryDirectory() as tmp:
        a, b = os.path.join(tmp, "results", "A"), os.path.join(tmp, "results", "B")
        write_run(a, 20.0)
        write_run(b, 14.0)  # epoll × nginx moves from 0.6 to 0.86: outside A's interval
        readme = os.path.join(tmp, "README.md")
        with open(readme, "w") as f:
            f.write(f"# r\n\n{mod.BEGIN}\n{mod.END}\n")
        mod.main(["--readme", readme, a, "--rerun", b])
        with open(readme) as f:
            text = f.read()
    assert "× floor" in text and "rerun 1.2" in text, (
        f"a ratio the rerun reproduced is stated, with the rerun's median ({text!r})")
    assert "× nginx 0.6" not in text and "epoll × nginx (rerun 0.8" in text, (
        "a ratio the rerun did not reproduce is withdrawn and named")


FORKER = """
import os, sys, time
sys.stdin.readline()
for _ in range(20):
    if os.fork() == 0:
        t = time.process_time()
        while time.process_time() - t < 0.005:
            pass
        os.write(1, b"x")
        time.sleep(30)
        os._exit(0)
time.sleep(30)
"""


def test_cpu_account():
    """A server that forks: 20 live children that burnt 5 ms each. Per process, /proc
    rounds each down to a 10 ms tick and sees nothing; the server's cgroup counts 100 ms."""
    import measure
    import procs
    import subprocess
    if os.geteuid() != 0:
        print("skip test_cpu_account: needs root (a cgroup)")
        return
    acct = procs.CpuAccount(f"c10k-test-{os.getpid()}")
    p = subprocess.Popen([sys.executable, "-c", FORKER], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, start_new_session=True)
    try:
        acct.add_session(p.pid)
        before = measure.Snapshot(p.pid, [p.pid], acct)
        ticks_before = sum(c10kutil.cpu_ticks_split(p.pid, [p.pid]))
        p.stdin.write(b"go\n")
        p.stdin.flush()
        got = b""
        while len(got) < 20:  # each child writes one byte once it has burnt its 5 ms
            got += os.read(p.stdout.fileno(), 20)
        tree = c10kutil.process_tree(p.pid)
        after = measure.Snapshot(p.pid, tree, acct)
        counted = before.cpu_s(after)
        ticks = (sum(c10kutil.cpu_ticks_split(p.pid, tree)) - ticks_before) / measure.CLK_TCK
        assert counted >= 0.09, (
            f"the cgroup counts the children's 100 ms ({counted * 1e3:.0f} ms; "
            f"per-process ticks: {ticks * 1e3:.0f} ms)")
    finally:
        os.killpg(p.pid, 9)
        p.wait()
        acct.remove()
    assert not os.path.exists(acct.dir), "the group is removed"


def test_scaling():
    """BENCH_WORKERS=1,2: a curve per server, each point labelled with what limited it."""
    import scaling

    cfg = SimpleNamespace(workers=[1, 2], server_cores=[0], servers=["a-w1", "a-w2", "b-w1",
                          "b-w2", "c-w1", "c-w2"], peers=[], open_conns=[100], churn_conns=0)
    rows = []
    for rate, p99 in ((1000, 1.0), (2000, 5.0), (4000, 20.0)):  # missed at 4000, CPU full
        rows.append(dict(eff_row("a-w1", rate, p99), server_util=0.95, ceiling=5000))
        rows.append(dict(eff_row("a-w2", rate, p99 / 2), server_util=0.5, ceiling=5000))
        rows.append(dict(eff_row("b-w1", rate, 1.0), server_util=0.3, ceiling=5000))
        rows.append(dict(eff_row("b-w2", rate, 50.0 if rate > 1000 else 1.0),
                         server_util=0.4, ceiling=5000))
    rows.append(dict(eff_row("c-w1", 1000, 50.0), server_util=0.2, ceiling=5000))
    curves = scaling.curves(cfg, rows)[(100, 0)]
    a1, a2 = curves["a"]
    assert (abs(a1["thr"] - 3000) < 1 and a1["limit"] == "server CPU"
            and a1["how"] == "capacity at SLO"), (
        f"scaling: missed below the ceiling with its core busy: server CPU ({a1})")
    assert a2["limit"] == "client-bound" and a2["thr"] == 4000, (
        f"scaling: met the SLO at every rate: client-bound, highest rate met ({a2})")
    b1, b2 = curves["b"]
    assert (b1["limit"] == "client-bound" and b2["limit"] == "SLO miss"
            and 1500 < b2["thr"] < 1700), (
        f"scaling: missed with CPU to spare: SLO miss ({b2})")
    assert curves["c"][0]["thr"] is None and curves["c"][0]["how"] == "missed the lowest", (
        "scaling: missed at the lowest rate: no throughput")
    assert scaling.ideal(curves["a"]) == [a1["thr"], a1["thr"]] and a2["cores"] == 1, (
        "scaling: two workers on one core: the ideal line is flat")
    text = "\n".join(scaling.section(cfg, rows))
    assert ("## Scaling with workers" in text and "share it" in text
            and "| a | 2 | 1 |" in text and "server CPU" in text), (
        "scaling: summary.md's table, saying the workers shared one core")
    assert (scaling.split("nginx-w12") == ("nginx", 12) and scaling.split("epoll") ==
            ("epoll", None)), "scaling: NAME-wN names"
    import shutil
    if shutil.which("gnuplot"):
        with tempfile.TemporaryDirectory() as d:
            scaling.plot(d, cfg, rows)
            drawn = sorted(f for f in os.listdir(d) if f.startswith("scaling_"))
        assert drawn == ["scaling_c100.png", "scaling_c100.svg"], (
            f"scaling: the plot drawn whole, with a server that met the SLO nowhere ({drawn})")


def test_config_cores():
    """BENCH_SERVER_CPUS, BENCH_WORKERS, BENCH_CLIENT_HOSTS: cores, workers, instances."""
    import bench

    saved, pick = dict(os.environ), bench.pick_servers
    bench.pick_servers = lambda wanted: ["epoll"]  # no bin/ needed
    try:
        os.environ.update(BENCH_SERVERS="", BENCH_PEERS="nginx", BENCH_WORKERS="1,2",
                          BENCH_CLIENT_HOSTS="ip netns exec a, ssh -tt b")
        os.environ.pop("BENCH_SERVER_CPUS", None)
        os.environ.pop("BENCH_CLIENT_INSTANCES", None)
        cfg = bench.Config("quick")
        assert (cfg.peers == ["nginx-w1", "nginx-w2"] and cfg.base_peers == ["nginx"]
                and cfg.workers_of("nginx-w2") == ("nginx", 2)), (
            f"Config: a sweep runs every peer once per worker count ({cfg.peers})")
        assert (cfg.client_hosts == [["ip", "netns", "exec", "a"], ["ssh", "-tt", "b"]]
                and cfg.client_instances == 2 * len(cfg.client_cores)), (
            "Config: one loadgen per client core of every client host")
        os.environ.update(BENCH_WORKERS="", BENCH_CLIENT_HOSTS="")
        cfg = bench.Config("quick")
        one = len(cfg.server_cores) == 1
        assert (cfg.workers_of("epoll") == ("epoll", None if one else len(cfg.server_cores))
                and cfg.client_instances == len(cfg.client_cores)), (
            "Config: no knobs: the model's default on one server core, one loadgen per "
            "client core")
        assert bench.parse_cpus("0-2,5") == [0, 1, 2, 5] and bench.parse_cpus("") == [], (
            "parse_cpus: a CPU list")
    finally:
        bench.pick_servers = pick
        os.environ.clear()
        os.environ.update(saved)


def test_split_instances():
    """A point's connections and rate split over K instances: the same totals as one."""
    target = SimpleNamespace(port=1)
    for k, conns in ((1, 100), (2, 100), (3, 100), (4, 3)):
        cfg = SimpleNamespace(open_secs=1, open_warm=0.1, open_timeout=1, client_rt=False,
                              client_cores=[1, 2], client_instances=k,
                              client_hosts=[["h1"], ["h2"]], server_addr="10.0.0.1")
        group = openloop.instances("loadgen", target, conns, 1000.0, False, cfg)
        rates = [float(i.cmd[i.cmd.index("--rate") + 1]) for i in group]
        shares = [int(i.cmd[i.cmd.index("--conns") + 1]) for i in group]
        assert (len(group) == min(k, conns) and sum(shares) == conns
                and abs(sum(rates) - 1000) < 1e-3 and max(shares) - min(shares) <= 1), (
            f"instances: {k} over {conns} connections offer 1000 req/s in all "
            f"({shares}, {rates})")
        assert ([i.host for i in group] == [["h1"], ["h2"], ["h1"], ["h2"]][:len(group)]
                and [i.core for i in group] == [1, 1, 2, 2][:len(group)]), (
            "instances: spread over the client hosts first, then their cores")


def test_option_variant():
    """NAME+OPTION runs bin/NAME with an option of its own, through a script that execs it."""
    assert c10kutil.option_variant("epoll+busy-poll=50") == ("epoll", ["--busy-poll", "50"])
    assert c10kutil.option_variant("uring+sqpoll") == ("uring", ["--sqpoll"])
    assert c10kutil.option_variant("epoll") == ("epoll", []), "option_variant: a plain name"
    with tempfile.TemporaryDirectory() as d:
        path = c10kutil.option_variant_binary("uring+sqpoll", "/bin/echo", d)
        out = os.popen(f"'{path}' --port 0").read()
        assert os.path.basename(path) == "uring+sqpoll" and out == "--sqpoll --port 0\n", (
            f"option_variant_binary: execs the binary with the option first ({out!r})")


def test_io_uring_direct_files():
    """The direct descriptors an io_uring's fdinfo lists (Linux 6.18's layout) are counted."""
    fdinfo = ("SqMask:\t0x3ff\nCachedCqTail:\t0\nUserFiles:\t20000\n"
              "    0: socket:[201031272]\n    1: socket:[201031274]\n"
              "UserBufs:\t0\nPollList:\n  op=27, task_works=0\n")
    assert c10kutil.io_uring_direct_files(fdinfo) == ["socket:[201031272]",
                                                      "socket:[201031274]"]
    assert c10kutil.io_uring_direct_files("UserFiles:\t0\nUserBufs:\t0\n") == []


def floor_answer(c, size):
    """One answer of the floor's on socket c: its head and size bytes of body ("" at EOF)."""
    got = b""
    while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < size:
        chunk = c.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_profile_names():
    """A full run profiles bin/epoll and bin/uring with the floor, and the floor's io_uring
    loop only beside bin/uring; a run without either profiles nothing."""
    import bench
    assert bench.profile_names(["select", "epoll", "uring", "nginx"]) == [
        "epoll", "uring", "floor", "floor+uring"]
    assert bench.profile_names(["epoll"]) == ["epoll", "floor"]
    assert bench.profile_names(["poll", "nginx"]) == []


@pytest.mark.parametrize("loop", ["epoll", "uring"])
def test_floor_workers(loop):
    """bench/floor --workers 2 (and --uring, its io_uring loop): two threads, two listeners on
    the one port (SO_REUSEPORT); keep-alive answers, "Connection: close" closes once
    answered; the served line at SIGTERM counts every worker's requests."""
    import signal
    import socket
    import subprocess

    floor = os.path.join(HERE, "..", os.environ.get("BUILD", "build"), "bench", "floor")
    if not os.access(floor, os.X_OK):
        pytest.skip(f"no {floor} (make bench-floor)")
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("x" * 100)
        p = subprocess.Popen([floor, "--port", "0", "--root", root, "--workers", "2"]
                             + (["--uring", "--max-conns", "8"] if loop == "uring" else []),
                             stderr=subprocess.PIPE, text=True)
        try:
            ready = c10kutil.parse_listening(p.stderr.readline())
            assert ready is not None, f"floor ({loop}) --workers 2 is ready"
            port = ready[1]
            threads = len(os.listdir(f"/proc/{p.pid}/task"))
            with open("/proc/net/tcp") as f:
                listening = sum(1 for line in f.readlines()[1:]
                                if line.split()[1].endswith(f":{port:04X}")
                                and line.split()[3] == "0A")
            assert threads >= 2 and listening == 2, (
                f"two threads ({threads}), two listeners on port {port} ({listening})")
            for _ in range(20):  # more than --max-conns' table would hold if slots leaked
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert floor_answer(c, 100).startswith(b"HTTP/1.1 200"), "an answer"
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                for _ in range(3):
                    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert floor_answer(c, 100).startswith(b"HTTP/1.1 200"), "kept alive"
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert floor_answer(c, 100).startswith(b"HTTP/1.1 200"), "the last answer"
                assert c.recv(1) == b"", "closed after answering Connection: close"
            p.send_signal(signal.SIGTERM)
            rest = p.communicate(timeout=5)[1]
            assert p.returncode == 0 and "served 24 requests on 21 connections" in rest, (
                f"at SIGTERM every worker stops and the counts add up (exit "
                f"{p.returncode}: {rest.strip()})")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    import pytest  # Debian: python3-pytest

    sys.exit(pytest.main([__file__] + sys.argv[1:]))
