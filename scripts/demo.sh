#!/usr/bin/env bash
# The quick-start job on the bundled defaults: train a small bi-encoder on data/ on the CPU,
# export it to an ONNX bundle, calibrate its probabilities on the val split, and classify a few
# texts against labels it never trained on.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${DEMO_STEPS:-100}
RUN=quickstart

echo "== build"
cargo build -q -p zsc-trainer -p zsc-export -p zsc
# the binaries of that one build: `cargo run -p X` would resolve X's features alone and rebuild
# the crates the three share (tokio, hyper, reqwest, zsc-core) each time it switches package;
# (the paths `.cargo/config.toml` gives are baked in at build time: libtorch rpath, ONNX Runtime)
BIN=target/debug

echo "== train (bi_encoder, $STEPS steps on data/train.json, CPU)"
"$BIN/trainer" train --config config.yml --model-type bi_encoder \
  --max-steps "$STEPS" --run-name "$RUN" --device cpu

# best_probe/: the step that did best on the zero-shot dev probe (config.yml's probe_data);
# best/ (lowest val loss on seen labels) when the run had no probe
CKPT="runs/$RUN/best_probe"
[[ -d $CKPT ]] || CKPT="runs/$RUN/best"
echo "== export $CKPT -> bundles/$RUN"
"$BIN/zsc-export" --checkpoint "$CKPT" --out "bundles/$RUN"

echo "== calibrate (zsc calibrate: the temperature on the val split of data/train.json, as the trainer fitted it at the end of training)"
"$BIN/zsc" calibrate --model "bundles/$RUN"

echo "== classify (labels from the held-out CLINC150 domains: never seen in training)"
"$BIN/zsc" classify --model "bundles/$RUN" --top-k 3 \
  --label "tire pressure" --label "shopping list update" --label "alarm" \
  --label "play music" --label "traffic" --label "weather" \
  "my front left tire looks flat, how much air should it have" \
  "put eggs and milk on my shopping list" \
  "wake me up at 6:30 tomorrow" \
  "is there a jam on the highway to work"

echo "== evaluate on unseen labels (CLINC150 held-out domains, 45 intents)"
"$BIN/zsc" eval --model "bundles/$RUN" --data data/clinc150_unseen.json --split all
