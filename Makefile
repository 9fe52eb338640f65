# zcsafe — two commands on a fresh machine:
#   make        builds zcsafe and prints the verdict table of every policy (model check)
#   make test   runs the whole test suite (CI runs this through .ci/run)

CARGO  ?= cargo
ZCSAFE := target/release/zcsafe

.PHONY: all build verdicts test lint unit bench bench-kernel clean

all: verdicts

build:
	$(CARGO) build --release -p zcsafe-cli

verdicts: build
	$(ZCSAFE) check

test: lint unit

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	INSTA_UPDATE=no $(CARGO) test --workspace --all-targets

bench: build
	$(CARGO) bench -p zcsafe-model --bench checker

# The cost of every safe policy against plain send() on this kernel (zcsafe bench):
# table on stdout, target/bench/*.json and bench.svg. veth needs root.
bench-kernel: build
	mkdir -p target/bench
	$(ZCSAFE) bench --transport loopback,veth --json-file target/bench/bench.json --svg target/bench/bench.svg
	$(ZCSAFE) bench --transport veth-slow --policy siocoutq-drain,siocoutq-seq --chunk 4K,64K,256K --repeat 3 --json-file target/bench/bench-slow.json

clean:
	$(CARGO) clean
