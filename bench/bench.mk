# bench/bench.mk - the benchmark targets; the top Makefile includes this file.
#
#   make bench           the full matrix: every bin/* and nginx x conns 10..10000 x 3 files
#                        x 3 reps, plus the idle-connection sweep (about 15 minutes)
#   make bench-quick     every server at c=1000 on index.html, 1 rep, small idle sweep (~2 min)
#   make bench-ci        regression gate: ratios to nginx vs results/baseline.csv (< 5 min)
#   make bench-baseline  rewrites results/baseline.csv (commit it)
#
# Each writes results/RUN_ID/. Environment knobs (BENCH_SERVERS, BENCH_CONNS, BENCH_FILES,
# BENCH_REPS, BENCH_SECS, BENCH_IDLE, ...) are described in docs/bench.md.

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
$(BENCH_LOADGEN): bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lm

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
