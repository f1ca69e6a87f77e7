#!/usr/bin/env python3
"""Score a Hugging Face encoder, or an ensemble of them, on the held-out tasks of
docs/quality.md (dev and test): each task's texts against its own raw labels, mean pooling,
cosine (an ensemble: the mean of its models' cosines), top-1. One JSON line per encoder set.
What a teacher for `anchor_teacher` is worth before any training.

  scripts/get_teacher.sh
  .venv/bin/python scripts/encoder_eval.py --model models/all-MiniLM-L6-v2 models/all-mpnet-base-v2
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from embed_teacher import embed  # noqa: E402

TASKS = {
    "clinc150_unseen": ("data/clinc150_unseen_dev.json", "data/clinc150_unseen.json"),
    "trec": ("data/heldout/trec_dev.json", "data/heldout/trec_test.json"),
    "wordnet_domains": ("data/heldout/wordnet_domains_dev.json", "data/heldout/wordnet_domains_test.json"),
    "fortunes": ("data/heldout/fortunes_dev.json", "data/heldout/fortunes_test.json"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, nargs="+", help="encoder folder(s); several = an ensemble")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        sys.exit(f"error: {e.name} is missing: run scripts/get_teacher.sh and use .venv/bin/python")
    torch.set_num_threads(a.threads)
    encoders = [(AutoTokenizer.from_pretrained(m), AutoModel.from_pretrained(m).eval()) for m in a.model]
    row = {"models": [os.path.basename(os.path.normpath(m)) for m in a.model], "max_length": a.max_length, "dev": {}, "test": {}}
    for task, files in TASKS.items():
        for split, path in zip(("dev", "test"), files):
            data = json.load(open(path))
            labels = sorted({l for d in data for l in d["labels"]})
            texts = [d["text"] for d in data]
            scores = sum(embed(tok, m, texts, a.max_length, 64, f"{task} {split}").float() @ embed(tok, m, labels, a.max_length, 64, "labels").float().T
                         for tok, m in encoders) / len(encoders)
            top = scores.argmax(1).tolist()
            row[split][task] = round(sum(labels[p] in d["labels"] for p, d in zip(top, data)) / len(data), 4)
    for split in ("dev", "test"):
        row[f"{split}_macro"] = round(sum(row[split].values()) / len(TASKS), 4)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
