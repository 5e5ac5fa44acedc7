#!/usr/bin/env bash
# scripts/trace.sh MODEL - the system calls one model makes to serve keep-alive requests.
#
# Starts bin/MODEL under `strace -f`, and on one keep-alive connection sends:
#   GET /index.html     (warms the open-file cache; not shown)
#   GET /trace-begin    (a marker: a 404 whose openat2 shows where the trace starts)
#   GET /index.html     twice: the two requests the trace is about; the client pauses
#                       2 ms before the second, so the server's wait for it shows
#   GET /trace-end      (the closing marker)
# and prints the syscalls between the two markers' file lookups. The first
# lines after the begin marker send its 404; the rest serve the two requests.
# It also keeps the timed trace (strace -tt -T) in build/trace/MODEL.strace and draws
# it as a swimlane, build/trace/MODEL.svg (scripts/swimlane.py), or at $TRACE_SVG.
# MODEL=asyncio traces examples/asyncio_server.py, Python's asyncio on the same protocol.
set -euo pipefail
model=${1:?usage: scripts/trace.sh MODEL}
cd "$(dirname "$0")/.."
if [[ $model == asyncio ]]; then
    # The interpreter itself, not a launcher on PATH (a pyenv shim is a shell script whose
    # execs strace -f would count as the server's): what `python3` runs, resolved.
    server=("$(python3 -c 'import sys; print(sys.executable)')" examples/asyncio_server.py)
else
    bin=bin/$model
    [[ -x $bin ]] || { echo "no $bin: run make first" >&2; exit 2; }
    server=("$bin")
fi
out=build/trace
svg=${TRACE_SVG:-$out/$model.svg}
mkdir -p "$out" "$(dirname "$svg")"
command -v strace >/dev/null || { echo "strace is missing: make deps" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/www"
chmod 755 "$tmp"
head -c 4096 /dev/zero | tr '\0' 'x' >"$tmp/www/index.html"

# The server under strace, started and driven by the bench's own process module (bench/procs.py:
# its readiness line, then its child under strace) and HTTP reader (bench/http_client.py).
python3 - "$tmp" "${server[@]}" <<'PY'
import os, signal, socket, subprocess, sys, time
sys.path.insert(0, "bench")
import http_client, procs
tmp, server = sys.argv[1], sys.argv[2:]
proc = subprocess.Popen(["strace", "-f", "-qq", "-tt", "-T", "-s", "48", "-o", f"{tmp}/trace"]
                        + server + ["--port", "0", "--root", f"{tmp}/www", "--quiet"],
                        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
err = procs.StderrLines(proc)
try:
    port = int(err.wait_listening(10)[2])
except procs.StartError as e:
    sys.exit(f"{e}: {err.tail()}")
try:
    s = socket.create_connection(("127.0.0.1", port))
    buf = b""
    for i, p in enumerate(["/index.html", "/trace-begin", "/index.html", "/index.html", "/trace-end"]):
        if i == 3:
            time.sleep(0.002)  # the server now waits for a request that is not there yet
        s.sendall(http_client.get(p, host="trace"))
        _, buf = http_client.read_response(s, buf)
    s.close()
finally:
    for pid in procs.children(proc.pid):  # the server, strace's child: strace ends with it
        os.kill(pid, signal.SIGTERM)
    proc.wait()
    err.finish()
PY

main_tid=$(awk 'NR == 1 {print $1}' "$tmp/trace")
echo "# ${server[*]}: the syscalls of two keep-alive GET /index.html (4 KiB), from strace -f"
awk '/"trace-begin"/ {on = 1; next} /"trace-end"/ {on = 0} on' "$tmp/trace" >"$out/$model.strace"
# Drawn before printing, so that a reader that stops early (| head) does not lose it.
scripts/swimlane.py --model "$model" --main-tid "$main_tid" "$out/$model.strace" "$svg"
echo "# swimlane: $svg" >&2
# The printed trace has no times: drop -tt's clock and -T's <duration>.
sed -E 's/^([0-9]+ +)[0-9:.]+ /\1/; s/ <[0-9.]+>$//' "$out/$model.strace" >"$tmp/cut"
# One thread served them: drop strace's thread-id column. Several (bin/blocking's
# accept thread, glibc's aio threads): keep it, so each line says who made the call.
if [[ $(awk '{print $1}' "$tmp/cut" | sort -u | wc -l) -gt 1 ]]; then
    echo "# (first column: the thread id; several threads took part)"
    cat "$tmp/cut"
else
    sed -E 's/^[0-9]+ +//' "$tmp/cut"
fi
