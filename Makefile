# c10k - five Unix I/O models as thirteen HTTP servers, and the bench that compares them.
#
#   make            build bin/*
#   make test       install what is missing, build, run every test
#   make bench      install what is missing, build, benchmark, plot (results/)
#   make asan|ubsan sanitizer builds into bin-asan/ and bin-ubsan/
#   make costs      what a process, a thread and a coroutine cost to create and switch
#   make slides     the lecture's slides, one self-contained HTML file (build/slides/)
#   make grade LAB=DIR  builds a student's poller (labs/poller/) and grades it

VERSION := 0.1.0
CC      ?= cc
OPT     ?= -O2 -g
# Beyond -Wall -Wextra: a local that hides another, a function with no prototype in
# scope (it should be static or in a header), () meaning "any arguments", a format
# that is not a literal, #if on an undefined name, a variable-length array on the
# stack, a switch case that falls through without saying so, an implicit conversion that
# may change a value or its sign (a cast then says it is meant, and why).
WARNINGS := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wformat=2 \
            -Wundef -Wvla -Wimplicit-fallthrough -Wconversion
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(WARNINGS) -Werror -Icommon \
           -DC10K_VERSION=\"$(VERSION)\" -MMD -MP
LDLIBS  += -lhttp_parser -lpthread

BUILD ?= build
BIN   ?= bin

SERVERS    := $(sort $(basename $(notdir $(wildcard servers/*.c))))
# The readiness models' event loop, poll's interest set and the completion models'
# ring are linked only into the binaries whose row in servers/models.tsv names them,
# never picked from the archive by link order.
LOOP_SRC   := common/loop.c common/pollset.c common/ring.c
COMMON_OBJ := $(patsubst common/%.c,$(BUILD)/common/%.o,$(filter-out $(LOOP_SRC),$(wildcard common/*.c)))
UNIT_TESTS := $(sort $(basename $(notdir $(wildcard tests/unit/test_*.c))))

# The models: servers/models.tsv, one row each (its header says what each column holds).
# Each row sets OBJS_name, what the binary links besides its servers/ file and libc10k.a
# (the readiness models share loop.o and bring their own poller_*(); poll and busypoll
# differ only in poller_wait() and take the rest from pollset.o; uring and corouring share
# ring.o; fork and prefork run bin/blocking's loop, servers/blocking.nomain.o), LIBS_name, the libraries only it needs, and puts the model in
# SAN_SERVERS_asan, _ubsan and _tsan, the sanitizer builds its row names.
comma      := ,
MODEL_ROWS := $(shell awk -F'\t+' '!/^\#/ && NF { print $$1 "|" $$2 "|" $$3 "|" $$4 }' servers/models.tsv)
model_cell  = $(filter-out -,$(subst $(comma), ,$(word $(2),$(subst |, ,$(1)))))
$(foreach row,$(MODEL_ROWS), \
  $(eval OBJS_$(call model_cell,$(row),1) := $(call model_cell,$(row),2)) \
  $(eval LIBS_$(call model_cell,$(row),1) := $(call model_cell,$(row),3)) \
  $(foreach san,$(call model_cell,$(row),4),$(eval SAN_SERVERS_$(san) += $(call model_cell,$(row),1))))

# The objects a row names: NAME.o is build/common/NAME.o, DIR/NAME.o is build/DIR/NAME.o.
model_objs  = $(foreach o,$(OBJS_$(1)),$(BUILD)/$(if $(findstring /,$(o)),,common/)$(o))

# The unit test of conn_drive() brings its own poller_wait().
OBJS_test_loop := loop.o pollset.o
OBJS_test_ring := ring.o
LIBS_test_ring := -luring

.PHONY: all deps asan ubsan tsan test clean format fuzz trace trace-figures www costs slides
all: $(SERVERS:%=$(BIN)/%)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# A model's object with its main() made a local symbol, for the binaries that run that
# model's loop under a main() of their own (bin/fork and bin/prefork run bin/blocking's):
# the model stays whole in its one servers/ file, with no #ifdef around its main().
OBJCOPY ?= objcopy
$(BUILD)/servers/%.nomain.o: $(BUILD)/servers/%.o
	$(OBJCOPY) --localize-symbol=main $< $@

# Made afresh each time: ar would keep the member of a source moved out of common/.
$(BUILD)/libc10k.a: $(COMMON_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

.SECONDEXPANSION:
$(BIN)/%: $(BUILD)/servers/%.o $$(call model_objs,$$*) $(BUILD)/libc10k.a \
          servers/models.tsv
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libc10k.a $(LIBS_$*) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $$(call model_objs,$$*) $(BUILD)/libc10k.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libc10k.a $(LIBS_$*) $(LDLIBS)

SAN_FLAGS_asan  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_FLAGS_ubsan := -fsanitize=undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_FLAGS_tsan  := -fsanitize=thread
# Each builds the models whose row in servers/models.tsv names it; ThreadSanitizer only the
# threaded ones. (bin/aio cannot run under TSan: glibc starts its aio threads with an
# internal pthread_create that TSan does not see, and TSan crashes.)
asan ubsan tsan:
	$(MAKE) BUILD=build-$@ BIN=bin-$@ OPT="-O1 -g $(SAN_FLAGS_$@)" LDFLAGS="$(SAN_FLAGS_$@)" \
	  $(SAN_SERVERS_$@:%=bin-$@/%)

# ---- dependencies: Debian packages, installed when missing (as root) ----------
PACKAGES := gcc make libc6-dev pkg-config libhttp-parser-dev liburing-dev iproute2 \
            wrk nginx-light gnuplot-nox strace procps python3 clang libclang-rt-dev \
            slowhttptest util-linux linux-perf valgrind linux-libc-dev h2o lighttpd \
            httperf pandoc chromium python3-pytest
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
	$(MAKE) all asan tsan inject $(UNIT_TESTS:%=$(BUILD)/tests/%)
	@tests/run.sh

# ---- fuzzing (clang, libFuzzer): bytes -> parser glue -> handler -> response plan --------
FUZZ_SECS ?= 60
FUZZ_SRC  := tests/fuzz/fuzz_request.c common/http.c common/handler.c common/files.c common/beneath.c \
             common/clock.c
build-fuzz/fuzz_request: $(FUZZ_SRC) $(wildcard common/*.h)
	@mkdir -p build-fuzz/corpus
	clang -std=c11 -D_GNU_SOURCE -g -O1 $(WARNINGS) -Werror -Icommon -DC10K_VERSION=\"$(VERSION)\" \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_SRC) $(LDLIBS)
fuzz: deps build-fuzz/fuzz_request
	build-fuzz/fuzz_request -max_total_time=$(FUZZ_SECS) -print_final_stats=1 \
	  -artifact_prefix=build-fuzz/ build-fuzz/corpus tests/fuzz/corpus

# ---- teaching: what a process, a thread and a coroutine cost (bench/c/costs.c) ----
$(BUILD)/bench/costs: bench/c/costs.c $(BUILD)/libc10k.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libc10k.a $(LDLIBS)
costs: $(BUILD)/bench/costs
	$<

# ---- teaching: the syscalls one model makes for two keep-alive requests --------
# make trace MODEL=x prints them and draws build/trace/x.svg; MODEL=asyncio traces
# examples/asyncio_server.py. make trace-figures redraws docs/figures/trace-*.svg.
MODEL ?= epoll
TRACE_MODELS := $(SERVERS) asyncio
trace: all
	@scripts/trace.sh $(MODEL) || [ $$? = 141 ] # 141: a reader such as head stopped early
trace-figures: all
	@for m in $(TRACE_MODELS); do \
	  TRACE_SVG=docs/figures/trace-$$m.svg scripts/trace.sh $$m >/dev/null || exit 1; done
# www/: the bench's three files (small.txt, index.html, 1m.bin), to try a server by hand.
www:
	@python3 -c 'import sys; sys.path.insert(0, "bench"); import www; print(www.generate("www"))'

# ---- teaching: slides from docs/slides.md, with pandoc's dzslides: one HTML file with the
# figures, styles and script inside, so it works offline; docs/slides-style.html sets sizes.
SLIDES := $(BUILD)/slides/index.html
slides: $(SLIDES)
$(SLIDES): docs/slides.md docs/slides-style.html docs/figures/five-models.svg docs/figures/epoll-mechanism.svg
	@command -v pandoc >/dev/null || { echo "pandoc is missing: make deps" >&2; exit 2; }
	@mkdir -p $(dir $@)
	pandoc -t dzslides --slide-level=1 -s --self-contained -H docs/slides-style.html \
	  --resource-path=docs -o $@ docs/slides.md
	@echo "slides: $@ (open it in a browser; arrow keys move)"

# ---- teaching: the lab "write a poller" (docs/lab.md) ---------------------------------
# make grade LAB=DIR links DIR/poller.c with the shared event loop into build/grade/ltepoll
# and grades it (labs/grade.py): the integration suite and the counted profile.
LAB ?= labs/poller
GRADE_BIN := $(BUILD)/grade/ltepoll
.PHONY: grade
grade: $(BUILD)/common/loop.o $(BUILD)/libc10k.a
	@mkdir -p $(dir $(GRADE_BIN))
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(LDFLAGS) -o $(GRADE_BIN) $(LAB)/poller.c \
	  $(BUILD)/common/loop.o $(BUILD)/libc10k.a $(LDLIBS)
	@python3 labs/grade.py $(GRADE_BIN)

clean:
	rm -rf build build-asan build-ubsan build-tsan build-fuzz bin bin-asan bin-ubsan bin-tsan

format:
	clang-format -i common/*.[ch] servers/*.[ch] bench/c/*.[ch] tests/unit/*.[ch] tests/inject/*.[ch] \
	  tests/fuzz/*.c

# make bench, bench-quick, bench-ci, bench-ci-det, bench-ci-update, bench-baseline; make stress.
include bench/bench.mk tests/stress.mk
bench bench-quick bench-ci bench-ci-det bench-ci-update bench-baseline stress: deps all

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
.SECONDARY:
