#!/usr/bin/env python3
"""Python bindings against the Rust runtime in-process, and Ray Data with 1 and 2 local workers.

    .venv/bin/python scripts/bench_python.py [--bundle B] [--texts 1000] [--labels 50] [--rounds 3]

1. Rust: runtime/examples/throughput.rs (release) scores the texts against the labels (encoded
   once), best of --repeats runs after a warm-up.
2. Python: `zsc.Classifier.scores(texts, label_set)` with the same bundle, threads (2), batch size
   (32), labels encoded once, best of the same number of runs. The rounds alternate Rust and Python
   so that both see the same machine; the ratio is Python / Rust texts per second.
3. Ray Data: `zsc.ray.ZeroShotMapper` on --ray-texts texts (the workload repeated), with 1 actor of
   2 threads and with 2 actors of 1 thread, wall time from `map_batches` to the last row
   (actor start and model load included).

Prints one JSON object (with the CPU) and writes it to --out when given. Pause other work on the
machine while it runs: the figures are only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu() -> dict:
    info = {"machine": platform.machine(), "cores": __import__("os").cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["model"] = next(l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("model name"))
        flags = next(l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags"))
        info["flags"] = [f for f in flags if f.startswith(("avx", "amx")) or f in ("fma", "f16c")]
    except (OSError, StopIteration):
        pass
    return info


def workload(n_texts: int, n_labels: int) -> dict:
    samples = json.loads((ROOT / "data" / "clinc150_test.json").read_text())
    labels = list(dict.fromkeys(l for s in samples for l in s["labels"]))[:n_labels]
    texts = [s["text"] for s in samples][:n_texts]
    return {"texts": texts, "labels": labels}


def ensure_bundle(arg: str | None, tmp: Path) -> Path:
    if arg:
        return Path(arg)
    out = ROOT / "target" / "bench-python" / "minilm"
    if not (out / "manifest.json").is_file():
        subprocess.run(["cargo", "run", "-q", "--release", "-p", "zsc-export", "--", "--checkpoint",
                        str(ROOT / "models" / "all-MiniLM-L6-v2"), "--out", str(out), "--max-length", "64"],
                       cwd=ROOT, check=True)
    return out


def rust_texts_per_s(bundle: Path, workload_file: Path, repeats: int) -> float:
    binary = ROOT / "target" / "release" / "examples" / "throughput"
    cmd = [str(binary), "--bundle", str(bundle), "--workload", str(workload_file), "--threads", "2",
           "--batch-size", "32", "--repeats", str(repeats)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["texts_per_s"]


def python_texts_per_s(clf, texts: list, label_set, repeats: int) -> float:
    clf.scores(texts, label_set)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        clf.scores(texts, label_set)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def ray_texts_per_s(bundle: Path, texts: list, labels: list, actors: int, threads: int) -> float:
    import ray
    from zsc.ray import ZeroShotMapper

    ds = ray.data.from_items([{"text": t} for t in texts])
    start = time.perf_counter()
    rows = ds.map_batches(ZeroShotMapper, fn_constructor_kwargs={"model": str(bundle), "labels": labels, "threads": threads},
                          concurrency=actors, num_cpus=1, batch_size=256).count()
    took = time.perf_counter() - start
    assert rows == len(texts)
    return len(texts) / took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle")
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--labels", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ray-texts", type=int, default=8000, help="0 skips Ray")
    ap.add_argument("--out")
    args = ap.parse_args()

    import zsc

    subprocess.run(["cargo", "build", "-q", "--release", "-p", "zsc", "--example", "throughput"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = ensure_bundle(args.bundle, Path(tmp))
        work = workload(args.texts, args.labels)
        workload_file = Path(tmp) / "workload.json"
        workload_file.write_text(json.dumps(work))
        clf = zsc.Classifier.from_pretrained(bundle, threads=2, batch_size=32)
        label_set = clf.encode_labels(work["labels"])
        rust, python = [], []
        for r in range(args.rounds):
            rust.append(rust_texts_per_s(bundle, workload_file, args.repeats))
            python.append(python_texts_per_s(clf, work["texts"], label_set, args.repeats))
            print(f"round {r + 1}: rust {rust[-1]:.0f} texts/s, python {python[-1]:.0f} texts/s", file=sys.stderr)
        report = {
            "date": time.strftime("%Y-%m-%d"), "cpu": cpu(), "bundle": str(bundle),
            "texts": len(work["texts"]), "labels": len(work["labels"]), "threads": 2, "batch_size": 32,
            "rust_texts_per_s": rust, "python_texts_per_s": python,
            "python_over_rust": max(python) / max(rust),
        }
        if args.ray_texts:
            import ray

            texts = (work["texts"] * (args.ray_texts // len(work["texts"]) + 1))[: args.ray_texts]
            ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
            report["ray_texts"] = len(texts)
            report["ray_1_actor_2_threads_texts_per_s"] = ray_texts_per_s(bundle, texts, work["labels"], 1, 2)
            report["ray_2_actors_1_thread_texts_per_s"] = ray_texts_per_s(bundle, texts, work["labels"], 2, 1)
            ray.shutdown()
    print(json.dumps(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
