#!/usr/bin/env python3
"""Why the old compare_speed.py's Python onnxruntime column was slow: the same harness (Python
onnxruntime + HF tokenizers + numpy pooling and scoring, batches of 32 in input order, f32 bi-encoder
speed bundle) under the thread settings of the process environment.

usage: .venv/bin/python scripts/py_ort_thread_settings.py [--n 2000] [--repeats 3]

Each setting runs in its own process (thread pools read these variables when numpy / tokenizers
load), at a quiet moment, passes counted only when no other process used the CPU (scripts/quiet.py).
Prints a markdown table.
"""
import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = [
    ("the old script: OpenBLAS 2, tokenizer rayon pool 2 (TOKENIZERS_PARALLELISM=true), ORT spinning on",
     {"OPENBLAS_NUM_THREADS": "2", "RAYON_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "true"}),
    ("nothing set (library defaults: OpenBLAS and rayon one thread per core)", {}),
    ("OpenBLAS 1, tokenizer pool 2", {"OPENBLAS_NUM_THREADS": "1", "RAYON_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "true"}),
    ("OpenBLAS 2, tokenizer parallelism off", {"OPENBLAS_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false"}),
    ("OpenBLAS 1, tokenizer parallelism off (compare_speed.py now)",
     {"OPENBLAS_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}),
    ("the old script with ORT spinning off", {"OPENBLAS_NUM_THREADS": "2", "RAYON_NUM_THREADS": "2",
                                              "TOKENIZERS_PARALLELISM": "true", "ZSC_ORT_SPINNING": "0"}),
]
THREAD_VARS = ["OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM", "OMP_NUM_THREADS",
               "MKL_NUM_THREADS", "ZSC_ORT_SPINNING"]


def child(n, repeats):
    sys.path.insert(0, str(ROOT / "scripts"))
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    import quiet

    bundle = ROOT / "target" / "speed-bundles" / "bi_encoder"
    records = json.loads((ROOT / "data" / "clinc150_test.json").read_text())
    texts = random.Random(0).sample([r["text"] for r in records], n)
    labels = sorted({l for r in records for l in r["labels"]})
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tok.no_padding()
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(max_length=128)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", os.environ.get("ZSC_ORT_SPINNING", "1"))
    sess = ort.InferenceSession(str(bundle / "encoder.onnx"), so, providers=["CPUExecutionProvider"])

    def embed(batch):  # exactly the old script's path
        e = tok.encode_batch(batch)
        ids = np.array([x.ids for x in e], dtype=np.int64)
        mask = np.array([x.attention_mask for x in e], dtype=np.int64)
        out = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                               "token_type_ids": np.zeros_like(ids)})[0]
        m = mask.astype(np.float32)
        return (m[:, None, :] @ out)[:, 0, :] / np.maximum(m.sum(1, keepdims=True), 1e-9)

    label_vecs = np.concatenate([embed(labels[i:i + 32]) for i in range(0, len(labels), 32)])

    def classify():
        for i in range(0, len(texts), 32):
            embed(texts[i:i + 32]) @ label_vecs.T

    classify()
    clean, times, _, shares = quiet.clean_passes(classify, repeats)
    print(json.dumps({"texts_per_s": n / min(clean or times), "clean": bool(clean), "others_share": shares}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.n, a.repeats)
    lines = ["| thread settings (py-ort, input order, f32, 2 ORT intra-op threads) | texts/s |", "|---|---|"]
    for name, env in SETTINGS:
        base = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
        out = subprocess.run([sys.executable, __file__, "--child", "--n", str(a.n), "--repeats", str(a.repeats)],
                             env={**base, **env}, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name}: {r}", file=sys.stderr, flush=True)
        lines.append(f"| {name} | {r['texts_per_s']:.0f}{'' if r['clean'] else ' ⚠ (no quiet pass)'} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
