# c10k - five Unix I/O models as eight HTTP servers, and the bench that compares them.
#
#   make            build bin/*
#   make test       install what is missing, build, run every test
#   make bench      install what is missing, build, benchmark, plot (results/)
#   make asan|ubsan sanitizer builds into bin-asan/ and bin-ubsan/

VERSION := 0.1.0
CC      ?= cc
OPT     ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -Icommon \
           -DC10K_VERSION=\"$(VERSION)\" -MMD -MP
LDLIBS  += -lhttp_parser -lpthread

BUILD ?= build
BIN   ?= bin

SERVERS    := $(sort $(basename $(notdir $(wildcard servers/*.c))))
COMMON_OBJ := $(patsubst common/%.c,$(BUILD)/common/%.o,$(wildcard common/*.c))
UNIT_TESTS := $(sort $(basename $(notdir $(wildcard tests/unit/test_*.c))))

# Libraries that only one model needs.
LIBS_uring := -luring

.PHONY: all deps asan ubsan tsan test clean format fuzz trace
all: $(SERVERS:%=$(BIN)/%)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libc10k.a: $(COMMON_OBJ)
	$(AR) rcs $@ $^

$(BIN)/%: $(BUILD)/servers/%.o $(BUILD)/libc10k.a
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libc10k.a $(LIBS_$*) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libc10k.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libc10k.a $(LDLIBS)

SAN_FLAGS_asan  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_FLAGS_ubsan := -fsanitize=undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_FLAGS_tsan  := -fsanitize=thread
asan ubsan:
	$(MAKE) BUILD=build-$@ BIN=bin-$@ OPT="-O1 -g $(SAN_FLAGS_$@)" LDFLAGS="$(SAN_FLAGS_$@)" all
# ThreadSanitizer, for bin/blocking. (bin/aio cannot run under it: glibc starts its aio
# threads with an internal pthread_create that TSan does not see, and TSan crashes.)
TSAN_SERVERS := blocking
tsan:
	$(MAKE) BUILD=build-tsan BIN=bin-tsan OPT="-O1 -g $(SAN_FLAGS_tsan)" \
	  LDFLAGS="$(SAN_FLAGS_tsan)" $(TSAN_SERVERS:%=bin-tsan/%)

# ---- dependencies: Debian packages, installed when missing (as root) ----------
PACKAGES := gcc make libc6-dev pkg-config libhttp-parser-dev liburing-dev \
            wrk nginx-light gnuplot-nox strace procps python3 clang libclang-rt-dev \
            slowhttptest util-linux linux-perf h2o lighttpd
deps:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# ---- tests -----------------------------------------------------------------------
test: deps
	$(MAKE) all asan tsan $(UNIT_TESTS:%=$(BUILD)/tests/%)
	@tests/run.sh

# ---- fuzzing (clang, libFuzzer): bytes -> parser glue -> handler -> response plan --------
FUZZ_SECS ?= 60
FUZZ_SRC  := tests/fuzz/fuzz_request.c common/http.c common/handler.c common/files.c common/clock.c
build-fuzz/fuzz_request: $(FUZZ_SRC) $(wildcard common/*.h)
	@mkdir -p build-fuzz/corpus
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Icommon -DC10K_VERSION=\"$(VERSION)\" \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_SRC) $(LDLIBS)
fuzz: deps build-fuzz/fuzz_request
	build-fuzz/fuzz_request -max_total_time=$(FUZZ_SECS) -print_final_stats=1 \
	  -artifact_prefix=build-fuzz/ build-fuzz/corpus tests/fuzz/corpus

# ---- teaching: the syscalls one model makes for two keep-alive requests --------
MODEL ?= epoll
trace: all
	@scripts/trace.sh $(MODEL)

clean:
	rm -rf build build-asan build-ubsan build-tsan build-fuzz bin bin-asan bin-ubsan bin-tsan

format:
	clang-format -i common/*.[ch] servers/*.c tests/unit/*.[ch]

# make bench, bench-quick, bench-ci, bench-baseline; make stress.
include bench/bench.mk tests/stress.mk
bench bench-quick bench-ci bench-baseline stress: deps all

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
.SECONDARY:
