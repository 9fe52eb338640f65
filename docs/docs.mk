# The tutorial (mdBook). Include from the top-level Makefile:  include docs/docs.mk
# `make docs` regenerates every figure with zcsafe and builds docs/book;
# `make docs-figures` only regenerates the figures (no mdbook needed).
.PHONY: docs docs-figures

docs: build
	ZCSAFE=$(ZCSAFE) sh docs/build.sh

docs-figures: build
	ZCSAFE=$(ZCSAFE) sh docs/build.sh --figures
