#!/usr/bin/env python3
"""How far an int8 bundle is from its f32 export, before you serve it.

    .venv/bin/python scripts/int8_check.py F32_BUNDLE INT8_BUNDLE [--data FILE] [--n 300]

Embeds the same texts with both bundles (the `zsc` Python package: the runtime's own tokenizer,
prompts and pooling) and prints one JSON row: the cosine between each text's two embeddings
(min, 1st percentile, mean) and how often both bundles rank the same label first, texts of
`--data` (default: CLINC150's held-out intents, 45 labels) against that file's labels.

What we saw (docs/encoders.md, "int8"): the usable int8 bundles kept the mean cosine above 0.98
and top-1 agreement near 95%; the broken ones of all-mpnet-base-v2 were far off (mean cosine 0.05
with 8-bit weights on an AVX2 CPU, 0.88 with every layer int8). Only the held-out probe
(scripts/heldout_eval.sh) says what a gap costs in accuracy.
"""

import argparse
import json
import sys

import numpy as np
import zsc


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("f32_bundle")
    p.add_argument("int8_bundle")
    p.add_argument("--data", default="data/clinc150_unseen.json", help="JSON list of {text, labels}")
    p.add_argument("--n", type=int, default=300, help="texts taken evenly from --data")
    args = p.parse_args()

    # a missing or corrupt file: one line naming it, not a traceback
    try:
        rows = json.load(open(args.data))
    except (OSError, ValueError) as e:
        print(f"error: --data {args.data}: {e}", file=sys.stderr)
        return 1
    try:
        f32, int8 = zsc.Classifier.from_pretrained(args.f32_bundle), zsc.Classifier.from_pretrained(args.int8_bundle)
    except (OSError, ValueError, zsc.ZscError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    step = max(1, len(rows) // args.n)
    texts = [r["text"] for r in rows[::step]][: args.n]
    labels = sorted({label for r in rows for label in r["labels"]})

    if (f32.model_type, f32.dim) != (int8.model_type, int8.dim):
        print(f"error: the bundles differ: {f32.model_type}/{f32.dim} vs {int8.model_type}/{int8.dim}", file=sys.stderr)
        return 2
    a, b = f32.embed(texts), int8.embed(texts)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cosine = (a * b).sum(axis=1)
    top_f32 = f32.scores(texts, labels).argmax(axis=1)
    top_int8 = int8.scores(texts, labels).argmax(axis=1)
    print(
        json.dumps(
            {
                "f32": args.f32_bundle,
                "int8": args.int8_bundle,
                "texts": len(texts),
                "labels": len(labels),
                "cosine_min": round(float(cosine.min()), 4),
                "cosine_p1": round(float(np.percentile(cosine, 1)), 4),
                "cosine_mean": round(float(cosine.mean()), 4),
                "top1_agreement": round(float((top_f32 == top_int8).mean()), 4),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
