#!/usr/bin/env python3
"""Keep a fraction of every source of a training file, or leave sources out: the data ablations of
docs/experiments/data-sources.md (does the mixture's size or its variety carry the gain?).

  python3 scripts/subsample_data.py data/train.json /tmp/train_half.json --fraction 0.5
  python3 scripts/subsample_data.py data/train.json /tmp/train_new.json --drop-source clinc150 --drop-source nlupp

Each source keeps round(fraction x its samples) samples (at least one), chosen by the SHA-256
of the text (the same fixed order build_data.py uses), written in the input's order; samples
without a `source` count as one source. Stdlib only, deterministic.
"""
import argparse
import json
import pathlib
import sys
from collections import defaultdict

from build_data import order_key  # this folder is on sys.path when a script of it runs


def subsample(samples, fraction, salt="subsample"):
    """The kept samples, in input order, and {source: (kept, total)}."""
    by_source = defaultdict(list)
    for i, s in enumerate(samples):
        by_source[s.get("source")].append(i)
    keep, counts = set(), {}
    for source, idx in by_source.items():
        n = max(1, round(fraction * len(idx)))
        chosen = sorted(idx, key=lambda i: order_key(samples[i]["text"], f"{salt}/{source}"))[:n]
        keep.update(chosen)
        counts[source] = (n, len(idx))
    return [s for i, s in enumerate(samples) if i in keep], counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--fraction", type=float, default=1.0, help="share of each source to keep, in (0, 1] (default 1)")
    ap.add_argument("--drop-source", action="append", default=[], metavar="NAME", help="leave this source out (repeatable)")
    args = ap.parse_args()
    if not 0 < args.fraction <= 1:
        sys.exit(f"--fraction must be in (0, 1], got {args.fraction}")
    try:
        samples = json.loads(pathlib.Path(args.input).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"cannot read {args.input}: {e}")
    if not isinstance(samples, list) or not all(isinstance(s, dict) and isinstance(s.get("text"), str) for s in samples):
        sys.exit(f"{args.input}: expected a JSON list of {{\"text\": ..., \"labels\": [...]}} samples")
    unknown = set(args.drop_source) - {s.get("source") for s in samples}
    if unknown:
        sys.exit(f"--drop-source: no such source in {args.input}: {', '.join(sorted(unknown))}")
    n_input = len(samples)
    samples = [s for s in samples if s.get("source") not in args.drop_source]
    kept, counts = subsample(samples, args.fraction)
    out = pathlib.Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("[\n" + ",\n".join(json.dumps(s, ensure_ascii=False) for s in kept) + "\n]\n", encoding="utf-8")
    for source, (n, total) in sorted(counts.items(), key=lambda kv: str(kv[0])):
        print(f"  {source}: {n} of {total}")
    print(f"wrote {out}: {len(kept)} of {n_input} samples")


if __name__ == "__main__":
    main()
