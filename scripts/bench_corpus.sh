#!/usr/bin/env bash
# Corpus classification speed and memory (docs/corpus.md), on one bundle, in one run:
#  1. in-process throughput of the library on the same texts (runtime/examples/throughput.rs),
#  2. `zsc classify --input` over a ROWS-row JSONL file (CLINC150 test texts cycled, ids carried,
#     150 labels), resident memory sampled every 2 s,
#  3. the first ADAPT_ROWS rows plain and with --adapt (adaptation's wall time against a plain run
#     of the same file; it keeps N x (dim + 1) x 4 bytes of vectors).
# Prints one JSON line per step and the RSS curves to OUT_DIR.
#
#   scripts/bench_corpus.sh BUNDLE [ROWS] [OUT_DIR]      # ROWS default 1000000; ADAPT_ROWS=100000
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:?usage: $0 BUNDLE [ROWS] [OUT_DIR]}
ROWS=${2:-1000000}
OUT=${3:-$(mktemp -d)}
THREADS=${THREADS:-2}
ADAPT_ROWS=${ADAPT_ROWS:-100000}
mkdir -p "$OUT"
cargo build --quiet --release -p zsc --bin zsc --example throughput
ZSC=target/release/zsc
grep -m1 'model name' /proc/cpuinfo; grep -o -w -E 'avx2|avx512f|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' '; echo; date -u

python3 - "$ROWS" "$OUT" <<'PY'
import json, sys
rows, out = int(sys.argv[1]), sys.argv[2]
data = json.load(open("data/clinc150_test.json"))
texts = [s["text"] for s in data]
labels = sorted({l for s in data for l in s["labels"]})
with open(f"{out}/corpus.jsonl", "w") as f:
    for i in range(rows):
        f.write(json.dumps({"id": i, "text": texts[i % len(texts)]}) + "\n")
open(f"{out}/labels.txt", "w").write("\n".join(labels) + "\n")
PY
head -n "$ADAPT_ROWS" "$OUT/corpus.jsonl" >"$OUT/small.jsonl"

# 1. in-process: the library on the first 20000 of the same texts, one timed run after a warm-up
target/release/examples/throughput --bundle "$BUNDLE" --n 20000 --repeats 1 --threads "$THREADS" | tail -n 1 \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({"step": "in_process", "texts_per_s": r["texts_per_s"]}))'

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
run_file plain "$OUT/corpus.jsonl" "$ROWS"
run_file small_plain "$OUT/small.jsonl" "$ADAPT_ROWS"
run_file small_adapt "$OUT/small.jsonl" "$ADAPT_ROWS" --adapt
cmp <(python3 -c 'import json,sys; [print(json.loads(l)["id"]) for l in open(sys.argv[1])]' "$OUT/plain.out.jsonl" | tail -n 1) \
    <(echo $((ROWS - 1))) >/dev/null && echo '{"check": "every row written, in order"}'
echo "RSS curves: $OUT/plain.rss.tsv $OUT/small_adapt.rss.tsv"
