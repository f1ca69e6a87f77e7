#!/usr/bin/env python3
"""ONNX Runtime thread settings of the Rust runtime: 1 vs 2 intra-op threads, spinning on vs off,
for throughput (batch evaluation) and for latency (a service answering one text at a time).

usage: python3 scripts/compare_threads.py [--n 2000] [--calls 300] [--gap-ms 20] [--archs bi_encoder]
           [--quantize none int8] [--out target/threads-report.md] [--no-build]

Every setting runs runtime/examples/throughput.rs (release) on the speed bundles of
benches/speed_bundles.rs, one process per setting, settings interleaved, the whole matrix --rounds
times; each cell keeps its best round. Each process starts once the machine is quiet and is rerun
if another process used more than 10% of the CPU meanwhile (scripts/quiet.py). Columns:
  texts/s      classify_with of --n CLINC150 test texts against the 150 labels, batch 32 (best of 3)
  latency      one text per call against the 150 cached labels, --calls calls back to back:
               median / 90th percentile in ms
  latency, gap the same with --gap-ms between calls (requests that arrive apart find the worker
               threads asleep), and the process CPU time per call (spinning burns CPU while it waits)
Writes a markdown table (--out) and the raw JSON beside it.
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import quiet  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--gap-ms", type=float, default=20.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--archs", nargs="+", default=["bi_encoder"])
    p.add_argument("--quantize", nargs="+", default=["none", "int8"])
    p.add_argument("--out", type=Path, default=ROOT / "target" / "threads-report.md")
    p.add_argument("--no-build", action="store_true")
    return p.parse_args()


def run(binary, args, attempts=3):
    """One process; rerun (up to `attempts`) while other processes used the CPU during it."""
    for _ in range(attempts):
        quiet.wait_quiet()
        with quiet.Interval() as iv:
            out = subprocess.run([str(binary), *args], cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{binary} {' '.join(args)} failed:\n{out.stderr}")
        if iv.clean:
            break
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r.pop("top1", None)
    r["others_cpu_share"] = iv.others
    return r


def main():
    a = parse_args()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "zsc", "--example", "throughput"], cwd=ROOT, check=True)
    binary = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "examples" / "throughput"
    settings = list(itertools.product(a.archs, a.quantize, [1, 2], ["on", "off"]))
    best = {}
    load = [os.getloadavg()[0]]
    for rnd in range(a.rounds):
        for arch, q, threads, spin in settings:
            common = ["--model-type", arch, "--quantize", q, "--threads", str(threads), "--spinning", spin]
            tp = run(binary, common + ["--n", str(a.n), "--repeats", "3"])
            lat = run(binary, common + ["--n", "500", "--repeats", "1", "--latency-calls", str(a.calls)])
            gap = run(binary, common + ["--n", "500", "--repeats", "1", "--latency-calls", str(a.calls),
                                        "--latency-gap-ms", str(a.gap_ms)])
            key = (arch, q, threads, spin)
            cell = {"texts_per_s": tp["texts_per_s"], "lat_median": lat["latency_ms_median"], "lat_p90": lat["latency_ms_p90"],
                    "gap_median": gap["latency_ms_median"], "gap_p90": gap["latency_ms_p90"],
                    "gap_cpu_ms": gap["latency_cpu_ms_per_call"], "lat_cpu_ms": lat["latency_cpu_ms_per_call"]}
            old = best.get(key)
            if old is None:
                best[key] = cell
            else:  # best round per measure
                best[key] = {k: (max if k == "texts_per_s" else min)(old[k], cell[k]) for k in cell}
            print(f"[round {rnd + 1}] {key}: {cell}", file=sys.stderr, flush=True)
        load.append(os.getloadavg()[0])
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name:")), "unknown")
    lines = [f"CPU: {cpu}, {os.cpu_count()} cores; 1-min load by round: {' → '.join(f'{x:.1f}' for x in load)}; "
             f"best of {a.rounds} rounds per cell.", "",
             "| bundle | threads | spinning | texts/s | latency median / p90 (ms) | CPU ms per call | "
             f"latency with {a.gap_ms:g} ms gaps, median / p90 (ms) | CPU ms per call (gaps) |",
             "|---|---|---|---|---|---|---|---|"]
    for (arch, q, threads, spin), c in best.items():
        name = arch if q == "none" else f"{arch} {q}"
        lines.append(f"| {name} | {threads} | {spin} | {c['texts_per_s']:.0f} | {c['lat_median']:.2f} / {c['lat_p90']:.2f} "
                     f"| {c['lat_cpu_ms']:.2f} | {c['gap_median']:.2f} / {c['gap_p90']:.2f} | {c['gap_cpu_ms']:.2f} |")
    table = "\n".join(lines)
    print(table)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(table + "\n")
    a.out.with_suffix(".json").write_text(json.dumps(
        {"cpu": cpu, "load": load, "cells": [{"arch": k[0], "quantization": k[1], "threads": k[2], "spinning": k[3], **v}
                                              for k, v in best.items()], "command": sys.argv}, indent=2))


if __name__ == "__main__":
    main()
