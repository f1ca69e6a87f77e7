#!/usr/bin/env bash
# Zero-shot quality protocols for one exported bundle; prints ONE JSON row on stdout.
#
#   scripts/zero_shot_eval.sh BUNDLE [--name NAME] [--run RUN_DIR] [--markdown]
#
#   (a)    reference: the bundle's own data file (data/train.json for an untuned base model),
#          test split (ratios/seed from the manifest, else 0.8/0.1/0.1 and 42), all labels of that split
#   (b45)  unseen labels: data/clinc150_unseen.json (3 held-out CLINC domains), all of it, its own 45 intents
#   (b150) the same texts against all 150 CLINC intents (data/clinc150_test.json labels as candidates)
#   (dev)  the held-out domains' CLINC150 *val* texts (data/clinc150_unseen_dev.json) against their 45
#          intents: the dev set recipes were chosen on (the trainer's probe_data); (b45) is never tuned on
#   (c)    multi-label NLU++: only the NLU++ texts (data/nlupp.json) of the test split, against their
#          labels; acc@k plus micro/macro F1 at the micro-F1 threshold tuned on the same restriction of val
#
# --run RUN_DIR adds the training steps, time and steps/s from RUN_DIR/metrics.jsonl (trainer output).
# --markdown also prints a README table row on stderr.
# Env: ZSC = the zsc command (default: cargo run --release -p zsc --bin zsc --); DATA_DIR (default data).
# Run from the repository root.
set -euo pipefail

usage() { echo "usage: $0 BUNDLE [--name NAME] [--run RUN_DIR] [--markdown]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
BUNDLE=$1; shift
NAME=$(basename "$BUNDLE"); RUN=""; MARKDOWN=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) NAME=${2:?--name needs a value}; shift 2 ;;
    --run) RUN=${2:?--run needs a value}; shift 2 ;;
    --markdown) MARKDOWN=1; shift ;;
    *) usage ;;
  esac
done
[[ -f $BUNDLE/manifest.json ]] || { echo "error: $BUNDLE/manifest.json not found (export a bundle first)" >&2; exit 1; }
DATA_DIR=${DATA_DIR:-data}
PY=${ZSC_PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [[ -z ${ZSC:-} ]]; then
  cargo build --quiet --release -p zsc --bin zsc
  ZSC="cargo run --quiet --release -p zsc --bin zsc --"
fi

# (a)/(c) use the bundle's own training file; an untuned base model records none.
OWN_DATA=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("data") or "")' "$BUNDLE/manifest.json")
OWN_DATA=${OWN_DATA:-$DATA_DIR/train.json}

TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
run_eval() { # NAME ARGS...
  local name=$1; shift
  echo "[$NAME] protocol $name: zsc eval $*" >&2
  local t0=$SECONDS
  $ZSC eval --model "$BUNDLE" --json "$@" >"$TMP/$name.out"
  tail -n 1 "$TMP/$name.out" >"$TMP/$name.json"
  echo $((SECONDS - t0)) >"$TMP/$name.seconds"
}
run_eval a --data "$OWN_DATA" --split test
run_eval b45 --data "$DATA_DIR/clinc150_unseen.json" --split all
run_eval b150 --data "$DATA_DIR/clinc150_unseen.json" --split all --labels-from "$DATA_DIR/clinc150_test.json"
run_eval dev --data "$DATA_DIR/clinc150_unseen_dev.json" --split all
run_eval c --data "$OWN_DATA" --split test --restrict-to "$DATA_DIR/nlupp.json" --tune-threshold

"$PY" - "$TMP" "$BUNDLE" "$NAME" "$RUN" "$MARKDOWN" <<'EOF'
import json, os, sys
tmp, bundle, name, run, markdown = sys.argv[1:6]
manifest = json.load(open(os.path.join(bundle, "manifest.json")))
row = {"name": name, "bundle": bundle, "model_type": manifest["spec"]["model_type"],
       "label_template": manifest["spec"].get("label_template")}
eval_seconds = 0
for p in ["a", "b45", "b150", "dev", "c"]:
    r = json.load(open(os.path.join(tmp, p + ".json")))
    eval_seconds += int(open(os.path.join(tmp, p + ".seconds")).read())
    row[f"{p}_n_texts"] = r["n_texts"]
    row[f"{p}_n_labels"] = r["n_labels"]
    row[f"{p}_top1"] = round(r["top1_accuracy"], 4)
    row[f"{p}_acc_at_k"] = round(r["accuracy_at_k"], 4)
    if p == "c":
        row["c_threshold"] = r.get("threshold")
        row["c_threshold_logit"] = r.get("threshold_logit")
        row["c_val_micro_f1"] = r.get("val_micro_f1") and round(r["val_micro_f1"], 4)
        row["c_micro_f1"] = round(r["micro_f1"], 4)
        row["c_macro_f1"] = round(r["macro_f1"], 4)
row["eval_seconds"] = eval_seconds
if run:
    recs = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    if recs:
        # a --resume'd run restarts `elapsed` and `steps_per_s`: add up the segments
        segments, start = [], 0
        for i, r in enumerate(recs):
            if i + 1 == len(recs) or recs[i + 1]["elapsed"] < r["elapsed"]:
                segments.append((r["step"] - start, r["elapsed"], r["steps_per_s"]))
                start = r["step"]
        row["train_steps"] = recs[-1]["step"]
        row["train_seconds"] = round(sum(e for _, e, _ in segments), 1)
        row["steps_per_s"] = round(recs[-1]["step"] / sum(n / v for n, _, v in segments if v > 0), 3)
        row["train_segments"] = len(segments)
print(json.dumps(row))
if markdown == "1":
    train = (f"{row['train_seconds'] / 60:.1f} min, {row['train_steps']} steps, {row['steps_per_s']:.2f}"
             if "train_steps" in row else "–")
    print(f"| {name} | {row['a_top1']:.3f} / {row['a_acc_at_k']:.3f} | {row['b45_top1']:.3f} | {row['b150_top1']:.3f} | {row['dev_top1']:.3f} "
          f"| {row['c_acc_at_k']:.3f} | {row['c_micro_f1']:.3f} / {row['c_macro_f1']:.3f} | {train} |", file=sys.stderr)
EOF
