#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs on a GPU machine without cargo into .gpu/ (git-ignored
# through .git/info/exclude by this script): the release trainer (stripped, xz) and the base
# model with its weights stored as fp16 (widened back to fp32 there). About 45 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
cargo build --release -p zsc-trainer
rm -rf .gpu && mkdir -p .gpu/base
strip -o .gpu/trainer target/release/trainer
xz -T0 -9 -f .gpu/trainer
base=models/all-MiniLM-L6-v2
cp "$base/config.json" "$base/tokenizer.json" "$base/tokenizer_config.json" "$base/special_tokens_map.json" "$base/vocab.txt" .gpu/base/
.venv/bin/python - "$base/model.safetensors" .gpu/base/model.fp16.safetensors <<'PY'
import sys, torch
from safetensors.torch import load_file, save_file
save_file({k: v.half().contiguous() for k, v in load_file(sys.argv[1]).items()}, sys.argv[2])
PY
xz -T0 -6 -f .gpu/base/model.fp16.safetensors
du -sh .gpu .gpu/trainer.xz .gpu/base/*
