#!/usr/bin/env python3
"""Embed every text and label of training data with a teacher encoder, for `anchor_teacher`.

Writes OUT.safetensors (`text_embeddings` [N, D], `label_embeddings` [M, D]: mean-pooled,
L2-normalised, fp16) and OUT.json (`{"texts": [N], "labels": [M]}`, the rows' strings, sorted).
Several --model folders make an ensemble teacher: each one's unit vectors, times 1/sqrt(k),
side by side, so a dot product of two rows is the mean of the k models' cosines.
The trainer looks each batch's texts and labels up by their exact strings, so the data files
given here must be the ones it trains on (it refuses a table that lacks any of them).

  scripts/get_teacher.sh      # models/all-mpnet-base-v2 (verified) + transformers in .venv
  .venv/bin/python scripts/embed_teacher.py --model models/all-MiniLM-L6-v2 models/all-mpnet-base-v2 \
      --data data/train.json --out runs/teacher/minilm_mpnet

2-core CPU, data/train.json (43.6k texts, 11.5k labels): all-mpnet-base-v2 ~20 min, MiniLM ~4 min.
"""
import argparse
import json
import os
import sys
import time


def embed(tok, model, strings, max_length, batch_size, what):
    import torch
    order = sorted(range(len(strings)), key=lambda i: len(strings[i]))
    out = torch.empty(len(strings), model.config.hidden_size)
    t0, done = time.time(), 0
    with torch.inference_mode():
        for start in range(0, len(strings), batch_size):
            idx = order[start:start + batch_size]
            enc = tok([strings[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out[idx] = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            done += len(idx)
            if sys.stderr.isatty() or done == len(strings) or (start // batch_size) % 50 == 0:
                rate = done / max(time.time() - t0, 1e-9)
                print(f"\r[teacher] {what}: {done}/{len(strings)} ({rate:.0f}/s, ~{(len(strings) - done) / max(rate, 1e-9) / 60:.0f} min left)",
                      end="" if sys.stderr.isatty() else "\n", file=sys.stderr, flush=True)
    print(file=sys.stderr) if sys.stderr.isatty() else None
    return out.half()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, nargs="+", help="Hugging Face encoder folder(s) (config.json, tokenizer, model.safetensors)")
    ap.add_argument("--data", required=True, nargs="+", help="JSON lists of {text, labels} (the training data)")
    ap.add_argument("--out", required=True, help="output stem: OUT.safetensors + OUT.json")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    texts, labels = set(), set()
    for path in a.data:
        try:
            samples = json.load(open(path))
            texts.update(s["text"] for s in samples)
            labels.update(l for s in samples for l in s["labels"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.exit(f"error: {path}: not a readable JSON list of {{text, labels}} ({e})")
    try:
        import torch
        from safetensors.torch import save_file
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        sys.exit(f"error: {e.name} is missing: run scripts/get_teacher.sh (it installs transformers into .venv) and use .venv/bin/python")
    for m in a.model:
        if not os.path.isfile(os.path.join(m, "config.json")):
            sys.exit(f"error: {m} is not a model folder (no config.json): run scripts/get_teacher.sh")
    torch.set_num_threads(a.threads)
    texts, labels = sorted(texts), sorted(labels)
    parts = {"label_embeddings": [], "text_embeddings": []}
    for m in a.model:
        tok, model = AutoTokenizer.from_pretrained(m), AutoModel.from_pretrained(m).eval()
        name = os.path.basename(os.path.normpath(m))
        parts["label_embeddings"].append(embed(tok, model, labels, a.max_length, a.batch_size, f"{name} labels"))
        parts["text_embeddings"].append(embed(tok, model, texts, a.max_length, a.batch_size, f"{name} texts"))
    k = len(a.model)
    tensors = {key: (torch.cat([p.float() for p in v], dim=1) / k ** 0.5).half().contiguous() for key, v in parts.items()}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    save_file(tensors, a.out + ".safetensors.tmp")
    with open(a.out + ".json.tmp", "w") as f:
        json.dump({"texts": texts, "labels": labels}, f, ensure_ascii=False)
    os.replace(a.out + ".safetensors.tmp", a.out + ".safetensors")
    os.replace(a.out + ".json.tmp", a.out + ".json")
    dims = tensors["text_embeddings"].shape[1]
    print(f"[teacher] {a.out}.safetensors / .json: {len(texts)} texts, {len(labels)} labels, {dims} dims ({k} model(s))")


if __name__ == "__main__":
    main()
