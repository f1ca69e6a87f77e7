#!/usr/bin/env python3
"""Is the trained model really better than the base on the held-out tasks? A paired bootstrap over
test texts: both models scored the same texts (`scripts/heldout_eval.sh BUNDLE --predictions DIR`),
so each resample draws texts (with replacement, per task) and compares the two models on the very
same draw. Prints, per task and for the macro average, the top-1 difference (B - A, points) with
its 95% interval, and how often B won on a text A missed and the other way round. Stdlib only.

  python3 scripts/paired_bootstrap.py DIR_A DIR_B [--resamples 4000] [--seed 0] [--json]

DIR_A, DIR_B: folders of TASK.jsonl files (one line per text with "text" and "correct"); the tasks
are those present in both, and each task's two files must hold the same texts in the same order.
"""
import argparse
import json
import os
import random
import sys


def load(path):
    try:
        return [json.loads(line) for line in open(path) if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"error: {path}: {e}")


def paired(dir_a, dir_b):
    """{task: [(a_correct, b_correct), ...]} for the tasks both folders hold."""
    for d in (dir_a, dir_b):
        if not os.path.isdir(d):
            sys.exit(f"error: {d} is not a folder (write one with scripts/heldout_eval.sh BUNDLE --predictions DIR)")
    tasks = sorted(f[:-6] for f in os.listdir(dir_a) if f.endswith(".jsonl") and os.path.exists(os.path.join(dir_b, f)))
    if not tasks:
        sys.exit(f"error: no TASK.jsonl file is in both {dir_a} and {dir_b}")
    out = {}
    for t in tasks:
        a, b = load(os.path.join(dir_a, f"{t}.jsonl")), load(os.path.join(dir_b, f"{t}.jsonl"))
        if [r["text"] for r in a] != [r["text"] for r in b]:
            sys.exit(f"error: {t}: the two prediction files do not hold the same texts in the same order")
        out[t] = [(int(x["correct"]), int(y["correct"])) for x, y in zip(a, b)]
    return out


def interval(values, level=0.95):
    v = sorted(values)
    lo = v[int((1 - level) / 2 * len(v))]
    hi = v[min(len(v) - 1, int((1 + level) / 2 * len(v)))]
    return lo, hi


def bootstrap(pairs, resamples, seed):
    """Resampled differences (B - A) per task and of the macro average. A text where both models
    agree adds 0, so a resample only needs how many of its n draws hit texts only B got right
    (probability b_only / n) and texts only A got right (a_only / n)."""
    rng = random.Random(seed)
    tasks = list(pairs)
    rates = {}
    for t, p in pairs.items():
        p_b = sum(1 for a, b in p if b and not a) / len(p)
        rates[t] = (len(p), p_b, p_b + sum(1 for a, b in p if a and not b) / len(p))
    diffs = {t: [] for t in tasks}
    macro = []
    for _ in range(resamples):
        per_task = []
        for t in tasks:
            n, p_b, p_ab = rates[t]
            draws = [rng.random() for _ in range(n)]
            d = (sum(1 for u in draws if u < p_b) - sum(1 for u in draws if p_b <= u < p_ab)) / n
            diffs[t].append(d)
            per_task.append(d)
        macro.append(sum(per_task) / len(per_task))
    return diffs, macro


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir_a", help="predictions of model A (e.g. the base)")
    ap.add_argument("dir_b", help="predictions of model B (e.g. the trained model)")
    ap.add_argument("--resamples", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = ap.parse_args()
    pairs = paired(args.dir_a, args.dir_b)
    diffs, macro = bootstrap(pairs, args.resamples, args.seed)
    rows = {}
    for t, p in pairs.items():
        n = len(p)
        lo, hi = interval(diffs[t])
        rows[t] = {"n": n, "a": sum(a for a, _ in p) / n, "b": sum(b for _, b in p) / n,
                   "diff": sum(b - a for a, b in p) / n, "ci95": [lo, hi],
                   "b_only": sum(1 for a, b in p if b and not a), "a_only": sum(1 for a, b in p if a and not b)}
    lo, hi = interval(macro)
    summary = {"tasks": rows, "macro": {"diff": sum(r["diff"] for r in rows.values()) / len(rows), "ci95": [lo, hi]},
               "resamples": args.resamples, "seed": args.seed}
    if args.json:
        print(json.dumps(summary))
        return
    pts = lambda x: f"{100 * x:+.1f}"
    print(f"{'task':<18}{'n':>6}{'A':>8}{'B':>8}{'B-A':>8}  {'95% interval':<16}{'B only':>8}{'A only':>8}")
    for t, r in rows.items():
        print(f"{t:<18}{r['n']:>6}{r['a']:>8.3f}{r['b']:>8.3f}{pts(r['diff']):>8}  [{pts(r['ci95'][0])}, {pts(r['ci95'][1])}]"
              f"{r['b_only']:>8}{r['a_only']:>8}")
    m = summary["macro"]
    print(f"{'macro':<18}{'':>6}{'':>8}{'':>8}{pts(m['diff']):>8}  [{pts(m['ci95'][0])}, {pts(m['ci95'][1])}]")


if __name__ == "__main__":
    main()
