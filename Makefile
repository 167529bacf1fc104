# The front door of stall. `make` builds into build/ (build/stall is the CLI,
# build/python holds the package), `make demo` shows it at work, `make test`
# runs every test: C unit tests, the same under ASan+UBSan, the ring's
# concurrency tests under TSan, a smoke run of the parsers' fuzz targets, and
# the Python tests. Each target first makes
# sure the Debian packages it needs are there (tools/ensure-deps).

# The Debian interpreter: the one apt-get installs python3-* packages for.
# (Another python3 may come first on PATH; it would lack them.)
PYTHON ?= /usr/bin/python3
BUILD ?= build
MESON ?= meson
NINJA ?= ninja

.PHONY: all build demo test bench fuzz scenarios clean deps

all: build

deps:
	@./tools/ensure-deps build test demo bench

$(BUILD)/build.ninja:
	@./tools/ensure-deps build
	@if [ -d $(BUILD) ]; then $(MESON) setup --wipe $(BUILD) -Dpython=$(PYTHON); \
	else $(MESON) setup $(BUILD) -Dpython=$(PYTHON); fi

build: $(BUILD)/build.ninja
	@./tools/ensure-deps build
	@$(NINJA) -C $(BUILD)

demo: build
	@./tools/ensure-deps demo
	@PYTHON=$(PYTHON) BUILD=$(BUILD) ./tools/demo

test: build
	@./tools/ensure-deps test
	@PYTHON=$(PYTHON) BUILD=$(BUILD) ./tests/run-all

# the scenario suite alone (make test runs it too); its confusion matrix
# and accuracy, and the what-if table, are appended to bench/RESULTS.md
scenarios: build
	@./tools/ensure-deps test
	@$(PYTHON) tests/scenarios/run.py $(BUILD) --what-if --results bench/RESULTS.md

bench: build
	@./tools/ensure-deps bench
	@PYTHON=$(PYTHON) BUILD=$(BUILD) ./bench/run

# the parsers' libFuzzer targets, 60 s each (make test runs a short smoke)
FUZZ_SECONDS ?= 60
fuzz:
	@./tools/ensure-deps test
	@./fuzz/run $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
