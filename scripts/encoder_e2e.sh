#!/usr/bin/env bash
# A base encoder end to end (issue #26): untouched export against sentence-transformers, then the
# held-out probe for the untouched base, its int8 export and each trained head. One JSON row per
# step goes to OUT/rows.jsonl; a markdown table of test and dev macro is printed at the end.
#
#   scripts/encoder_e2e.sh MODEL_DIR [--out DIR] [--steps N] [--heads "bi_encoder poly_encoder colbert"]
#                                    [--max-length 64]
#
# e.g. scripts/get_teacher.sh && scripts/encoder_e2e.sh models/all-mpnet-base-v2 --steps 50
#
# Each head trains --steps steps of config.yml's recipe (warm-up and decay over those steps, the
# probe at the end, calibration off) and is scored from its last checkpoint. Time on a 2-core CPU:
# MPNet about 15 s per BiEncoder step and 6 min per probe evaluation (ColBERT longer), so the
# default 50 steps x 3 heads is about 1.5 hours; on a GPU, minutes. Run from the repository root
# after `make setup` (it builds the release binaries on first use).
set -euo pipefail
[[ $# -ge 1 && $1 != -* ]] || { echo "usage: $0 MODEL_DIR [--out DIR] [--steps N] [--heads LIST] [--max-length N]" >&2; exit 2; }
MODEL=$1; shift
NAME=$(basename "$MODEL"); OUT=runs/e2e_$NAME; STEPS=50; HEADS="bi_encoder poly_encoder colbert"; MAXLEN=64
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) OUT=${2:?--out needs a folder}; shift 2 ;;
    --steps) STEPS=${2:?--steps needs a number}; shift 2 ;;
    --heads) HEADS=${2:?--heads needs a list}; shift 2 ;;
    --max-length) MAXLEN=${2:?--max-length needs a number}; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -f $MODEL/config.json ]] || { echo "error: $MODEL/config.json not found (a Hugging Face / sentence-transformers folder)" >&2; exit 1; }
cargo build --quiet --release -p zsc-trainer -p zsc-export -p zsc
BIN=target/release
mkdir -p "$OUT"
ROWS=$OUT/rows.jsonl; : > "$ROWS"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

probe() {  # probe NAME BUNDLE: one held-out row, tagged
  log "held-out probe: $1"
  ZSC=$BIN/zsc scripts/heldout_eval.sh "$2" --name "$1" >> "$ROWS"
}

log "untouched export, parity with sentence-transformers"
$BIN/zsc-export --checkpoint "$MODEL" --out "$OUT/base" --max-length "$MAXLEN" >&2
.venv/bin/python scripts/st_parity.py "$MODEL" "$OUT/base" --zsc $BIN/zsc | tee "$OUT/st_parity.json" >&2
probe "$NAME untouched" "$OUT/base"

$BIN/zsc-export --checkpoint "$MODEL" --out "$OUT/base_int8" --max-length "$MAXLEN" --quantize int8 >&2
.venv/bin/python scripts/int8_check.py "$OUT/base" "$OUT/base_int8" | tee "$OUT/int8_check.json" >&2
probe "$NAME untouched, int8" "$OUT/base_int8"

for head in $HEADS; do
  log "training $head for $STEPS steps"
  $BIN/trainer train --model-type "$head" --base-model "$MODEL" --max-steps "$STEPS" --val-every "$STEPS" \
    --output-dir "$OUT" --run-name "train_$head" --set calibrate=false --set "max_length=$MAXLEN" >&2
  $BIN/zsc-export --checkpoint "$OUT/train_$head/last" --out "$OUT/bundle_$head" >&2
  probe "$NAME $head, $STEPS steps" "$OUT/bundle_$head"
done

.venv/bin/python - "$ROWS" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
base = rows[0]["test_macro"]
print("| model | test macro | change | dev macro |\n|---|---|---|---|")
for r in rows:
    print(f"| {r['name']} | {r['test_macro']:.3f} | {r['test_macro'] - base:+.3f} | {r['dev_macro']:.3f} |")
EOF
