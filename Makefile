# zcsafe — two commands on a fresh machine:
#   make        builds zcsafe and prints the verdict table of every policy (model check)
#   make test   runs the whole test suite (CI runs this through .ci/run)

CARGO  ?= cargo
ZCSAFE := target/release/zcsafe

.PHONY: all build verdicts test lint unit bench clean

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

clean:
	$(CARGO) clean
