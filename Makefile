# lmr front door. `make demo` and `make test` install what is missing, configure, build, run.
BUILD     ?= build
BUILD_SAN ?= build-san
BUILD_VG  ?= build-vg
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX    ?= /usr/local
CMAKE_ARGS ?=

.PHONY: all deps deps-test build build-san test test-fast demo bench install valgrind clean

all: build

deps:
	@scripts/deps.sh

deps-test:
	@scripts/deps.sh --test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

$(BUILD_SAN)/CMakeCache.txt:
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DLMR_SANITIZE=ON -DLMR_CUDA=OFF $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-san: deps $(BUILD_SAN)/CMakeCache.txt
	cmake --build $(BUILD_SAN) -j $(JOBS)

# Both builds, both test runs: the normal one, then under AddressSanitizer + UBSan.
test: deps-test build build-san
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -LE nosan

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

$(BUILD_VG)/CMakeCache.txt:
	cmake -S . -B $(BUILD_VG) -DCMAKE_BUILD_TYPE=Debug -DLMR_CUDA=OFF $(CMAKE_ARGS)

# The unit tests under valgrind, in a build without CUDA (the CUDA runtime's own start-up reads
# are not ours to fix).
valgrind: deps-test $(BUILD_VG)/CMakeCache.txt
	cmake --build $(BUILD_VG) -j $(JOBS)
	cd $(BUILD_VG) && ctest -L unit -T memcheck -j $(JOBS) --output-on-failure

demo: build
	@if [ -f scripts/pipelines/demo.mk ]; then \
	  $(MAKE) --no-print-directory -f scripts/pipelines/demo.mk BIN=$(abspath $(BUILD))/bin; \
	else echo "demo: not yet"; fi

bench: build
	@for b in bench/*.sh; do [ -f "$$b" ] && echo "== $$b" && bash "$$b" $(abspath $(BUILD))/bin; done

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_VG) out
