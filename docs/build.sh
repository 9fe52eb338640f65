#!/bin/sh
# Regenerates the book's figures and timelines with zcsafe itself, then builds the book.
#
#   sh docs/build.sh            figures + timelines + `mdbook build docs`
#   sh docs/build.sh --figures  figures + timelines only (no mdbook needed)
#
# Every figure comes from a committed trace in fixtures/: model counterexamples
# (fixtures/traces, SVG + text) and recorded kernel runs (fixtures/recorded, text).
# `cargo test -p zcsafe-fixtures --test docs` fails when a committed figure is stale.
set -eu
cd "$(dirname "$0")/.."
# `make docs` passes the zcsafe it just built; alone, build it (never use a stale one).
if [ -z "${ZCSAFE:-}" ]; then
    cargo build --release -p zcsafe-cli
    ZCSAFE=target/release/zcsafe
fi
mkdir -p docs/src/figures docs/src/timelines
for trace in fixtures/traces/*.json; do
    name=$(basename "$trace" .json)
    "$ZCSAFE" explain "$trace" --svg "docs/src/figures/$name.svg" \
        > "docs/src/timelines/$name.txt" 2>/dev/null
done
for run in fixtures/recorded/*.json; do
    name=$(basename "$run" .json)
    "$ZCSAFE" explain "$run" > "docs/src/timelines/$name.txt"
done
echo "docs: $(ls docs/src/figures | wc -l) figures, $(ls docs/src/timelines | wc -l) timelines"
if [ "${1:-}" = "--figures" ]; then
    exit 0
fi
if ! command -v mdbook >/dev/null 2>&1; then
    echo "docs: mdbook is not installed: cargo install mdbook --locked" >&2
    exit 2
fi
mdbook build docs
