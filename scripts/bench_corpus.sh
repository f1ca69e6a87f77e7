#!/usr/bin/env bash
# Corpus classification speed and memory (docs/corpus.md), on one bundle, in one run. The speed of
# these 2-core boxes drifts by up to 2x within minutes, so every ratio comes from runs interleaved
# PAIRS times on the same texts (the first PAIR_ROWS rows):
#  1. in-process throughput of the library (runtime/examples/throughput.rs, one timed run after a
#     warm-up) against `zsc classify --input` on the same texts (CLINC150 test texts cycled, ids
#     carried, 150 labels, JSONL out);
#  2. `zsc classify --input` plain against `--adapt` (which keeps N x (dim + 1) x 4 bytes of vectors);
#  3. one plain run over the whole ROWS-row file, resident memory sampled every 2 s (ROWS=0 skips it).
# Prints one JSON line per run and the RSS curves to OUT_DIR.
#
#   scripts/bench_corpus.sh BUNDLE [ROWS] [OUT_DIR]      # ROWS default 1000000; PAIR_ROWS=50000 PAIRS=2
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:?usage: $0 BUNDLE [ROWS] [OUT_DIR]}
ROWS=${2:-1000000}
OUT=${3:-$(mktemp -d)}
THREADS=${THREADS:-2}
PAIR_ROWS=${PAIR_ROWS:-50000}
PAIRS=${PAIRS:-2}
mkdir -p "$OUT"
cargo build --quiet --release -p zsc --bin zsc --example throughput
ZSC=target/release/zsc
grep -m1 'model name' /proc/cpuinfo; grep -o -w -E 'avx2|avx512f|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' '; echo; date -u

python3 - "$ROWS" "$OUT" "$PAIR_ROWS" <<'PY'
import json, sys
rows, out = max(int(sys.argv[1]), int(sys.argv[3])), sys.argv[2]
data = json.load(open("data/clinc150_test.json"))
texts = [s["text"] for s in data]
labels = sorted({l for s in data for l in s["labels"]})
with open(f"{out}/corpus.jsonl", "w") as f:
    for i in range(rows):
        f.write(json.dumps({"id": i, "text": texts[i % len(texts)]}) + "\n")
open(f"{out}/labels.txt", "w").write("\n".join(labels) + "\n")
PY
head -n "$PAIR_ROWS" "$OUT/corpus.jsonl" >"$OUT/small.jsonl"

in_process() {  # the library on the first PAIR_ROWS of the same texts
  target/release/examples/throughput --bundle "$BUNDLE" --n "$PAIR_ROWS" --repeats 1 --threads "$THREADS" | tail -n 1 \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({"step": "in_process", "rows": r["n_texts"], "rows_per_s": round(r["texts_per_s"], 1)}))'
}

run_file() {  # NAME INPUT ROWS EXTRA_ARGS...: one file run with its RSS sampled every 2 s
  local name=$1 input=$2 rows=$3; shift 3
  local t0; t0=$(date +%s.%N)
  "$ZSC" --threads "$THREADS" classify --model "$BUNDLE" --labels-file "$OUT/labels.txt" --input "$input" \
    --id-field id --output "$OUT/$name.out.jsonl" --top-k 1 --quiet "$@" &
  local pid=$!
  : >"$OUT/$name.rss.tsv"
  (while kill -0 "$pid" 2>/dev/null; do
    awk -v t="$(date +%s.%N)" -v t0="$t0" '/VmRSS/ {printf "%.1f\t%d\n", t - t0, $2}' "/proc/$pid/status" >>"$OUT/$name.rss.tsv" 2>/dev/null || true
    sleep 2
  done) &
  local sampler=$!
  wait "$pid"
  local t1; t1=$(date +%s.%N)
  wait "$sampler" || true
  python3 - "$name" "$t0" "$t1" "$rows" "$OUT/$name.rss.tsv" <<'PY'
import json, sys
name, t0, t1, rows, rss = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
kb = [int(l.split()[1]) for l in open(rss) if l.strip()]
warm = kb[len(kb) // 10:] or kb
print(json.dumps({"step": name, "rows": rows, "seconds": round(t1 - t0, 1), "rows_per_s": round(rows / (t1 - t0), 1),
                  "rss_mib_max": round(max(kb) / 1024, 1) if kb else None,
                  "rss_mib_after_warmup_min_max": [round(min(warm) / 1024, 1), round(max(warm) / 1024, 1)] if warm else None}))
PY
}
for pair in $(seq "$PAIRS"); do
  in_process
  run_file file "$OUT/small.jsonl" "$PAIR_ROWS"
  run_file file_adapt "$OUT/small.jsonl" "$PAIR_ROWS" --adapt
done
if [[ $ROWS -gt 0 ]]; then
  run_file whole "$OUT/corpus.jsonl" "$ROWS"
  in_process  # again after the long run, to bracket it
  python3 -c 'import json,sys; n=0
for l in open(sys.argv[1]): assert json.loads(l)["id"] == n; n += 1
assert n == int(sys.argv[2]); print(json.dumps({"check": f"all {n} rows written once, in order"}))' "$OUT/whole.out.jsonl" "$ROWS"
fi
echo "RSS curves: $OUT/*.rss.tsv"
