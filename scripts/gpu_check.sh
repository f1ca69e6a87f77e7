#!/usr/bin/env bash
# The GPU check, for a GPU machine that has PyTorch but no Rust toolchain and no internet:
# what the trainer binary sees, its training speed against the PyTorch-eager peer of the same
# recipe on the same GPU (batch 32/128/512, fp32 and bf16), and every architecture trained with
# the default config.yml (fp32 and bf16) scored on the held-out test tasks. Prints one JSON line
# (also OUT/gpu_check.json). Details: scripts/gpu_check.py; docs/gpu.md.
#
# On the CPU box:   bash scripts/pack_for_gpu.sh          # -> .gpu/ (trainer + fp16 base, ~45 MB)
# On the GPU box:   bash scripts/gpu_check.sh --packed .gpu [--out DIR] [--grid RUNS.json]
# Dry run here:     bash scripts/gpu_check.sh --dry-run    # CPU, tiny sizes: checks the script
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && ! "$PY" -c 'import transformers' 2>/dev/null && PY=.venv/bin/python
packed=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --packed) packed=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

if [ -n "$packed" ]; then
  # unpack the binary and widen the fp16 base weights to fp32 with this machine's torch
  work=${TMPDIR:-/tmp}/zsc_gpu
  mkdir -p "$work/base"
  xz -dc "$packed/trainer.xz" > "$work/trainer" && chmod +x "$work/trainer"
  cp "$packed"/base/*.json "$packed"/base/*.txt "$work/base/"
  xz -dc "$packed/base/model.fp16.safetensors.xz" > "$work/base/model.fp16.safetensors"
  "$PY" - "$work/base" <<'PY'
import sys, torch
from safetensors.torch import load_file, save_file
d = sys.argv[1]
save_file({k: v.float().contiguous() for k, v in load_file(f"{d}/model.fp16.safetensors").items()}, f"{d}/model.safetensors")
PY
  rm "$work/base/model.fp16.safetensors"
  args=(--trainer "$work/trainer" --base "$work/base" "${args[@]}")
fi

# the trainer links libtorch dynamically: use this machine's torch (same 2.x ABI as the build's)
TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)
[ -n "$TORCH_LIB" ] && export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$PY" scripts/gpu_check.py --python "$PY" "${args[@]}"
