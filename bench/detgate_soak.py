#!/usr/bin/env python3
"""detgate_soak.py - how often the deterministic layer fails an unchanged tree.

    python3 bench/detgate_soak.py [RUNS [HOGS]]     default: 20 runs, 2 hogs

Runs bench/detgate.py check RUNS times in a row: the first half on the machine as it is,
the second half with HOGS CPU-burning processes (a Python busy loop each, on no particular
core) beside it. Prints one line per run and the count of passes; a false alarm is any
run that fails. docs/bench.md records the result. (scripts/bench-noise.py is its
counterpart for the wall-clock layer: it measures how far the ratios to nginx move between
runs, to set their tolerances; this counts false alarms of a layer without tolerances to
set. They share no code beyond running the gate in a loop.)
"""

import os
import signal
import subprocess
import sys
import time

DETGATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "detgate.py")


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    signal.signal(signal.SIGTERM, on_signal)
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    hogs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    passes, burners = 0, []
    try:
        for i in range(runs):
            if i == runs // 2 and hogs:
                burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                           for _ in range(hogs)]
            t0 = time.monotonic()
            gate = subprocess.Popen([sys.executable, DETGATE, "check"], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            try:
                out, _ = gate.communicate()
            except KeyboardInterrupt:
                gate.terminate()  # the gate stops the servers it started, then exits
                gate.wait()
                raise
            ok = gate.returncode == 0
            passes += ok
            fails = [line for line in out.splitlines() if "FAIL:" in line]
            print(f"run {i + 1:2d}/{runs} ({len(burners)} hogs): {'pass' if ok else 'FAIL'} "
                  f"in {time.monotonic() - t0:.0f} s" + "".join(f"\n    {f}" for f in fails),
                  flush=True)
    finally:
        for p in burners:
            p.kill()
            p.wait()
    print(f"{passes}/{runs} passed ({runs - runs // 2} of them beside {hogs} CPU-burning "
          "processes)")
    return 0 if passes == runs else 1


if __name__ == "__main__":
    sys.exit(main())
