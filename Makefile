# zcsafe — two commands on a fresh machine:
#   make        builds zcsafe and prints the verdict table of every policy (model check)
#   make test   runs the whole test suite (CI runs this through .ci/run)

CARGO  ?= cargo
ZCSAFE := target/release/zcsafe

.PHONY: all build verdicts test lint unit loom loom-long bench bench-model bench-sim bench-kernel clean

all: verdicts

build:
	$(CARGO) build --release -p zcsafe-cli

verdicts: build
	$(ZCSAFE) check

test: lint unit loom

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	INSTA_UPDATE=no $(CARGO) test --workspace --all-targets

# loom explores interleavings of the application and the kernel's agents; the default
# run is bounded (5,000 executions per test), loom-long raises the bounds.
loom:
	$(CARGO) test --release -p zcsafe-sim --features loom --test loom

loom-long:
	ZCSAFE_LONG=1 $(CARGO) test --release -p zcsafe-sim --features loom --test loom
	ZCSAFE_LONG=1 $(CARGO) test --release -p zcsafe-sim

# Performance numbers come from here, never from tests.
bench: bench-model bench-sim bench-kernel

# States explored per second, time to exhaust each policy's scenario.
bench-model:
	$(CARGO) bench -p zcsafe-model --bench checker

# Simulated scenarios per second; time and scenarios to the first counterexample.
bench-sim:
	$(CARGO) bench -p zcsafe-sim --bench sim

# The cost of every safe policy against plain send() on this kernel (zcsafe bench):
# table on stdout, target/bench/*.json and bench.svg. veth needs root.
bench-kernel: build
	mkdir -p target/bench
	$(ZCSAFE) bench --transport loopback,veth --json-file target/bench/bench.json --svg target/bench/bench.svg
	$(ZCSAFE) bench --transport veth-slow --policy siocoutq-drain,siocoutq-seq --chunk 4K,64K,256K --repeat 3 --json-file target/bench/bench-slow.json

include docs/docs.mk

clean:
	$(CARGO) clean
