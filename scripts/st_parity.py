"""An untouched base model exported as a bundle against sentence-transformers itself (issue #26):
`zsc classify --json` scores of a few texts and labels vs `SentenceTransformer(MODEL).encode`
cosines. Prints one JSON line: {"model", "bundle", "max_abs_diff", "top1_agree", "n_pairs"}.

    python scripts/st_parity.py MODEL_DIR BUNDLE [--zsc target/release/zsc]

MODEL_DIR is the sentence-transformers folder the bundle was exported from (`zsc-export --checkpoint
MODEL_DIR --out BUNDLE`), e.g. models/all-mpnet-base-v2 after scripts/get_teacher.sh.
"""
import argparse
import json
import os
import subprocess
import sys

TEXTS = [
    "how do i reset my online banking password",
    "play some jazz in the kitchen",
    "what will the weather be like in paris tomorrow afternoon",
    "book a table for two at an italian place tonight",
    "the striker scored twice in the second half",
    "my flight to tokyo was cancelled, what are my options",
]
LABELS = ["banking", "music", "weather", "restaurant reservation", "sports", "travel"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("bundle")
    ap.add_argument("--zsc", default=os.environ.get("ZSC", "target/release/zsc"))
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    import torch

    args = [a.zsc, "classify", "--model", a.bundle, "--json", "--top-k", "0"]
    for label in LABELS:
        args += ["--label", label]
    out = subprocess.run(args + TEXTS, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"zsc classify failed: {out.stderr}")
    got = []
    for line in out.stdout.splitlines():
        ranked = {r["label"]: r["score"] for r in json.loads(line)["labels"]}
        got.append([ranked[label] for label in LABELS])
    st = SentenceTransformer(a.model, device="cpu", local_files_only=True)
    te = st.encode(TEXTS, convert_to_tensor=True)
    le = st.encode(LABELS, convert_to_tensor=True)
    want = torch.nn.functional.cosine_similarity(te[:, None, :], le[None, :, :], dim=-1).tolist()
    diff = max(abs(g - w) for gr, wr in zip(got, want) for g, w in zip(gr, wr))
    agree = sum(max(range(len(LABELS)), key=gr.__getitem__) == max(range(len(LABELS)), key=wr.__getitem__) for gr, wr in zip(got, want))
    print(json.dumps({"model": a.model, "bundle": a.bundle, "max_abs_diff": diff, "top1_agree": f"{agree}/{len(TEXTS)}",
                      "n_pairs": len(TEXTS) * len(LABELS)}))


if __name__ == "__main__":
    main()
