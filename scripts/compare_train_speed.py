#!/usr/bin/env python3
"""Training speed: the `trainer` crate (tch / libtorch) against the same bi-encoder step in PyTorch.

usage: .venv/bin/python scripts/compare_train_speed.py [--steps 20] [--warmup 3] [--batch-size 32]
           [--max-length 64] [--threads 2] [--trainer target/release/trainer] [--out target/train-speed.md]

Both sides train all-MiniLM-L6-v2 as a bi-encoder on (text, label) pairs of data/train.json on the
CPU with the same thread count, batch size and max_length (batch-longest padding), one step being:
tokenise B texts and B labels, two forward passes (dropout on), masked mean pooling, the B x B dot
score matrix, BCE-with-logits against the target matrix (identity + pairs sharing text or label),
backward, gradient-norm clipping at 1.0, AdamW (lr 2e-5, weight decay 0.01, linear warm-up).

Rust: `trainer train` run for warmup + steps steps (validation only at the very end), steps/s taken
from metrics.jsonl between step `warmup` and the last step (validation and checkpointing excluded,
as the trainer itself does). Python: the same loop written plainly with transformers + torch, timed
over the same steps after the same warm-up. The batches are drawn from the same pairs with the same
batch size, but not in the same order, so sequence lengths agree in distribution, not batch by batch.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--steps", type=int, default=20, help="timed steps")
p.add_argument("--warmup", type=int, default=3, help="untimed first steps")
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--max-length", type=int, default=64)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--trainer", type=Path, default=None, help="trainer binary (default: cargo build --release -p zsc-trainer)")
p.add_argument("--data", type=Path, default=ROOT / "data" / "train.json")
p.add_argument("--out", type=Path, default=ROOT / "target" / "train-speed.md")
p.add_argument("--skip-rust", action="store_true")
p.add_argument("--skip-python", action="store_true")
ARGS = p.parse_args()
for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"]:
    os.environ[var] = str(ARGS.threads)

BASE = ROOT / "models" / "all-MiniLM-L6-v2"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def rust_steps_per_s():
    binary = ARGS.trainer
    if binary is None:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        log("building trainer (release) ...")
        subprocess.run(["cargo", "build", "--release", "-p", "trainer"], cwd=ROOT, check=True)
        binary = target / "release" / "trainer"
    total = ARGS.warmup + ARGS.steps
    with tempfile.TemporaryDirectory(prefix="zsc-train-speed-") as tmp:
        config = Path(tmp) / "config.yml"
        config.write_text(
            "model_type: bi_encoder\n"
            f"base_model: {BASE}\n"
            f"data: {ARGS.data}\n"
            f"max_length: {ARGS.max_length}\n"
            f"batch_size: {ARGS.batch_size}\n"
            f"max_steps: {total}\n"
            f"val_every: {total}\n"
            "val_batches: 1\n"
            "device: cpu\n"
        )
        cmd = [str(binary), "train", "--config", str(config), "--output-dir", tmp, "--run-name", "speed"]
        log("running", " ".join(cmd))
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            sys.exit(f"trainer failed:\n{out.stderr[-4000:]}")
        records = [json.loads(l) for l in (Path(tmp) / "speed" / "metrics.jsonl").read_text().splitlines() if l.strip()]
    # steps_per_s at step k is k / (training seconds of steps 1..k): recover the cumulative time.
    by_step = {r["step"]: r["step"] / r["steps_per_s"] for r in records}
    t_warm, t_end = by_step[ARGS.warmup], by_step[total]
    return {"steps_per_s": ARGS.steps / (t_end - t_warm), "wall_s": wall, "binary": str(binary)}


def python_steps_per_s():
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(0)
    records = json.loads(ARGS.data.read_text())
    pairs = [(r["text"], l) for r in records for l in r["labels"]]
    random.Random(0).shuffle(pairs)
    tok = AutoTokenizer.from_pretrained(str(BASE))
    model = AutoModel.from_pretrained(str(BASE))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
    total = ARGS.warmup + ARGS.steps
    warm = max(1, int(0.1 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    bce = torch.nn.BCEWithLogitsLoss()

    def encode(strings):
        enc = tok(strings, padding=True, truncation=True, max_length=ARGS.max_length, return_tensors="pt")
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    b = ARGS.batch_size
    times = []
    for step in range(total):
        batch = [pairs[(step * b + k) % len(pairs)] for k in range(b)]
        t0 = time.perf_counter()
        texts = [t for t, _ in batch]
        labels = [l for _, l in batch]
        target = torch.tensor([[1.0 if i == j or texts[i] == texts[j] or labels[i] == labels[j] else 0.0
                                for j in range(b)] for i in range(b)])
        scores = encode(texts) @ encode(labels).T
        loss = bce(scores, target)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        times.append(time.perf_counter() - t0)
    return {"steps_per_s": ARGS.steps / sum(times[ARGS.warmup:]), "last_loss": float(loss.detach())}


def main():
    load_before = os.getloadavg()[0]
    result = {"batch_size": ARGS.batch_size, "max_length": ARGS.max_length, "threads": ARGS.threads,
              "steps": ARGS.steps, "warmup": ARGS.warmup}
    if not ARGS.skip_rust:
        result["rust_tch"] = rust_steps_per_s()
        log("rust", result["rust_tch"])
    if not ARGS.skip_python:
        result["python_torch"] = python_steps_per_s()
        log("python", result["python_torch"])
    result["load"] = [load_before, os.getloadavg()[0]]
    rust = result.get("rust_tch", {}).get("steps_per_s")
    py = result.get("python_torch", {}).get("steps_per_s")
    ratio = f"{rust / py:.2f}×" if rust and py else "–"
    table = "\n".join([
        f"Bi-encoder training step, MiniLM, batch {ARGS.batch_size}, max_length {ARGS.max_length}, "
        f"{ARGS.threads} threads, CPU; steps/s over {ARGS.steps} steps after {ARGS.warmup} warm-up steps.",
        "",
        "| trainer (tch) | PyTorch (Python) | tch / PyTorch | load (1-min) |",
        "|---|---|---|---|",
        f"| {rust or 0:.3f} | {py or 0:.3f} | {ratio} | {result['load'][0]:.1f} → {result['load'][1]:.1f} |",
    ])
    print(table)
    ARGS.out.parent.mkdir(parents=True, exist_ok=True)
    ARGS.out.write_text(table + "\n")
    ARGS.out.with_suffix(".json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
