# Quick start: `make demo` (set up, train, export, classify), `make test`.
SHELL := /bin/bash

.PHONY: setup demo test bench data
setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	@# production apps embed runtime/export without libtorch: fail if tch ever creeps in
	@! cargo tree -p runtime -p export -e normal,build | grep -E ' (tch|torch-sys) v'
	cargo test --workspace --no-fail-fast

bench: setup
	cargo bench -p runtime

data:
	python3 scripts/build_data.py
