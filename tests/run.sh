#!/usr/bin/env bash
# tests/run.sh - runs every test of the project and ends with one "N passed, M failed" line.
#
#   unit tests:        build/tests/test_*   (each prints "N passed, M failed")
#                      tests/test_*.py are pytest suites, run by pytest-3; their closing
#                      line comes from tests/conftest.py
#                      tests/test_gate.py   (the judging rules of make bench-ci)
#                      scripts/check-doc-refs.py (the names and lines the docs cite)
#                      tests/test_doc_refs.py (that checker fails on a name or line gone)
#                      tests/test_detgate.py (its deterministic layer fails on injected
#                                            regressions, passes without; ~1 min)
#                      tests/test_loadgen.py (build/bench/loadgen against bin/epoll and httperf)
#                      tests/test_bench.py  (the bench harness's rules: SLO, ladder, CSV types)
#                      tests/test_models.py (a model added as one row of servers/models.tsv
#                                            and one servers/NAME.c: every tool sees it)
#                      tests/test_profile.py (make profile's buckets, on fixed perf samples)
#                      tests/test_teaching.py (make demo-idle, demo-rpc, slides, trace.sh, the
#                                            Python examples: the lecture's tools run)
#                      tests/test_lab.py    (make grade passes the lab's reference solution
#                                            and fails its skeleton)
#                      tests/test_netlab.py (make bench-quick on three network namespaces
#                                            joined by veth pairs, and Ctrl-C in it; root)
#   integration suite: tests/integration.py against every bin/* server,
#                      then again against the ASan+UBSan builds in bin-asan/
#                      and the ThreadSanitizer builds of the threaded models in bin-tsan/;
#                      its confinement cases once more with openat2 replaced by the
#                      component walk (C10K_FORCE_BENEATH_FALLBACK=1, common/beneath.c)
set -u
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
tally() { # reads a runner's output, echoes it, and adds its closing counts
    local line
    while IFS= read -r line; do
        printf '%s\n' "$line"
        if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
            last="${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[4]:-0}"
        fi
    done
}

run() { # run NAME COMMAND...: counts a runner that prints no closing line as one failure
    local name=$1 last=""
    shift
    echo "== $name"
    tally < <("$@" 2>&1; echo "exit status $?")
    if [[ -z $last ]]; then
        echo "FAIL $name: no 'N passed, M failed' line"
        failed=$((failed + 1))
        return
    fi
    read -r p f s <<<"$last"
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

for t in build/tests/test_*; do
    [[ -x $t ]] && run "unit $(basename "$t")" "$t"
done
run "unit test_gate.py (bench-ci's rules)" pytest-3 tests/test_gate.py
run "unit check-doc-refs.py (docs cite existing code)" python3 scripts/check-doc-refs.py
run "unit test_doc_refs.py (the doc checker fails on a citation gone)" pytest-3 tests/test_doc_refs.py
run "test_detgate.py (bench-ci sees injected regressions)" pytest-3 tests/test_detgate.py
run "bench/loadgen (open-loop load generator)" pytest-3 tests/test_loadgen.py
run "unit test_bench.py (the bench harness's rules)" pytest-3 tests/test_bench.py
run "test_models.py (a new model: one row, one file)" pytest-3 tests/test_models.py
run "unit test_profile.py (make profile's buckets)" pytest-3 tests/test_profile.py
run "unit test_sendpath.py (the send-path and pairing tools)" pytest-3 tests/test_sendpath.py
run "test_teaching.py (the lecture's tools run)" pytest-3 tests/test_teaching.py
run "test_lab.py (make grade: reference passes, skeleton fails)" pytest-3 tests/test_lab.py
run "test_netlab.py (the bench on a lab of network namespaces; root)" pytest-3 tests/test_netlab.py
run "integration (bin/)" python3 tests/integration.py bin/*
for k in confine symlink_inside dir_; do
    run "integration -k $k (bin/, without openat2)" \
        env C10K_FORCE_BENEATH_FALLBACK=1 python3 tests/integration.py -k "$k" bin/*
done
if compgen -G "bin-asan/*" >/dev/null; then
    run "integration (bin-asan/, ASan+UBSan)" python3 tests/integration.py bin-asan/*
fi
if compgen -G "bin-tsan/*" >/dev/null; then
    run "integration (bin-tsan/, ThreadSanitizer)" python3 tests/integration.py bin-tsan/*
fi

echo
if ((skipped)); then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
((failed == 0))
