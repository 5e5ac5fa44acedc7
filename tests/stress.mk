# tests/stress.mk - `make stress`: load, faults and hostile clients against every bin/*
# (tests/stress.py; what it checks and the last table: docs/reliability.md).
# Included by the top Makefile, which makes it depend on `deps` and `all`.
#
#   make stress                                     every scenario, every server (<= 10 min)
#   make stress STRESS_ARGS='-k slowloris bin/epoll'  one scenario, one server

STRESS_ARGS ?=

.PHONY: stress
stress:
	python3 tests/stress.py $(STRESS_ARGS)
