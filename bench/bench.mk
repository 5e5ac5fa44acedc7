# bench/bench.mk - the benchmark targets; the top Makefile includes this file.
#
#   make bench           every bin/* and the peers (tuned nginx, h2o, lighttpd): the open-loop
#                        sweep at 100 and 10,000 connections and churn, wrk's closed-loop peak,
#                        the idle-connection sweep (20-25 minutes, BENCH_BUDGET)
#   make bench-quick     every server and peer: wrk at c=1000, a short open-loop ladder at
#                        10,000 connections (< 3 min)
#   make bench-ci        regression gate: ratios to nginx vs results/baseline.csv (< 5 min)
#   make bench-baseline  rewrites results/baseline.csv (commit it)
#
# Each writes results/RUN_ID/. Environment knobs (BENCH_SERVERS, BENCH_PEERS, BENCH_OPEN_CONNS,
# BENCH_CONNS, BENCH_SECS, BENCH_IDLE, BENCH_BUDGET, ...) are described in docs/bench.md.

# Including this file must not change the top Makefile's default goal.
bench_saved_goal := $(.DEFAULT_GOAL)

BUILD ?= build
BENCH_IDLERS := $(BUILD)/bench/idlers
BENCH_LOADGEN := $(BUILD)/bench/loadgen
BENCH_TOOLS := $(BENCH_IDLERS) $(BENCH_LOADGEN)
BENCH_PY ?= python3

$(BENCH_IDLERS): bench/idlers.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

# The open-loop load generator (docs/loadgen.md).
LOADGEN_SRC := bench/loadgen.c bench/loadgen_results.c
$(BENCH_LOADGEN): $(LOADGEN_SRC) bench/loadgen_results.h
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(LDFLAGS) -o $@ $(LOADGEN_SRC) -lm

# make test runs tests/test_loadgen.py, which also runs an ASan+UBSan build of it.
BENCH_LOADGEN_ASAN := build-asan/bench/loadgen
$(BENCH_LOADGEN_ASAN): $(LOADGEN_SRC) bench/loadgen_results.h
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) -O1 $(SAN_FLAGS_asan) -o $@ $(LOADGEN_SRC) -lm
test: $(BENCH_LOADGEN) $(BENCH_LOADGEN_ASAN)

.PHONY: bench bench-quick bench-ci bench-baseline bench-idlers bench-loadgen
bench-idlers: $(BENCH_IDLERS)
bench-loadgen: $(BENCH_LOADGEN)

# BUILD is passed on so the harness finds idlers in a non-default build directory.
bench: $(BENCH_TOOLS)
	BUILD=$(BUILD) $(BENCH_PY) bench/bench.py full
bench-quick: $(BENCH_TOOLS)
	BUILD=$(BUILD) $(BENCH_PY) bench/bench.py quick
bench-ci: $(BENCH_IDLERS)
	BUILD=$(BUILD) $(BENCH_PY) bench/bench.py ci
bench-baseline: $(BENCH_IDLERS)
	BUILD=$(BUILD) $(BENCH_PY) bench/bench.py baseline

.DEFAULT_GOAL := $(bench_saved_goal)
