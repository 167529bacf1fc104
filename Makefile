# The front door of stall. `make` builds into build/ (build/stall is the CLI,
# build/python holds the package), `make demo` shows it at work, `make test`
# runs every test: C unit tests, the same under ASan+UBSan, the ring's
# concurrency tests under TSan, and the Python tests. Each target first makes
# sure the Debian packages it needs are there (tools/ensure-deps).

# The Debian interpreter: the one apt-get installs python3-* packages for.
# (Another python3 may come first on PATH; it would lack them.)
PYTHON ?= /usr/bin/python3
BUILD ?= build
MESON ?= meson
NINJA ?= ninja

.PHONY: all build demo test test-c test-asan test-tsan test-python bench clean deps

all: build

deps:
	@./tools/ensure-deps build test demo

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

bench: build
	@PYTHON=$(PYTHON) BUILD=$(BUILD) ./bench/run

clean:
	rm -rf $(BUILD) build-asan build-tsan
