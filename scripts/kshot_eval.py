"""k examples per label on the held-out tasks: how much do label examples add, against the simple
baselines a careful user would try on the same embeddings?

For each held-out task (CLINC150 unseen domains, TREC, WordNet domains, fortunes) and each k, k
examples per label are drawn (seeded) from the task's *dev* file and the task's *test* file is
classified: by our bundles through `zsc eval --labels-file` (labels = name + k examples, every view
aggregation asked for), and by two baselines on the base model's sentence-transformers embeddings
of the same examples: the examples' prototype (nearest centroid, cosine, no name) and a logistic
regression (scikit-learn, default C). k = 0 is the name alone. Prints a markdown table of the macro
top-1 over the four tasks (mean ± std over seeds) and writes every row to --out (JSONL).

  .venv/bin/python scripts/kshot_eval.py --bundle base=bundles/minilm-cos64 --views prototype,mean,max \
      --baseline-model models/all-MiniLM-L6-v2 --k 0,1,5,10 --seeds 0,1,2 --out results/cpu/kshot.jsonl
"""
import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = [
    ("clinc150_unseen", "data/clinc150_unseen_dev.json", "data/clinc150_unseen.json"),
    ("trec", "data/heldout/trec_dev.json", "data/heldout/trec_test.json"),
    ("wordnet_domains", "data/heldout/wordnet_domains_dev.json", "data/heldout/wordnet_domains_test.json"),
    ("fortunes", "data/heldout/fortunes_dev.json", "data/heldout/fortunes_test.json"),
]


def load(path):
    return json.loads((ROOT / path).read_text())


def draw(dev, k, seed, task):
    """k dev texts per label (all when fewer), seeded per task and label; {label: [texts]}."""
    by_label = defaultdict(list)
    for s in dev:
        for label in s["labels"]:
            by_label[label].append(s["text"])
    out = {}
    for label in sorted(by_label):
        texts = sorted(set(by_label[label]))
        rng = random.Random(f"{seed}/{task}/{label}")
        out[label] = rng.sample(texts, min(k, len(texts)))
    return out


def labels_of(samples):
    return sorted({label for s in samples for label in s["labels"]})


def zsc_eval(zsc, bundle, test, labels_file, views, threads):
    cmd = [zsc, "--threads", str(threads), "--views", views, "eval", "--model", bundle, "--data", str(ROOT / test),
           "--split", "all", "--json"]
    if labels_file:
        cmd += ["--labels-file", labels_file]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"zsc eval failed: {' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["top1_accuracy"]


class Baselines:
    """The base model's sentence-transformers embeddings (normalised), cached per text."""

    def __init__(self, model_dir, max_length):
        from sentence_transformers import SentenceTransformer
        self.model = SentenceTransformer(model_dir, device="cpu")
        self.model.max_seq_length = max_length
        self.cache = {}

    def embed(self, texts):
        import numpy as np
        todo = sorted({t for t in texts if t not in self.cache}, key=len)
        if todo:
            for t, e in zip(todo, self.model.encode(todo, batch_size=64, normalize_embeddings=True)):
                self.cache[t] = e
        return np.stack([self.cache[t] for t in texts])

    def accuracy(self, shots, test):
        """(prototype, logistic regression) top-1 on test from the examples in shots."""
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        labels = sorted(shots)
        x = self.embed([t for label in labels for t in shots[label]])
        y = [i for i, label in enumerate(labels) for _ in shots[label]]
        xt = self.embed([s["text"] for s in test])
        gold = [set(s["labels"]) for s in test]
        protos = np.stack([x[[j for j, yy in enumerate(y) if yy == i]].mean(0) for i in range(len(labels))])
        protos /= np.linalg.norm(protos, axis=1, keepdims=True)
        pred_p = (xt @ protos.T).argmax(1)
        lr = LogisticRegression(max_iter=2000).fit(x, y)
        pred_l = lr.predict(xt)
        acc = lambda pred: sum(labels[p] in g for p, g in zip(pred, gold)) / len(test)
        return acc(pred_p), acc(pred_l)


def cpu_line():
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next(l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name"))
        flags = next(l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags"))
        simd = [f for f in flags if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni")]
        return f"{model} ({os.cpu_count()} cores; {', '.join(simd)})"
    except Exception:
        return platform.processor()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", action="append", default=[], help="NAME=BUNDLE_DIR (repeatable)")
    ap.add_argument("--views", default="prototype", help="comma-separated view aggregations for k > 0")
    ap.add_argument("--baseline-model", help="sentence-transformers folder of the base model for the baselines")
    ap.add_argument("--baseline-max-length", type=int, default=64)
    ap.add_argument("--k", default="0,1,5,10")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--zsc", default=str(ROOT / "target/release/zsc"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--table-only", action="store_true", help="print the table of the rows already in --out")
    a = ap.parse_args()
    if a.table_only:
        table([json.loads(l) for l in a.out.read_text().splitlines() if l.strip()], [int(k) for k in a.k.split(",")])
        return
    ks = [int(k) for k in a.k.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    views = a.views.split(",")
    bundles = [b.split("=", 1) for b in a.bundle]
    baselines = Baselines(a.baseline_model, a.baseline_max_length) if a.baseline_model else None
    print(f"# {cpu_line()}, {a.out}", file=sys.stderr)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, a.out.open("a") as out:
        def emit(row):
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), file=sys.stderr)

        for task, dev_path, test_path in TASKS:
            dev, test = load(dev_path), load(test_path)
            test_labels = set(labels_of(test))
            for k in ks:
                for seed in (seeds if k > 0 else [0]):
                    drawn = draw(dev, k, seed, task)
                    missing = test_labels - set(drawn)
                    assert not missing, f"{task}: test labels without dev texts: {missing}"
                    shots = {n: ex for n, ex in drawn.items() if n in test_labels}
                    labels_file = None
                    if k > 0:
                        labels_file = os.path.join(tmp, f"{task}_{k}_{seed}.json")
                        Path(labels_file).write_text(json.dumps(
                            [{"name": n, "examples": ex} for n, ex in shots.items()]))
                    for name, bundle in bundles:
                        for v in (views if k > 0 else ["-"]):
                            acc = zsc_eval(a.zsc, bundle, test_path, labels_file, v if v != "-" else "prototype", a.threads)
                            emit({"task": task, "k": k, "seed": seed, "method": f"{name}" + (f" {v}" if k > 0 else ""),
                                  "top1": acc})
                    if baselines and k > 0:
                        p, l = baselines.accuracy(shots, test)
                        emit({"task": task, "k": k, "seed": seed, "method": "prototype of the examples (base)", "top1": p})
                        emit({"task": task, "k": k, "seed": seed, "method": "logistic regression (base)", "top1": l})
    table(rows, ks)


def table(rows, ks):
    """method x k: macro over tasks per seed, then mean ± std over seeds. k = 0 (the name alone) is
    shown on every view aggregation's row of the same bundle."""
    macro = defaultdict(lambda: defaultdict(list))
    by = defaultdict(dict)
    for r in rows:
        by[(r["method"], r["k"], r["seed"])][r["task"]] = r["top1"]
    for (method, k, seed), tasks in by.items():
        if len(tasks) == len(TASKS):
            macro[method][k].append(sum(tasks.values()) / len(tasks))
    names_only = {m for m in macro if set(macro[m]) == {0}}
    print("| method | " + " | ".join(f"k = {k}" for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    for method in sorted(macro):
        if method in names_only and any(m.startswith(method + " ") for m in macro):
            continue
        cells = []
        for k in ks:
            v = macro[method].get(k)
            if k == 0 and not v:
                v = next((macro[b][0] for b in names_only if method.startswith(b + " ")), None)
            if not v:
                cells.append("")
            elif len(v) == 1:
                cells.append(f"{v[0]:.3f}")
            else:
                cells.append(f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}")
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
