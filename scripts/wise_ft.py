#!/usr/bin/env python3
"""WiSE-FT (Wortsman et al. 2022, https://arxiv.org/abs/2109.01903): a checkpoint whose encoder
weights are (1 - alpha) * base + alpha * fine-tuned; head tensors (poly codes, ColBERT projection,
score scales) are the fine-tuned ones. Writes a checkpoint folder that trainer eval and export read.

  .venv/bin/python scripts/wise_ft.py --checkpoint runs/X/best_probe --base models/all-MiniLM-L6-v2 --alpha 0.5 --out runs/X/wise_0.5
"""
import argparse
import shutil
import pathlib

from safetensors.torch import load_file, save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--alpha", type=float, required=True, help="weight of the fine-tuned model (1 = unchanged)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    src, out = pathlib.Path(a.checkpoint), pathlib.Path(a.out)
    tuned = load_file(src / "model.safetensors")
    base = {k.removeprefix("bert."): v for k, v in load_file(pathlib.Path(a.base) / "model.safetensors").items()}
    mixed, kept = {}, 0
    for k, v in tuned.items():
        if k in base and base[k].shape == v.shape:
            mixed[k] = ((1 - a.alpha) * base[k].float() + a.alpha * v.float()).contiguous()
        else:
            mixed[k], kept = v, kept + 1
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", "optimizer.safetensors", "trainer_state.json"):
            shutil.copy(f, out / f.name)
    save_file(mixed, out / "model.safetensors")
    print(f"wrote {out}: {len(mixed) - kept} encoder tensors interpolated (alpha {a.alpha}), {kept} head tensors kept")


if __name__ == "__main__":
    main()
