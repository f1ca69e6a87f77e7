#!/usr/bin/env bash
# Full load and abuse test of `zsc serve` on loopback (docs/serving.md; the short version runs
# in CI as runtime/tests/serve.rs).
#
#   bash scripts/load_test.sh [BUNDLE]          # default: all-MiniLM-L6-v2 exported as a bi-encoder
#   DURATION=60 CONCURRENCY="1 16 64" THREADS=2 bash scripts/load_test.sh   # THREADS: the in-process run's
#
# 1. installs the load generator `wrk` (Debian package, apt-get; needs root or an existing wrk),
# 2. measures the in-process batch throughput of the same bundle on the same texts and labels
#    (runtime/examples/throughput.rs: texts sorted by length, batches of 32, labels encoded once),
# 3. starts `zsc serve` and drives POST /v1/classify with wrk at each concurrency for DURATION s
#    (one CLINC150 test text per request, cycling through 2000, against the 150 CLINC150 labels,
#    top_k 5): req/s, texts/s, p50/p99 latency, errors, server RSS before and after,
# 4. abuse: malformed JSON, a 100 MB body, 100k labels, empty and non-string texts, 200 idle
#    half-open connections; then checks that the answers are still those of `zsc classify`,
# 5. writes the table to target/load-test/report.md (with CPU model, date and 1-min load).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}
CONCURRENCY=${CONCURRENCY:-"1 16 64"}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}
OUT=target/load-test
mkdir -p "$OUT"
URL="http://127.0.0.1:$PORT"

if ! command -v wrk >/dev/null; then
  echo "== installing wrk (apt-get)"
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null
  fi
fi
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

echo "== build (release)"
cargo build -q --release -p zsc --bin zsc --example throughput
cargo build -q --release -p zsc-export
ZSC=target/release/zsc

BUNDLE=${1:-$OUT/minilm-bi}
if [[ ! -f $BUNDLE/manifest.json ]]; then
  echo "== export models/all-MiniLM-L6-v2 -> $BUNDLE"
  target/release/zsc-export --checkpoint models/all-MiniLM-L6-v2 --model-type bi_encoder --out "$BUNDLE" >/dev/null
fi

echo "== workload: 2000 CLINC150 test texts x 150 labels"
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
data = json.load(open("data/clinc150_test.json"))
labels = sorted({l for s in data for l in s["labels"]})
texts = [s["text"] for s in data][:2000]
json.dump({"texts": texts, "labels": labels}, open(f"{out}/workload.json", "w"))
# wrk: one text per request, cycling through the texts
with open(f"{out}/post.lua", "w") as f:
    f.write("local bodies = {\n")
    for t in texts:
        body = json.dumps({"texts": [t], "labels": labels, "top_k": 5})
        f.write("[==[" + body + "]==],\n")
    f.write("}\nlocal i = 0\n")
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write("request = function()\n  i = i % #bodies + 1\n"
            '  return wrk.format("POST", "/v1/classify", nil, bodies[i])\nend\n')
EOF

load1() { cut -d' ' -f1 /proc/loadavg; }
CPU=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
NCPU=$(nproc)
echo "machine: $CPU, $NCPU cores; 1-min load $(load1)"

echo "== in-process batch throughput (same bundle, texts, labels, $THREADS threads)"
LOAD_BEFORE=$(load1)
target/release/examples/throughput --bundle "$BUNDLE" --workload "$OUT/workload.json" --threads "$THREADS" --repeats 3 \
  > "$OUT/inprocess.json"
INPROC=$(python3 -c "import json; print(round(json.load(open('$OUT/inprocess.json'))['texts_per_s'], 1))")
echo "in-process: $INPROC texts/s (load $LOAD_BEFORE -> $(load1))"

echo "== zsc serve on $URL"
# the server with its defaults: one worker (session) per core, one intra-op thread each
$ZSC serve --model "$BUNDLE" --port "$PORT" > "$OUT/serve.stdout" 2> "$OUT/serve.stderr" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "$URL/ready" >/dev/null && break; sleep 0.2; done
curl -sf "$URL/ready" >/dev/null || { cat "$OUT/serve.stderr"; exit 1; }
SERVER_SETUP=$(grep -o '[0-9]* worker(s) x [0-9]* thread(s)' "$OUT/serve.stderr" || true)
echo "server: $SERVER_SETUP"
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER/status"; }
# warm-up: label encoding, ONNX Runtime arenas
wrk -t1 -c4 -d5s -s "$OUT/post.lua" "$URL/v1/classify" >/dev/null

to_ms() { python3 -c "
import re,sys; v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)', v)
print(round(float(m.group(1)) * {'us': 0.001, 'ms': 1, 's': 1000}[m.group(2)], 2))" "$1"; }

ROWS=()
for c in $CONCURRENCY; do
  t=$(( c < 2 ? 1 : 2 ))
  RSS0=$(rss); L0=$(load1)
  echo "== concurrency $c, ${DURATION}s"
  wrk -t"$t" -c"$c" -d"${DURATION}s" --timeout 30s --latency -s "$OUT/post.lua" "$URL/v1/classify" > "$OUT/wrk-c$c.txt"
  RSS1=$(rss); L1=$(load1)
  RPS=$(awk '/^Requests\/sec:/ {print $2}' "$OUT/wrk-c$c.txt")
  P50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$OUT/wrk-c$c.txt")")
  P99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$OUT/wrk-c$c.txt")")
  N=$(awk '/requests in/ {print $1}' "$OUT/wrk-c$c.txt")
  NON2XX=$(awk -F: '/Non-2xx/ {gsub(/ /, "", $2); print $2}' "$OUT/wrk-c$c.txt"); NON2XX=${NON2XX:-0}
  SOCK=$(awk '/Socket errors/ {print $4+$6+$8+$10}' "$OUT/wrk-c$c.txt" | tr -d ','); SOCK=${SOCK:-0}
  RATIO=$(python3 -c "print(f'{$RPS / $INPROC:.2f}')")
  echo "   $RPS req/s = texts/s ($RATIO x in-process), p50 $P50 ms, p99 $P99 ms, $N requests, non-2xx $NON2XX, socket errors $SOCK, RSS ${RSS0} -> ${RSS1} KiB, load $L0 -> $L1"
  ROWS+=("| $c | $RPS | $RPS | ${RATIO}× | $P50 | $P99 | $N | $NON2XX + $SOCK | $((RSS0 / 1024)) → $((RSS1 / 1024)) | $L0 → $L1 |")
done
curl -s "$URL/metrics" > "$OUT/metrics-after-load.txt"

echo "== abuse"
code() { curl -s -o "$OUT/abuse-body.txt" -w '%{http_code}' "$@"; }
ABUSE=()
check() { # name, expected code, curl args...
  local name=$1 want=$2; shift 2
  local got; got=$(code "$@")
  local body; body=$(head -c 200 "$OUT/abuse-body.txt")
  echo "   $name: HTTP $got (want $want) $body"
  ABUSE+=("| $name | $got | \`$(tr -d '\n' <<<"$body" | cut -c1-110)\` |")
  [[ $got == "$want" ]] || { echo "unexpected status for $name" >&2; exit 1; }
}
J=(-H 'Content-Type: application/json')
check "malformed JSON" 400 "${J[@]}" -d '{"texts": ["a"], "labels": ' "$URL/v1/classify"
truncate -s 100M "$OUT/100mb.bin"
check "100 MB body" 413 "${J[@]}" --data-binary @"$OUT/100mb.bin" "$URL/v1/classify"
python3 -c "import json; print(json.dumps({'texts': ['a'], 'labels': [str(i) for i in range(100000)]}))" > "$OUT/100k-labels.json"
check "100k labels" 413 "${J[@]}" --data-binary @"$OUT/100k-labels.json" "$URL/v1/classify"
check "empty texts list" 400 "${J[@]}" -d '{"texts": [], "labels": ["a"]}' "$URL/v1/classify"
check "blank text" 400 "${J[@]}" -d '{"texts": ["  "], "labels": ["a"]}' "$URL/v1/classify"
check "non-string texts" 400 "${J[@]}" -d '{"texts": [1, null], "labels": ["a"]}' "$URL/v1/classify"
echo "   200 idle half-open connections (half a request head each), held 15 s"
python3 - "$PORT" > "$OUT/idle.txt" <<'EOF' &
import socket, sys, time
port = int(sys.argv[1])
socks = []
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n")
    socks.append(s)
time.sleep(15)
closed = 0
for s in socks:
    s.settimeout(1)
    try:
        closed += s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        closed += 1
print(closed)
EOF
IDLE=$!
sleep 2
check "request during 200 idle connections" 200 "${J[@]}" -d '{"texts": ["wake me up at 6"], "labels": ["alarm", "weather"]}' "$URL/v1/classify"
wait $IDLE
CLOSED=$(cat "$OUT/idle.txt")
echo "   idle connections closed by the server after its header timeout: $CLOSED of 200"
ABUSE+=("| 200 idle half-open connections | closed by the server: $CLOSED of 200 | header_timeout_ms (10 s) |")

echo "== still answering correctly"
TEXTS=("my front left tire looks flat" "put eggs and milk on my shopping list" "wake me up at 6:30 tomorrow" "is there a jam on the highway")
LABELS=(--label "tire pressure" --label "shopping list update" --label alarm --label "play music" --label traffic --label weather)
EXPECT=$($ZSC classify --model "$BUNDLE" "${LABELS[@]}" --top-k 1 --json "${TEXTS[@]}" | python3 -c "
import json,sys; print(' | '.join(json.loads(l)['labels'][0]['label'] for l in sys.stdin))")
GOT=$(curl -sf "${J[@]}" -d "$(python3 -c "
import json; print(json.dumps({'texts': ['my front left tire looks flat', 'put eggs and milk on my shopping list', 'wake me up at 6:30 tomorrow', 'is there a jam on the highway'], 'labels': ['tire pressure', 'shopping list update', 'alarm', 'play music', 'traffic', 'weather'], 'top_k': 1}))")" \
  "$URL/v1/classify" | python3 -c "import json,sys; print(' | '.join(r['labels'][0]['label'] for r in json.load(sys.stdin)['results']))")
echo "   zsc classify: $EXPECT"
echo "   zsc serve:    $GOT"
[[ $EXPECT == "$GOT" ]] || { echo "the server's answers differ" >&2; exit 1; }
RSS_END=$(rss)

kill -TERM $SERVER; wait $SERVER || true; trap - EXIT
{
  echo "Machine: $CPU ($NCPU cores), $(date -u +%Y-%m-%d), bundle $BUNDLE ($(python3 -c "import json; print(json.load(open('$BUNDLE/manifest.json'))['spec']['model_type'])")),"
  echo "in-process batch throughput $INPROC texts/s with $THREADS ONNX Runtime threads (load $LOAD_BEFORE before); server defaults: $SERVER_SETUP;"
  echo "wrk ${DURATION} s per row, one text per request against 150 labels (top_k 5); server RSS at the end $((RSS_END / 1024)) MiB."
  echo
  echo "| concurrency | req/s | texts/s | vs in-process | p50 ms | p99 ms | requests | errors (non-2xx + socket) | RSS MiB before → after | 1-min load before → after |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "| abuse | answer | body |"
  echo "|---|---|---|"
  printf '%s\n' "${ABUSE[@]}"
  echo "| afterwards: top-1 of 4 texts | same as \`zsc classify\` | $GOT |"
} > "$OUT/report.md"
echo "== $OUT/report.md"
cat "$OUT/report.md"
