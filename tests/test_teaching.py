#!/usr/bin/env python3
"""test_teaching.py - the lecture's own tools run and print what the docs say they print.

    pytest-3 tests/test_teaching.py [-k NAME]

    demo_idle   make demo-idle's script (bench/demo_idle.py), shortened: both servers, both
                idle steps, a ratio line each, the points and (with gnuplot) the plot
    demo_rpc    make demo-rpc's script (bench/demo_rpc.py), shortened: loadgen and the
                thread-per-call client at the same load, each seen with its thread count
    trace       scripts/trace.sh epoll prints the two requests' calls and draws the swimlane
    slides      make slides builds one HTML file: at least 18 slides, figures inside, no
                outside resource, no font under 24 px; with chromium installed, a headless
                screenshot of the first slide (its path printed), else a line saying so
    upper_*     examples/upper_{callbacks,yieldfrom,async}.py: the same line protocol three
                ways, each serving three interleaved clients (a line split in two, quit)

Needs make, make bench-idlers bench-loadgen build/bench/rpc_threads. Plain pytest
functions; a figure's path or a missing tool is printed (`-s` shows it). No timings are judged: the figures a run prints are the lecture's, not the test's.
"""

import os
import re
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def run(cmd, env=None, timeout=300):
    e = dict(os.environ, **(env or {}))
    p = subprocess.run(cmd, cwd=REPO, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout


def test_demo_idle():
    plot_dir = os.path.join(REPO, "build", "test-demo-idle")
    png = os.path.join(plot_dir, "demo-idle.png")
    if os.path.exists(png):
        os.unlink(png)
    rc, out = run([sys.executable, "bench/demo_idle.py"],
                  env={"DEMO_IDLE": "300", "DEMO_SECS": "0.5", "DEMO_RATE": "500",
                       "DEMO_OUT": plot_dir})
    assert rc == 0, f"exit {rc}:\n{out}"
    csv = os.path.join(plot_dir, "points.csv")
    assert os.path.exists(csv), f"no {csv}:\n{out}"
    points = open(csv).read().splitlines()
    assert len(points) == 5 and points[0] == "server,idle,p99_ms,cpu_us_per_req", points
    if subprocess.run(["sh", "-c", "command -v gnuplot"], stdout=subprocess.DEVNULL).returncode:
        print("     demo_idle: no gnuplot here, so no plot")
    else:
        assert os.path.getsize(png) > 10000 and "demo-idle: plot" in out, out
        print(f"     demo_idle: plot drawn: {png}")
    for server in ("poll", "epoll"):
        for m in (0, 300):
            assert re.search(rf"^{server}\s+{m}\s+\d+", out, re.M), f"no {server} idle={m}:\n{out}"
        assert re.search(rf"^{server}: CPU per request x[\d.]+ with 300 idle", out, re.M), out
    assert "nginx" not in out and "h2o" not in out and "lighttpd" not in out, out


def test_demo_rpc():
    rc, out = run([sys.executable, "bench/demo_rpc.py"],
                  env={"DEMO_RPC_CONNS": "20", "DEMO_RPC_RATES": "400", "DEMO_SECS": "0.5"})
    assert rc == 0, f"exit {rc}:\n{out}"
    # client, conns, offered, threads, calls/s, p50, p99, CPU us/call, switches/call, RSS
    rows = {m[0]: m for m in re.findall(r"^(async|threads)\s+20\s+400\s+(\d+)\s+(\d+)\s+"
                                        r"[\d.]+\s+[\d.]+\s+([\d.]+)", out, re.M)}
    assert set(rows) == {"async", "threads"}, out
    assert rows["async"][1] == "1" and rows["threads"][1] == "21", out  # threads seen in /proc
    assert "errors" not in out, out


def test_trace():
    rc, out = run(["scripts/trace.sh", "epoll"],
                  env={"TRACE_SVG": os.path.join(REPO, "build", "trace", "test-epoll.svg")})
    assert rc == 0, f"exit {rc}:\n{out}"
    assert "No such file" not in out, out
    assert out.count("recvfrom(") >= 2 and "epoll_wait(" in out, out


def test_slides():
    rc, out = run(["make", "slides"])
    assert rc == 0, f"make slides: exit {rc}:\n{out}"
    path = os.path.join(REPO, "build", "slides", "index.html")
    html = open(path, encoding="utf-8").read()
    assert html.count("<section") >= 18, f"{html.count('<section')} slides"
    assert "data:image/svg+xml" in html, "figures not embedded"
    # Offline: nothing fetched from elsewhere (a link the reader may click is not a fetch).
    fetched = re.findall(r'<(?:script|img|link)[^>]*(?:src|href)="(https?:[^"]*)"', html)
    assert not fetched, f"outside resources: {fetched}"
    sizes = [int(px) for px in re.findall(r"font-size:\s*(\d+)px", html)]
    assert sizes and min(sizes) >= 24, f"font sizes {sorted(set(sizes))}"
    chromium = next((c for c in ("chromium", "chromium-browser")
                     if subprocess.run(["sh", "-c", f"command -v {c}"],
                                       stdout=subprocess.DEVNULL).returncode == 0), None)
    if not chromium:
        print("     slides: no chromium here, so no screenshot (apt-get install chromium)")
        return
    png = os.path.join(REPO, "build", "slides", "slide-1.png")
    if os.path.exists(png):
        os.unlink(png)
    run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,960",
         f"--screenshot={png}", f"file://{path}#1"], timeout=120)
    assert os.path.exists(png) and os.path.getsize(png) > 10000, "no screenshot written"
    print(f"     slides: first slide rendered by {chromium} --headless: {png}")


@pytest.mark.parametrize("name", ["callbacks", "yieldfrom", "async"])
def test_upper(name):
    p = subprocess.Popen([sys.executable, f"examples/upper_{name}.py", "--port", "0"], cwd=REPO,
                         stdout=subprocess.PIPE, text=True)
    try:
        m = re.match(r"listening on 127.0.0.1:(\d+)", p.stdout.readline())
        assert m, f"upper_{name}.py printed no listening line"
        port = int(m.group(1))
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        a, b, c = clients
        b.sendall(b"wor")  # half a line: the server must keep it and serve the others
        a.sendall(b"hello\n")
        c.sendall(b"one\ntwo\n")
        b.sendall(b"ld\n")

        def lines(sock, n):
            data = b""
            while data.count(b"\n") < n:
                chunk = sock.recv(4096)
                assert chunk, "server closed early"
                data += chunk
            return data

        assert lines(a, 1) == b"HELLO\n"
        assert lines(b, 1) == b"WORLD\n"
        assert lines(c, 2) == b"ONE\nTWO\n"
        for s in clients:
            s.sendall(b"quit\n")
            assert s.recv(10) == b"", "quit did not close the connection"
            s.close()
    finally:
        p.terminate()
        p.wait(timeout=5)
