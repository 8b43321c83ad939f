# Pocket Agent Server — developer entry points. `make run` and `make test` do all the set-up.
SHELL := /bin/bash
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
# Tests mostly wait on sockets and child processes: one more than the cores keeps the CPU busy.
TEST_JOBS ?= $(shell echo $$(( $$(nproc) + 1 )))
PREFIX ?= /usr/local
DATA_DIR ?= ./data
CERT_DIR ?= ./certs
SERVER := $(BUILD_DIR)/app/pocket-agent-server
# The CLI on PATH if there is one, else the pinned copy `make deps` installs.
CLAUDE ?= $(shell command -v claude || echo $(CURDIR)/tools/claude-cli/node_modules/.bin/claude)
CMAKE_FLAGS ?=
# ccache hits across checkouts (worktrees, CI's fresh clone): paths relative to the checkout.
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_NOHASHDIR ?= 1

.PHONY: deps build test test-asan test-race fuzz lint fmt certs run install bench load-test bench-cluster clean

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Unit, integration, end-to-end and browser tests; ends with ctest's summary line.
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(TEST_JOBS) --timeout 300

# Sanitizer runs leave out the browser tests (they test the page, not the server's memory) and
# the tests that mostly run the real CLI under node: the server paths those reach run under the
# sanitizers in the fake-CLI tests, and they would add minutes to CI. `make test` runs both.
NOT_SANITIZED := ^(RealCli|AllModes/RealCliPermissionMode)

# ASan + UBSan build of everything, then the whole suite but the tests above.
test-asan: deps
	$(MAKE) --no-print-directory BUILD_DIR=build-asan BUILD_TYPE=Debug CMAKE_FLAGS="-DPA_SANITIZE=asan -DPA_BUILD_BENCH=OFF" build
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(TEST_JOBS) --timeout 600 -LE browser -E '$(NOT_SANITIZED)'

# ThreadSanitizer build of everything, then the whole suite but the tests named above.
test-race: deps
	$(MAKE) --no-print-directory BUILD_DIR=build-tsan BUILD_TYPE=Debug CMAKE_FLAGS="-DPA_SANITIZE=tsan -DPA_BUILD_BENCH=OFF" build
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -j $(TEST_JOBS) --timeout 600 -LE browser -E '$(NOT_SANITIZED)'

# libFuzzer targets (fuzz/, clang + ASan + UBSan) in build-fuzz, each run for FUZZ_SECONDS on a
# scratch copy of its seed corpus (fuzz/corpus/<name>); a crash fails the target. See fuzz/README.md.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := envelope:65536 cli_line:65536 config:16384 node_message:65536
fuzz: deps
	@[[ -f build-fuzz/build.ninja ]] || CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPA_BUILD_FUZZ=ON -DPA_BUILD_TESTS=OFF -DPA_BUILD_BENCH=OFF
	cmake --build build-fuzz -j $(JOBS) --target pa_fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	  name=$${t%%:*}; corpus=build-fuzz/corpus/$$name; \
	  mkdir -p $$corpus build-fuzz/artifacts; cp -n fuzz/corpus/$$name/* $$corpus/ || true; \
	  echo "fuzz_$$name: $(FUZZ_SECONDS) s"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    build-fuzz/fuzz/fuzz_$$name -max_total_time=$(FUZZ_SECONDS) -max_len=$${t##*:} \
	    -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/artifacts/$$name- $$corpus 2>build-fuzz/fuzz_$$name.log \
	    || { tail -n 60 build-fuzz/fuzz_$$name.log; echo "fuzz_$$name failed: input in build-fuzz/artifacts/"; exit 1; }; \
	  grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units' build-fuzz/fuzz_$$name.log; \
	done

lint: $(BUILD_DIR)/build.ninja
	find src app -name '*.cpp' -print0 | xargs -0 -n 4 -P $(JOBS) clang-tidy -p $(BUILD_DIR) --quiet

fmt:
	find src app tests bench -name '*.cpp' -o -name '*.hpp' | xargs clang-format -i

# Self-signed ECDSA P-256 development certificate for localhost, 127.0.0.1 and ::1.
certs:
	@scripts/make-certs.sh $(CERT_DIR)

# Installs, builds, makes a certificate and starts the server with data in ./data.
run: build certs
	@mkdir -p -m 0700 $(DATA_DIR)
	@token=$$($(SERVER) token --data-dir $(DATA_DIR)) && \
	  port=$${PA_SERVER_PORT:-8443} && \
	  echo "" && \
	  echo "  Web console: https://localhost:$$port/?token=$$token" && \
	  $(SERVER) qr "https://localhost:$$port/?token=$$token" && \
	  echo "  Connect: wss://localhost:$$port/ws?token=$$token" && \
	  echo "  (or send 'Authorization: Bearer $$token')" && \
	  echo "  Pair a phone (its own token and role): $(SERVER) pair --data-dir $(DATA_DIR) --tls-cert $(CERT_DIR)/server.crt --port $$port" && \
	  echo ""
	@if [ "$$(id -u)" -eq 0 ]; then echo "  Running as root: passing --allow-root (the agent gets root's rights)."; fi
	exec $(SERVER) --data-dir $(DATA_DIR) --tls-cert $(CERT_DIR)/server.crt --tls-key $(CERT_DIR)/server.key \
	  --claude-binary $(CLAUDE) $$([ "$$(id -u)" -eq 0 ] && echo --allow-root)

# The binary, share/pocket-agent/config.example.yaml and lib/systemd/system/pocket-agent-server.service
# (rendered for PREFIX) under $(DESTDIR)$(PREFIX); see deploy/CMakeLists.txt.
# It builds what is missing but does not run `deps` (no apt-get or npm as root under `sudo`).
install: $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(BUILD_DIR) --prefix $(PREFIX)

# Microbenchmarks, the supervisor's overhead and a restart with 10 and 100 live runs (issue 14;
# about 1 minute), search over a 1,000,000-entry history (issue 19; a few minutes, about 1.5 GB
# of scratch space in $PA_BENCH_TMPDIR or /tmp; SEARCH_BENCH_ENTRIES=100000 for a quick look),
# then every load scenario at a small size (under 3 minutes; bench/run-load.sh).
SEARCH_BENCH_ENTRIES ?= 1000000
# Results go to $(BUILD_DIR)/bench-results/; docs/benchmarks.md explains them.
bench: build
	cmake --build $(BUILD_DIR) -j $(JOBS) --target pa_bench
	@mkdir -p $(BUILD_DIR)/bench-results
	@set -e; for b in $(BUILD_DIR)/bench/micro_*_bench; do \
	  echo "== $$b"; "$$b" --benchmark_min_time=0.2 | tee $(BUILD_DIR)/bench-results/$$(basename $$b).txt; \
	done
	@echo "== $(BUILD_DIR)/bench/supervisor_overhead_bench"
	@$(BUILD_DIR)/bench/supervisor_overhead_bench --lines 20000 --bytes 300 --rate 5000 --reattach 10,100 \
	  | tee $(BUILD_DIR)/bench-results/supervisor_overhead.txt
	@echo "== $(BUILD_DIR)/bench/reattach_bench"
	@$(BUILD_DIR)/bench/reattach_bench --runs 10,100 | tee $(BUILD_DIR)/bench-results/reattach.txt
	@echo "== $(BUILD_DIR)/bench/search_bench (issue 19: 1,000,000 history entries in 100 projects)"
	@$(BUILD_DIR)/bench/search_bench --entries $(SEARCH_BENCH_ENTRIES) | tee $(BUILD_DIR)/bench-results/search.txt
	BUILD_DIR=$(BUILD_DIR) bench/run-load.sh quick

# The full targets table of docs/benchmarks.md (10,000 connections, 1,000,000-entry history, ...).
load-test: build
	cmake --build $(BUILD_DIR) -j $(JOBS) --target pa_bench
	BUILD_DIR=$(BUILD_DIR) bench/run-load.sh full

# Cross-node fan-out (issue 20): a redis-server and two nodes on this machine; a flood on node
# b's project to 100 subscribers on b, then on a (through Redis), unpaced and paced. A few
# minutes; needs redis-server. Results in $(BUILD_DIR)/bench-results/cluster/; docs/benchmarks.md,
# "Cluster fan-out (issue 20)". Not part of `make test` or `make bench`.
bench-cluster: build
	cmake --build $(BUILD_DIR) -j $(JOBS) --target pa_bench
	BUILD_DIR=$(BUILD_DIR) bench/cluster-fanout.sh

clean:
	rm -rf $(BUILD_DIR) build-asan build-tsan build-fuzz
