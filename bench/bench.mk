# bench/bench.mk - the benchmark targets; the top Makefile includes this file.
#
#   make bench           every bin/* and the peers (tuned nginx, h2o, lighttpd): the open-loop
#                        sweep at 100 and 10,000 connections and churn, wrk's closed-loop peak,
#                        the idle-connection sweep (20-25 minutes, BENCH_BUDGET)
#   make bench-quick     every server and peer: wrk at c=1000, a short open-loop ladder at
#                        10,000 connections (< 3 min)
#   make bench-check     bin/epoll made ~30% dearer per request (an LD_PRELOAD) must come out
#                        dearer than bin/epoll, intervals apart (~1 min; not part of make test)
#   make bench-ci        regression gate, two layers (docs/bench.md): first the deterministic
#                        one (bench/detgate.py: syscalls and user-space instructions per request
#                        vs results/profile.json, ~1 min), which alone decides pass or fail;
#                        then the wall-clock ratios to nginx vs results/baseline.csv (~4 min),
#                        reported, failing only with BENCH_STRICT=1
#   make bench-ci-det    the deterministic layer alone
#   make bench-ci-update rewrites results/profile.json and prints what changed (commit it)
#   make bench-history   draws each server's syscalls and instructions per request for every
#                        commit of results/profile.json (results/history/)
#   make bench-baseline  rewrites results/baseline.csv (commit it)
#   make profile MODEL=epoll   where the server's CPU goes (bench/profile.py, docs/profile.md):
#                        perf samples over a fixed open-loop load, sorted into buckets;
#                        MODELS="epoll uring coro nginx" draws them side by side. As root.
#                        PROFILE_CONNS, PROFILE_RATE, PROFILE_SECS, PROFILE_REPS, and
#                        PROFILE_ARGS for more options (--count, --overhead: docs/profile.md)
#   make sendpath        how a file body should leave an io_uring server (bench/sendpath.py,
#                        docs/profile.md): splice, SEND, SEND_ZC and SEND_ZC from a registered
#                        buffer, CPU per MiB at each body size; SENDPATH_SIZES, SENDPATH_REPS,
#                        SENDPATH_MIB (~2 min)
#   make demo-idle       for a class: poll against epoll with 0 and 5,000 idle connections,
#                        printed and drawn into build/demo-idle/demo-idle.png
#                        (bench/demo_idle.py: idlers + loadgen, no peers, no root, ~25 s)
#   make demo-rpc        for a class: loadgen (one thread, many calls in flight) against a
#                        thread-per-call client, same load on bin/epoll (bench/demo_rpc.py, ~15 s)
#
# Each writes results/RUN_ID/. Environment knobs (BENCH_SERVERS, BENCH_PEERS, BENCH_OPEN_CONNS,
# BENCH_CONNS, BENCH_SECS, BENCH_IDLE, BENCH_BUDGET, ...) are described in docs/bench.md.

# Including this file must not change the top Makefile's default goal.
bench_saved_goal := $(.DEFAULT_GOAL)

BUILD ?= build
BENCH_IDLERS := $(BUILD)/bench/idlers
BENCH_LOADGEN := $(BUILD)/bench/loadgen
BENCH_FLOOR := $(BUILD)/bench/floor
BENCH_SENDPATH := $(BUILD)/bench/sendpath
BENCH_TOOLS := $(BENCH_IDLERS) $(BENCH_LOADGEN) $(BENCH_FLOOR)
BENCH_RPC_THREADS := $(BUILD)/bench/rpc_threads
BENCH_PY ?= python3

# The C tools' sources moved from bench/ to bench/c/; a build directory's older .d files
# still name them there. Like -MP's targets for headers: a missing one makes its tool rebuild
# once, which writes a new .d.
bench/idlers.c bench/rpc_threads.c bench/costs.c:

$(BENCH_IDLERS): bench/c/idlers.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

# The null server every open-loop run is calibrated against (docs/bench.md, the floor).
$(BENCH_FLOOR): bench/c/floor.c bench/c/floor_uring.c bench/c/floor.h
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(LDFLAGS) -o $@ $(filter %.c,$^) -luring -lpthread

# The send-path measurement (bench/sendpath.py drives it).
$(BENCH_SENDPATH): bench/c/sendpath.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(LDFLAGS) -o $@ $< -luring

# The open-loop load generator (docs/loadgen.md).
LOADGEN_SRC := bench/c/loadgen.c bench/c/loadgen_results.c
$(BENCH_LOADGEN): $(LOADGEN_SRC) bench/c/loadgen_results.h
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(LDFLAGS) -o $@ $(LOADGEN_SRC) -lm

# make test runs tests/test_loadgen.py, which also runs an ASan+UBSan build of it. (The
# sanitizer sub-make, BUILD=build-asan, already has that path as its BENCH_LOADGEN.)
BENCH_LOADGEN_ASAN := build-asan/bench/loadgen
ifneq ($(BENCH_LOADGEN),$(BENCH_LOADGEN_ASAN))
$(BENCH_LOADGEN_ASAN): $(LOADGEN_SRC) bench/c/loadgen_results.h
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) -O1 $(SAN_FLAGS_asan) -o $@ $(LOADGEN_SRC) -lm
endif
test: $(BENCH_LOADGEN) $(BENCH_LOADGEN_ASAN) $(BENCH_IDLERS) $(BENCH_RPC_THREADS) $(BENCH_FLOOR) $(BENCH_SENDPATH)

# The thread-per-call client of make demo-rpc: one blocking connection per thread.
$(BENCH_RPC_THREADS): bench/c/rpc_threads.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lpthread

.PHONY: profile sendpath bench bench-quick bench-check bench-ci bench-ci-det bench-ci-update bench-history bench-baseline bench-idlers bench-loadgen bench-floor bench-tools inject \
        demo-idle demo-rpc
bench-idlers: $(BENCH_IDLERS)
bench-floor: $(BENCH_FLOOR)
# What the bench runs on a client or server host of a lab (docs/lab-bench.md).
bench-tools: $(BENCH_TOOLS)
bench-loadgen: $(BENCH_LOADGEN)

# LD_PRELOAD libraries that inject a regression into every server (tests/test_detgate.py),
# each linked with the wrappers of the response-sending calls in sends.c and of the
# accepting calls in accepts.c.
INJECT_SHARED := tests/inject/sends.c tests/inject/accepts.c
INJECT_LIBS := $(patsubst tests/inject/%.c,$(BUILD)/inject/%.so,\
                 $(filter-out $(INJECT_SHARED),$(wildcard tests/inject/*.c)))
inject: $(INJECT_LIBS)
$(BUILD)/inject/%.so: tests/inject/%.c $(INJECT_SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared $(LDFLAGS) -o $@ $^ -ldl

# BUILD is passed on so the harness finds idlers in a non-default build directory.
bench: $(BENCH_TOOLS)
	BUILD=$(BUILD) $(BENCH_PY) bench/bench.py full
bench-quick: $(BENCH_TOOLS)
	BUILD=$(BUILD) $(BENCH_PY) bench/bench.py quick
# The wall-clock report runs even when the deterministic layer failed (it may say more),
# and its verdict counts only with BENCH_STRICT=1.
# The deterministic layer's failures are printed again at the end (DETGATE_SUMMARY).
bench-ci: $(BENCH_IDLERS)
	@det=0; rm -f $(BUILD)/detgate-fails.txt; \
	DETGATE_SUMMARY=$(BUILD)/detgate-fails.txt $(BENCH_PY) bench/detgate.py check || det=$$?; \
	wall=0; BUILD=$(BUILD) $(BENCH_PY) bench/bench.py ci || wall=$$?; \
	if [ $$det != 0 ]; then cat $(BUILD)/detgate-fails.txt 2>/dev/null; \
	  echo "bench-ci: FAIL (deterministic layer)"; exit 1; fi; \
	if [ $$wall != 0 ] && [ "$$BENCH_STRICT" = 1 ]; then \
	  echo "bench-ci: FAIL (wall clock, BENCH_STRICT=1)"; exit 1; fi; \
	if [ $$wall != 0 ]; then echo "bench-ci: the wall-clock report did not finish (not judged)"; fi; \
	echo "bench-ci: PASS"
bench-ci-det:
	$(BENCH_PY) bench/detgate.py check
bench-ci-update:
	$(BENCH_PY) bench/detgate.py update
# A benchmark check, outside make test (timing, ~1 min): the efficiency curves see bin/epoll
# made ~30% dearer per request by tests/inject/busy_send.c (tests/test_bench_inject.py).
bench-check: $(BENCH_TOOLS) $(BUILD)/inject/busy_send.so
	BUILD=$(BUILD) pytest-3 -s tests/test_bench_inject.py
bench-history:
	$(BENCH_PY) bench/history.py
bench-baseline: $(BENCH_IDLERS)
	BUILD=$(BUILD) $(BENCH_PY) bench/bench.py baseline
# Any bin/* server, a peer (nginx, h2o, lighttpd) or a server built into $(BUILD)/bench/.
PROFILE_CONNS ?= 100
PROFILE_RATE ?= 5000
PROFILE_SECS ?= 5
PROFILE_REPS ?= 1
PROFILE_ARGS ?=
profile: all $(BENCH_LOADGEN) $(BENCH_FLOOR)
	BUILD=$(BUILD) $(BENCH_PY) bench/profile.py --conns $(PROFILE_CONNS) \
	  --rate $(PROFILE_RATE) --secs $(PROFILE_SECS) --reps $(PROFILE_REPS) $(PROFILE_ARGS) \
	  $(or $(MODELS),$(MODEL))
SENDPATH_SIZES ?= 4k,16k,64k,256k,1m,4m,16m
SENDPATH_REPS ?= 5
SENDPATH_MIB ?= 256
sendpath: $(BENCH_SENDPATH)
	BUILD=$(BUILD) $(BENCH_PY) bench/sendpath.py --sizes $(SENDPATH_SIZES) \
	  --reps $(SENDPATH_REPS) --mib $(SENDPATH_MIB) \
	  --out results/$$(date -u +%Y-%m-%dT%H%M)-sendpath
# No deps here: it needs nothing beyond what make builds, and never root.
demo-idle: $(BIN)/poll $(BIN)/epoll $(BENCH_TOOLS)
	BUILD=$(BUILD) $(BENCH_PY) bench/demo_idle.py
demo-rpc: $(BIN)/epoll $(BENCH_LOADGEN) $(BENCH_RPC_THREADS)
	BUILD=$(BUILD) $(BENCH_PY) bench/demo_rpc.py

.DEFAULT_GOAL := $(bench_saved_goal)
