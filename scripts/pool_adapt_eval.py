"""Pool adaptation (`zsc classify --adapt`) on the held-out tasks, measured as the issue asks:
defaults chosen on the dev files only, then every test pool reported with a paired bootstrap
interval against adaptation off, beside the pools where self-training can hurt.

Each held-out task's texts are encoded once per bundle (`Classifier.pool_vectors`); every pool is a
subset of them, adapted with the shipped Rust code (`Classifier.adapt_labels`) and scored from the
kept vectors (`classify_vectors`), so the numbers are those of `zsc classify --adapt`.

Pools: the whole file, a 10 % subsample, 300 texts, and an imbalanced resample (classes in a
seeded order, the class at rank r keeping 1/r of its texts); subsampled pools are drawn with seeds
0, 1, 2. Labels: the names alone (k=0) or with 5 examples per label drawn from the dev file (k=5;
on dev pools the drawn texts are left out of the pool).

  .venv/bin/python scripts/pool_adapt_eval.py --bundle base=bundles/minilm-cal --grid \
      --out results/cpu/2026-12-07_pool_adapt.jsonl
  # --bundle trained=bundles/bi1000 to add the trained BiEncoder; --settings '{"rounds": 3}' to
  # report other settings than the library's defaults
"""
import argparse
import itertools
import json
import random
import sys
from collections import defaultdict
from datetime import date

import numpy as np

import zsc
# the held-out tasks, their files, the seeded draw of k dev examples per label and the CPU line,
# as the k-shot rows have them
from kshot_eval import TASKS, cpu_line, draw, load

POOLS = ["whole", "10pct", "300", "imbalanced"]
SEEDS = [0, 1, 2]
GRID = {
    "rounds": [1, 3, 5],
    "label_weight": [0.1, 0.3, 0.5, 0.7],
    "min_texts": [1, 3, 5, 10, 20],
    "min_pool_per_label": [0.0, 3.0, 5.0, 10.0, 20.0],
}


def pool_indices(samples, pool, seed, exclude=frozenset()):
    """The indices of one pool of `samples` (texts in `exclude` left out)."""
    idx = [i for i, s in enumerate(samples) if s["text"] not in exclude]
    rng = random.Random(f"{pool}/{seed}")
    if pool == "whole":
        return idx
    if pool == "10pct":
        return sorted(rng.sample(idx, max(1, round(len(idx) / 10))))
    if pool == "300":
        return sorted(rng.sample(idx, min(300, len(idx))))
    by_class = defaultdict(list)
    for i in idx:
        by_class[samples[i]["labels"][0]].append(i)
    classes = sorted(by_class)
    rng.shuffle(classes)
    keep = []
    for rank, c in enumerate(classes, start=1):
        members = by_class[c]
        keep += rng.sample(members, max(1, len(members) // rank))
    return sorted(keep)


class Task:
    """One task file embedded once, with its labels (names, or names + examples)."""

    def __init__(self, clf, name, samples, examples):
        self.name, self.samples = name, samples
        self.gold = [set(s["labels"]) for s in samples]
        self.names = sorted({l for s in samples for l in s["labels"]})
        self.units, self.norms = clf.pool_vectors([s["text"] for s in samples])
        self.labels = {0: clf.encode_labels(self.names)}
        if examples:
            self.labels[5] = clf.encode_labels([zsc.Label(n, examples=examples.get(n) or None) for n in self.names])

    def run(self, clf, idx, k, settings):
        """Per-text correctness and top-1 probability of one pool, adapted with `settings` (None: off)."""
        u, n = self.units[idx], self.norms[idx]
        labels, report = self.labels[k], None
        if settings is not None:
            labels, report = clf.adapt_labels(u, n, labels, adapt=settings)
        ranked = clf.classify_vectors(u, n, labels, top_k=1)
        correct = np.array([r[0]["label"] in self.gold[i] for r, i in zip(ranked, idx)])
        prob = np.array([r[0]["probability"] for r in ranked])
        return correct, prob, report


def ece(correct, prob, bins=15):
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (prob > lo) & (prob <= hi)
        if m.any():
            total += m.mean() * abs(correct[m].mean() - prob[m].mean())
    return float(total)


def interval(diffs_per_task, resamples=2000, seed=0):
    """95 % paired bootstrap interval of the mean over tasks of each task's mean difference
    (one task: that task's mean difference), resampling texts within each task."""
    rng = np.random.default_rng(seed)
    stats = np.zeros(resamples)
    for d in diffs_per_task:
        d = np.asarray(d, dtype=float)
        stats += d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1) / len(diffs_per_task)
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def choose_defaults(clf, dev_tasks):
    """Every grid setting on every dev pool; the best mean gain whose worst pool loses at most 1 point."""
    cells = [(t, pool, seed, k) for t in dev_tasks for pool in POOLS for seed in (SEEDS if pool != "whole" else [0])
             for k in t.labels]
    base = {}
    for t, pool, seed, k in cells:
        idx = pool_indices(t.samples, pool, seed, t.exclude)
        base[(t.name, pool, seed, k)] = (idx, t.run(clf, idx, k, None)[0].mean())
    results = []
    keys = list(GRID)
    for values in itertools.product(*(GRID[k] for k in keys)):
        settings = dict(zip(keys, values))
        gains = defaultdict(list)
        for t, pool, seed, k in cells:
            idx, off = base[(t.name, pool, seed, k)]
            gains[(t.name, pool, k)].append(t.run(clf, idx, k, settings)[0].mean() - off)
        per_cell = {c: float(np.mean(g)) for c, g in gains.items()}
        results.append({"settings": settings, "mean_gain": float(np.mean(list(per_cell.values()))),
                        "worst_gain": min(per_cell.values()), "worst_cell": min(per_cell, key=per_cell.get)})
    safe = [r for r in results if r["worst_gain"] >= -0.01] or results
    best = max(safe, key=lambda r: (round(r["mean_gain"], 4), -r["settings"]["rounds"]))
    return best, sorted(results, key=lambda r: -r["mean_gain"])


def report(clf, name, test_tasks, settings, emit):
    """Every test pool, adaptation off vs `settings`: accuracy, paired interval, ECE."""
    macro = defaultdict(list)
    for t in test_tasks:
        for pool in POOLS:
            for k in t.labels:
                offs, ons, diffs, pe_off, pe_on, moved, skipped = [], [], [], [], [], [], []
                for seed in SEEDS if pool != "whole" else [0]:
                    idx = pool_indices(t.samples, pool, seed)
                    c0, p0, _ = t.run(clf, idx, k, None)
                    c1, p1, rep = t.run(clf, idx, k, settings)
                    offs.append(c0.mean()), ons.append(c1.mean()), diffs.extend(c1.astype(float) - c0)
                    pe_off.append(ece(c0, p0)), pe_on.append(ece(c1, p1))
                    moved.append(rep["moved"]), skipped.append(rep["skipped"] is not None)
                lo, hi = interval([diffs])
                row = {"bundle": name, "task": t.name, "pool": pool, "k": k, "n": len(idx), "labels": len(t.names),
                       "off": float(np.mean(offs)), "on": float(np.mean(ons)), "gain": float(np.mean(ons) - np.mean(offs)),
                       "ci95": [lo, hi], "ece_off": float(np.mean(pe_off)), "ece_on": float(np.mean(pe_on)),
                       "labels_moved": float(np.mean(moved)), "guarded": sum(skipped), "settings": settings}
                emit(row)
                if pool == "whole":
                    macro[k].append(diffs)
                    macro[(k, "off")].append(row["off"]), macro[(k, "on")].append(row["on"])
    for k in sorted(x for x in macro if isinstance(x, int)):
        lo, hi = interval(macro[k])
        emit({"bundle": name, "task": "test_macro", "pool": "whole", "k": k, "off": float(np.mean(macro[(k, "off")])),
              "on": float(np.mean(macro[(k, "on")])), "gain": float(np.mean(macro[(k, "on")]) - np.mean(macro[(k, "off")])),
              "ci95": [lo, hi], "settings": settings})


def markdown(rows):
    print("| bundle | task | pool | k | n | off | on | gain [95 % CI] | ECE off → on |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ci = f"{100 * r['gain']:+.1f} [{100 * r['ci95'][0]:+.1f}, {100 * r['ci95'][1]:+.1f}]"
        e = f"{r['ece_off']:.3f} → {r['ece_on']:.3f}" if "ece_off" in r else ""
        print(f"| {r['bundle']} | {r['task']} | {r['pool']} | {r['k']} | {r.get('n', '')} | {r['off']:.3f} | {r['on']:.3f} | {ci} | {e} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", required=True, help="NAME=BUNDLE (BiEncoder); repeatable")
    ap.add_argument("--grid", action="store_true", help="search the defaults on the dev pools (first bundle) and report them")
    ap.add_argument("--settings", default=None, help="JSON settings to report instead of the library's defaults")
    ap.add_argument("--balanced", action="store_true", help="also report balanced (Sinkhorn) assignment")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", required=True, help="JSONL rows")
    args = ap.parse_args()
    out = open(args.out, "w")
    meta = {"date": str(date.today()), "cpu": cpu_line(), "command": " ".join(sys.argv)}

    def emit(row):
        out.write(json.dumps({**row, **meta}) + "\n")
        out.flush()
        rows.append(row)

    rows = []
    settings = json.loads(args.settings) if args.settings else dict(zsc._zsc.adapt_defaults())
    settings.pop("balanced", None)
    for i, spec in enumerate(args.bundle):
        name, path = spec.split("=", 1)
        clf = zsc.Classifier.from_pretrained(path, threads=args.threads)
        dev_tasks, test_tasks = [], []
        for task, dev_path, test_path in TASKS:
            dev = load(dev_path)
            examples = draw(dev, 5, 0, task)
            t = Task(clf, task, dev, examples)
            t.exclude = frozenset(x for ex in examples.values() for x in ex)
            dev_tasks.append(t)
            test_tasks.append(Task(clf, task, load(test_path), examples))
        if args.grid and i == 0:
            best, ranked = choose_defaults(clf, dev_tasks)
            for r in ranked:
                emit({"bundle": name, "task": "dev_grid", **r, "worst_cell": list(r["worst_cell"])})
            print(f"# dev choice: {best['settings']} mean gain {100 * best['mean_gain']:+.2f}, worst {100 * best['worst_gain']:+.2f}",
                  file=sys.stderr)
            emit({"bundle": name, "task": "dev_choice", **best, "worst_cell": list(best["worst_cell"])})
            library = {k: v for k, v in zsc._zsc.adapt_defaults().items() if k != "balanced"}
            if any(abs(float(library[k]) - float(v)) > 1e-6 for k, v in best["settings"].items()):
                print(f"# note: the library's defaults {library} differ from the dev choice", file=sys.stderr)
        report(clf, name, test_tasks, settings, emit)
        if args.balanced:
            report(clf, name + "+balanced", test_tasks, {**settings, "balanced": True}, emit)
    markdown([r for r in rows if r["task"] not in ("dev_grid", "dev_choice")])
    print(f"\n{meta['cpu']}, {meta['date']}: {meta['command']}")


if __name__ == "__main__":
    main()
