#!/usr/bin/env python3
"""PyTorch-eager peer of the trainer's default BiEncoder recipe, written the way a careful PyTorch
user would: Hugging Face transformers' BertModel (SDPA attention), masked mean pooling, cosine (or
dot) similarity with a learnable scale, the symmetric in-batch softmax loss with other positives
masked, torch.optim.AdamW(fused=True) with the trainer's parameter groups, linear warm-up/decay,
clip_grad_norm_(foreach), batches of one data source drawn with p ∝ size^alpha, every batch
tokenised *before* the timed loop (pinned memory, non-blocking copies: the peer pays nothing for
tokenisation), the loss read back every `--log-every` steps.

Prints one JSON object: steps/s and pairs/s over the timed steps (after --warmup steps), on the
device it ran on. Used by scripts/gpu_check.sh for the "tch vs PyTorch on the same GPU" figures.

  python3 scripts/torch_train_peer.py --base models/all-MiniLM-L6-v2 --data data/train.json \
      --batch-size 32 --steps 300 [--bf16] [--device cuda]
"""
import argparse
import json
import math
import random
import time

import torch
import torch.nn.functional as F


def batches(samples, batch_size, alpha, n, seed):
    """n batches of (text, label) pairs, each from one source drawn with p ∝ (pairs)^alpha."""
    by_source = {}
    for s in samples:
        for label in s["labels"]:
            by_source.setdefault(s.get("source", "default"), []).append((s["text"], label))
    names = sorted(by_source)
    weights = [len(by_source[k]) ** alpha for k in names]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pairs = by_source[rng.choices(names, weights)[0]]
        out.append(rng.sample(pairs, min(batch_size, len(pairs))))
    return out


def other_positives(batch):
    """True where row i and column j share a text or a label, off the diagonal."""
    n = len(batch)
    m = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            if i != j and (batch[i][0] == batch[j][0] or batch[i][1] == batch[j][1]):
                m[i, j] = True
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--data", default="data/train.json")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=300, help="timed steps")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--scale-lr", type=float, default=0.05)
    ap.add_argument("--similarity", choices=["cosine", "dot"], default="cosine")
    ap.add_argument("--template", default="This text is about {}.")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast of the forward pass")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (CPU; 0 = default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import AutoModel, AutoTokenizer

    dev = torch.device(args.device)
    torch.manual_seed(42)
    tok = AutoTokenizer.from_pretrained(args.base)
    model = AutoModel.from_pretrained(args.base, attn_implementation="sdpa").to(dev).train()
    scale = torch.nn.Parameter(torch.tensor([20.0], device=dev))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    fused = dev.type == "cuda"
    opt = torch.optim.AdamW(
        [
            {"params": decay, "lr": args.lr, "weight_decay": 0.01},
            {"params": no_decay, "lr": args.lr, "weight_decay": 0.0},
            {"params": [scale], "lr": args.scale_lr, "weight_decay": 0.0},
        ],
        fused=fused,
    )
    total = args.warmup + args.steps
    warm = math.ceil(0.1 * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm))
    )

    samples = json.load(open(args.data))
    # tokenise every batch before timing (pinned host tensors, copied without blocking)
    prepared = []
    for b in batches(samples, args.batch_size, args.alpha, total, 42):
        t = tok([p[0] for p in b], padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
        l = tok([args.template.format(p[1]) for p in b], padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
        pin = (lambda x: x.pin_memory()) if fused else (lambda x: x)
        prepared.append(({k: pin(v) for k, v in t.items()}, {k: pin(v) for k, v in l.items()}, pin(other_positives(b))))

    def pool(inputs):
        h = model(**inputs).last_hidden_state
        m = inputs["attention_mask"].unsqueeze(-1).to(h.dtype)
        v = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return F.normalize(v, dim=-1) if args.similarity == "cosine" else v

    def step(b):
        t, l, other = (({k: v.to(dev, non_blocking=True) for k, v in x.items()} if isinstance(x, dict) else x.to(dev, non_blocking=True)) for x in b)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = pool(t) @ pool(l).T
            if args.similarity == "cosine":
                logits = logits * scale
            logits = logits.float().masked_fill(other, float("-inf"))
            target = torch.arange(logits.shape[0], device=dev)
            loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()) + [scale], 1.0, foreach=fused)
        opt.step()
        sched.step()
        return loss

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    losses = []
    for i in range(args.warmup):
        loss = step(prepared[i])
    sync()
    t0 = time.perf_counter()
    for i in range(args.steps):
        loss = step(prepared[args.warmup + i])
        if (i + 1) % args.log_every == 0:
            losses.append(loss.item())
    sync()
    secs = time.perf_counter() - t0
    print(json.dumps({
        "peer": "pytorch-eager",
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "precision": "bf16" if args.bf16 else "fp32",
        "timed_steps": args.steps,
        "seconds": round(secs, 4),
        "steps_per_s": round(args.steps / secs, 3),
        "pairs_per_s": round(args.steps * args.batch_size / secs, 1),
        "last_loss": losses[-1] if losses else None,
    }))


if __name__ == "__main__":
    main()
