#!/usr/bin/env bash
# The held-out-task protocol for one exported bundle: top-1 on every held-out task's dev file (what
# recipes and checkpoints are chosen on: the trainer's probe_data) and test file (the reported
# numbers, never chosen on), each task's texts against that task's own labels. Prints ONE JSON row:
#   {"name", "dev": {task: top1}, "test": {task: top1}, "dev_macro", "test_macro", "n_test": {task: n}}
#
#   scripts/heldout_eval.sh BUNDLE [--name NAME] [--markdown] [--predictions DIR]
#
# --predictions DIR: also keeps every text's prediction (`zsc eval --predictions`), test in DIR/TASK.jsonl
# and dev in DIR/dev/TASK.jsonl, for a paired comparison of two bundles on the same texts:
# scripts/paired_bootstrap.py BASE_DIR TRAINED_DIR (test) or BASE_DIR/dev TRAINED_DIR/dev (dev).
#
# Tasks (data/README.md): CLINC150's 3 held-out domains (45 intents), TREC question types (a whole
# source kept out of training), WordNet topic domains of 3 held-out groups, fortunes of 6 held-out topics.
# Env: ZSC = the zsc command (default: the release build of runtime's zsc). Run from the repository root.
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 BUNDLE [--name NAME] [--markdown] [--predictions DIR]" >&2; exit 2; }
BUNDLE=$1; shift
NAME=$(basename "$BUNDLE"); MARKDOWN=0; PREDICTIONS=
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) NAME=${2:?--name needs a value}; shift 2 ;;
    --markdown) MARKDOWN=1; shift ;;
    --predictions) PREDICTIONS=${2:?--predictions needs a folder}; mkdir -p "$PREDICTIONS/dev"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -f $BUNDLE/manifest.json ]] || { echo "error: $BUNDLE/manifest.json not found (export a bundle first)" >&2; exit 1; }
if [[ -z ${ZSC:-} ]]; then
  # the same package set as scripts/demo.sh builds, so cargo's feature unification matches and
  # nothing is recompiled
  cargo build --quiet --release -p zsc-trainer -p zsc-export -p zsc
  ZSC=target/release/zsc
fi
TASKS="clinc150_unseen:data/clinc150_unseen_dev.json:data/clinc150_unseen.json
trec:data/heldout/trec_dev.json:data/heldout/trec_test.json
wordnet_domains:data/heldout/wordnet_domains_dev.json:data/heldout/wordnet_domains_test.json
fortunes:data/heldout/fortunes_dev.json:data/heldout/fortunes_test.json"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
while IFS=: read -r task dev test; do
  for part in dev test; do
    file=$([[ $part == dev ]] && echo "$dev" || echo "$test")
    echo "[$NAME] $task $part: $ZSC eval --data $file --split all" >&2
    keep=()
    if [[ -n $PREDICTIONS ]]; then
      if [[ $part == dev ]]; then keep=(--predictions "$PREDICTIONS/dev/$task.jsonl"); else keep=(--predictions "$PREDICTIONS/$task.jsonl"); fi
    fi
    $ZSC eval --model "$BUNDLE" --data "$file" --split all "${keep[@]}" --json | tail -n 1 >"$TMP/$task.$part.json"
  done
done <<<"$TASKS"
python3 - "$TMP" "$NAME" "$MARKDOWN" "$BUNDLE" <<'PY'
import json, os, sys
tmp, name, markdown, bundle = sys.argv[1:5]
tasks = ["clinc150_unseen", "trec", "wordnet_domains", "fortunes"]
spec = json.load(open(os.path.join(bundle, "manifest.json")))["spec"]
row = {"name": name, "model_type": spec["model_type"], "similarity": spec.get("similarity", "dot"),
       "label_template": spec.get("label_template"), "dev": {}, "test": {}, "n_test": {}}
for t in tasks:
    for part in ("dev", "test"):
        r = json.load(open(os.path.join(tmp, f"{t}.{part}.json")))
        row[part][t] = round(r["top1_accuracy"], 4)
        if part == "test":
            row["n_test"][t] = r["n_texts"]
row["dev_macro"] = round(sum(row["dev"].values()) / len(tasks), 4)
row["test_macro"] = round(sum(row["test"].values()) / len(tasks), 4)
print(json.dumps(row))
if markdown == "1":
    cells = " | ".join(f"{row['test'][t]:.3f}" for t in tasks)
    print(f"| {name} | {cells} | **{row['test_macro']:.3f}** | {row['dev_macro']:.3f} |", file=sys.stderr)
PY
