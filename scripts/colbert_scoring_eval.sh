#!/usr/bin/env bash
# Rescore one ColBERT bundle on the held-out tasks (scripts/heldout_eval.sh) under other MaxSim
# settings, without retraining: each setting is a copy of the bundle (its files linked, not copied)
# whose manifest says another `colbert_scoring`. Prints one JSON row per setting on stdout and a
# markdown table row per setting on stderr (docs/colbert.md).
#
#   scripts/colbert_scoring_eval.sh BUNDLE NAME [DIRECTION/SIDES ...]
#
# DIRECTION: label_to_text | text_to_label | symmetric; SIDES (which keep [CLS]/[SEP]):
# both | text | label | none. Default: every direction with both and with none.
# Env: ZSC as for heldout_eval.sh. Run from the repository root.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 BUNDLE NAME [DIRECTION/SIDES ...]" >&2; exit 2; }
BUNDLE=$1; NAME=$2; shift 2
SETTINGS=("$@")
if [[ ${#SETTINGS[@]} -eq 0 ]]; then
  SETTINGS=(label_to_text/both text_to_label/both symmetric/both label_to_text/none text_to_label/none symmetric/none)
fi
python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/manifest.json")); sys.exit(m["spec"]["model_type"]!="colbert")' "$BUNDLE" \
  || { echo "error: $BUNDLE is not a colbert bundle" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
for setting in "${SETTINGS[@]}"; do
  direction=${setting%/*}; sides=${setting#*/}
  copy="$TMP/$direction.$sides"; mkdir -p "$copy"
  for f in "$BUNDLE"/*; do ln -s "$(realpath "$f")" "$copy/"; done
  rm "$copy/manifest.json"
  python3 - "$BUNDLE/manifest.json" "$copy/manifest.json" "$direction" "$sides" <<'PY'
import json, sys
src, dst, direction, sides = sys.argv[1:5]
m = json.load(open(src))
m["spec"]["colbert_scoring"] = {"maxsim": direction, "special_tokens": sides}
json.dump(m, open(dst, "w"), indent=2)
PY
  scripts/heldout_eval.sh "$copy" --name "$NAME, $direction, special tokens: $sides" --markdown
done
