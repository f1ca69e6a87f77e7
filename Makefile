# Quick start: `make demo` (set up, train, export, classify), `make test`.
SHELL := /bin/bash

.PHONY: setup demo test bench data
setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	cargo test --workspace --no-fail-fast

bench: setup
	cargo bench -p runtime

data:
	python3 scripts/build_data.py
