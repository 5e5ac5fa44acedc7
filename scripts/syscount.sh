#!/usr/bin/env bash
# scripts/syscount.sh MODEL [REQUESTS] [CONNS] [PAUSE_MS] [BYTES] - system calls per request.
#
# Starts bin/MODEL under `strace -f -c` (every thread, the count of each call), opens
# CONNS keep-alive connections (default 1), sends REQUESTS GET /index.html (BYTES long,
# default 4096; 1048576 shows sendfile against read/write) over them in turn, one at a
# time, PAUSE_MS (default 0) apart, stops the server and
# prints each call's count divided by REQUESTS (calls under 0.01 per request are summed in
# one line). Counts do not depend on the machine's load, so this is the measurement to show
# on a busy machine; the times strace adds are not printed.
# MODEL=asyncio counts examples/asyncio_server.py.
set -euo pipefail
model=${1:?usage: scripts/syscount.sh MODEL [REQUESTS] [CONNS] [PAUSE_MS] [BYTES]}
requests=${2:-1000}
conns=${3:-1}
pause_ms=${4:-0}
bytes=${5:-4096}
cd "$(dirname "$0")/.."
if [[ $model == asyncio ]]; then
    # The interpreter itself, not a launcher on PATH (a pyenv shim is a shell script whose
    # execs strace -f would count as the server's): what `python3` runs, resolved.
    server=("$(python3 -c 'import sys; print(sys.executable)')" examples/asyncio_server.py)
else
    [[ -x bin/$model ]] || { echo "no bin/$model: run make first" >&2; exit 2; }
    server=("bin/$model")
fi

tmp=$(mktemp -d)
spid=
trap 'pkill -P "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/www"
head -c "$bytes" /dev/zero | tr '\0' 'x' >"$tmp/www/index.html"

# The file exists before the server starts: the background job opens it for its stderr only
# once it runs, and the loop below must not look for it before then.
: >"$tmp/err"
strace -f -qq -c -o "$tmp/count" "${server[@]}" --port 0 --root "$tmp/www" --quiet 2>"$tmp/err" &
spid=$!
for _ in $(seq 100); do grep -q '^listening on' "$tmp/err" && break; sleep 0.1; done
port=$(sed -n 's/^listening on .*:\([0-9]*\) model=.*/\1/p' "$tmp/err")
[[ -n $port ]] || { cat "$tmp/err" >&2; exit 1; }

python3 - "$port" "$requests" "$conns" "$pause_ms" "$bytes" <<'PY'
import socket, sys, time
port, requests, conns, pause_ms, size = (int(a) for a in sys.argv[1:])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
for i in range(requests):
    s = socks[i % conns]
    time.sleep(pause_ms / 1000)
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: count\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < size:
        chunk = s.recv(1 << 20)
        if not chunk:
            sys.exit("server closed the connection")
        data += chunk
for s in socks:
    s.close()
PY
pkill -TERM -P "$spid"
wait "$spid" || true

echo "# ${server[*]}: system calls per request, $requests GET /index.html ($bytes bytes) over $conns connection(s), ${pause_ms} ms apart"
echo "# (whole run: start-up, accepts and shutdown included; strace -f -c)"
awk -v n="$requests" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
        total += $4
        if ($4 / n >= 0.01) printf "%-22s %9.3f\n", $NF, $4 / n; else other += $4
    }
    END {
        printf "%-22s %9.3f\n", "total", total / n
        if (other) printf "%-22s %9.3f\n", "(all the others)", other / n
    }' "$tmp/count" | sort -k2 -rn
