#!/usr/bin/env bash
# Self-training the encoder on a pool's pseudo-labels (Gera et al. 2022), against prototype
# adaptation alone on the same pool (docs/corpus.md, "Going further"). For each held-out task
# named: its test file as the pool, no gold label read until the scoring:
#  1. pseudo-labels: `zsc classify --input POOL --adapt --top-k 1` with the untouched base,
#  2. keep the most confident FRACTION of the pool (by the adapted top-1 probability),
#  3. `trainer train` the base on those (text, pseudo-label) pairs for STEPS steps (best_probe/ on
#     the held-out dev files, as every run), export,
#  4. top-1 on the whole pool: base, base --adapt, self-trained, self-trained --adapt.
# Prints one JSON line per task.
#
#   scripts/self_train_eval.sh BASE_BUNDLE [TASK...]     # tasks: clinc150_unseen trec wordnet_domains fortunes
#   env: STEPS=100 FRACTION=0.5 OUT=runs/self_train
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: $0 BASE_BUNDLE [TASK...]}; shift
TASKS=("${@:-clinc150_unseen}")
STEPS=${STEPS:-100}; FRACTION=${FRACTION:-0.5}; OUT=${OUT:-runs/self_train}
BIN=target/release
[[ -n ${NO_BUILD:-} ]] || cargo build --quiet --release -p zsc-trainer -p zsc-export -p zsc
mkdir -p "$OUT"
declare -A TEST=([clinc150_unseen]=data/clinc150_unseen.json [trec]=data/heldout/trec_test.json
                 [wordnet_domains]=data/heldout/wordnet_domains_test.json [fortunes]=data/heldout/fortunes_test.json)
for task in "${TASKS[@]}"; do
  test_file=${TEST[$task]:?unknown task $task}
  dir=$OUT/$task; mkdir -p "$dir"
  python3 - "$test_file" "$dir" <<'PY'
import json, sys
samples = json.load(open(sys.argv[1]))
with open(f"{sys.argv[2]}/pool.jsonl", "w") as f:
    for i, s in enumerate(samples):
        f.write(json.dumps({"id": i, "text": s["text"]}) + "\n")
open(f"{sys.argv[2]}/labels.txt", "w").write("\n".join(sorted({l for s in samples for l in s["labels"]})) + "\n")
PY
  classify() {  # BUNDLE OUTPUT [--adapt]
    "$BIN/zsc" classify --model "$1" --labels-file "$dir/labels.txt" --input "$dir/pool.jsonl" --id-field id \
      --top-k 1 --quiet --output "$2" "${@:3}"
  }
  classify "$BASE" "$dir/base.jsonl"
  classify "$BASE" "$dir/base_adapt.jsonl" --adapt
  python3 - "$dir" "$FRACTION" <<'PY'
import json, sys
d, fraction = sys.argv[1], float(sys.argv[2])
texts = {json.loads(l)["id"]: json.loads(l)["text"] for l in open(f"{d}/pool.jsonl")}
rows = [json.loads(l) for l in open(f"{d}/base_adapt.jsonl")]
rows.sort(key=lambda r: -r["labels"][0]["probability"])
keep = rows[: max(1, int(len(rows) * fraction))]
json.dump([{"text": texts[r["id"]], "labels": [r["labels"][0]["label"]], "source": "pool"} for r in keep],
          open(f"{d}/pseudo.json", "w"))
PY
  "$BIN/trainer" train --config config.yml --model-type bi_encoder --data "$dir/pseudo.json" \
    --max-steps "$STEPS" --run-name "self_train_$task" --device cpu --set val_every=25 --output-dir "$OUT" >"$dir/train.log" 2>&1
  ckpt=$OUT/self_train_$task/best_probe; [[ -d $ckpt ]] || ckpt=$OUT/self_train_$task/best
  "$BIN/zsc-export" --checkpoint "$ckpt" --out "$dir/bundle" >/dev/null 2>&1
  classify "$dir/bundle" "$dir/self.jsonl"
  classify "$dir/bundle" "$dir/self_adapt.jsonl" --adapt
  python3 - "$test_file" "$dir" "$task" "$STEPS" "$FRACTION" <<'PY'
import json, sys
test, d, task, steps, fraction = sys.argv[1:6]
gold = [set(s["labels"]) for s in json.load(open(test))]
def acc(name):
    rows = [json.loads(l) for l in open(f"{d}/{name}.jsonl")]
    return round(sum(r["labels"][0]["label"] in gold[r["id"]] for r in rows) / len(rows), 4)
pseudo = json.load(open(f"{d}/pseudo.json"))
print(json.dumps({"task": task, "pool": len(gold), "pseudo_labelled": len(pseudo), "steps": int(steps), "fraction": float(fraction),
                  "base": acc("base"), "base_adapt": acc("base_adapt"), "self_trained": acc("self"), "self_trained_adapt": acc("self_adapt")}))
PY
done
