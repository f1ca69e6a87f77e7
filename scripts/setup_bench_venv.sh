#!/usr/bin/env bash
# The Python peers of scripts/compare_speed.py in their own virtual environment, .venv-bench, so the
# pins of the main .venv (scripts/setup.sh) never change. .venv-bench sees the main .venv's torch,
# onnxruntime, onnx and numpy through a .pth file (the same libonnxruntime.so the Rust runtime
# loads) and adds scripts/bench_requirements.txt on top. Idempotent; run after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=$ROOT/.venv-bench
[ -x .venv/bin/python ] || { echo "[bench-venv] run scripts/setup.sh first (no .venv)" >&2; exit 1; }
BASE_SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -x "$VENV/bin/python" ]; then
  echo "[bench-venv] creating $VENV on top of $BASE_SITE"
  # the same interpreter as .venv, so its compiled packages (torch, onnxruntime) load
  BASE_PY=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
  "$BASE_PY" -m venv "$VENV"
fi
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# after .venv-bench's own site-packages on sys.path: what bench_requirements.txt installs wins
echo "$BASE_SITE" >"$SITE/zsc_main_venv.pth"
PLAN=$("$VENV/bin/pip" install --disable-pip-version-check --dry-run -r scripts/bench_requirements.txt 2>&1 || true)
if grep -q "^Would install" <<<"$PLAN"; then
  echo "[bench-venv] installing scripts/bench_requirements.txt into .venv-bench"
  "$VENV/bin/pip" install --disable-pip-version-check -q -r scripts/bench_requirements.txt
else
  echo "[bench-venv] up to date"
fi
"$VENV/bin/python" - <<'PY'
import importlib.metadata as m
for p in ["torch", "onnxruntime", "onnx", "numpy", "transformers", "tokenizers", "sentence-transformers",
          "optimum", "optimum-onnx"]:
    print(f"[bench-venv] {p} {m.version(p)}")
PY
