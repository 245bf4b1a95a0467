# The two commands of the README: `make serve` and `make test`. Both install the system
# libraries they need (Debian/Ubuntu) first, so a fresh machine needs nothing else.
SHELL := /bin/bash
SYSTEM_PACKAGES := libopenblas-dev libsqlite3-dev libcurl4-openssl-dev zlib1g-dev openmpi-bin libopenmpi-dev pkg-config
# Only the tests need these: the status page is checked in a real headless browser, the fleet
# tests start a throwaway PostgreSQL 15 cluster (and follow an event stream with curl), and the
# two-host MPI test reaches its second host (a network namespace) through sshd.
TEST_PACKAGES := chromium postgresql-15 curl openssh-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= ./data
WORKERS ?= 1
# OpenBLAS kernels: inherit (OPENBLAS_CORETYPE if set, else detected), auto (detected) or a name; see README.
BLAS_CORE ?= inherit

# Fuzzing: FUZZ_SECONDS per target (libFuzzer in the toolchain; see README, Reliability).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := csv npy idx gzip json spec

.PHONY: deps test-deps install-packages build serve test bench clean fuzz sanitize

# The suite under a sanitizer, in a build folder of its own: SANITIZER=address (ASan and LeakSanitizer) or
# thread (TSan); FILTER narrows it to the tests whose names match (swift test --filter).
SANITIZER ?= address

deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(SYSTEM_PACKAGES)"

test-deps: deps
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(TEST_PACKAGES)"

install-packages:
	@missing=""; for package in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	swift build -c release --product descent

serve: build
	.build/release/descent serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR) --workers $(WORKERS) --blas-core $(BLAS_CORE)

test: test-deps
	swift test
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(if $(CI),20,10)

sanitize: test-deps
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan-suppressions.txt \
	  swift test --scratch-path .build-$(SANITIZER) --sanitize=$(SANITIZER) $(if $(FILTER),--filter '$(FILTER)',)

# Each target in turn for FUZZ_SECONDS, from the committed corpus (new inputs go to .build-fuzz/corpus, not the
# repository), under AddressSanitizer: a crash, a memory error, a leak report, a timeout or an input over the
# memory limit fails the run and leaves the input in .build-fuzz/crashes/.
fuzz: deps
	swift build --product descent-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -parse-as-library
	@rm -rf .build-fuzz/crashes && mkdir -p .build-fuzz/crashes
	@set -e; for target in $(FUZZ_TARGETS); do \
	  mkdir -p .build-fuzz/corpus/$$target; \
	  echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  DESCENT_FUZZ_TARGET=$$target .build-fuzz/debug/descent-fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -max_len=262144 -print_final_stats=1 -artifact_prefix=.build-fuzz/crashes/$$target- \
	    .build-fuzz/corpus/$$target Fuzz/corpus/$$target 2>&1 | grep -E "^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|INFO: Running|Done)" || true; \
	  test -z "$$(ls .build-fuzz/crashes | grep "^$$target-")" || { echo "fuzz: $$target crashed on .build-fuzz/crashes/$$(ls .build-fuzz/crashes | grep "^$$target-" | head -1)"; exit 1; }; \
	done

# TORCH=/path/to/python (with torch installed) adds PyTorch's figures and the ratios; BLAS_CORE=auto the detected kernels.
bench: build
	.build/release/descent bench all --blas-core $(BLAS_CORE) $(if $(TORCH),--torch $(TORCH),)

clean:
	rm -rf .build .build-fuzz .build-address .build-thread
