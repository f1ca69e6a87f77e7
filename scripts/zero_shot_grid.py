#!/usr/bin/env python3
"""Train a list of recipes and score each one's `best_probe/` checkpoint on the held-out *test*
tasks: the zero-shot protocol of docs/quality.md, run for many recipes at once.

Each run is `trainer train --config config.yml --run-name NAME [--model-type T] [--set K=V ...]`;
the checkpoint is chosen on the probe's *dev* tasks (`probe_data`, macro top-1), then
`trainer eval` scores it on the test tasks below, which no recipe or checkpoint was chosen on.
Runs go `--parallel` at a time (one GPU runs several small trainings side by side). One JSON
line per finished run is appended to --results (default OUT/results.jsonl); checkpoints and logs
go to --runs-dir (default OUT/runs; --cleanup deletes each run's checkpoints once scored); a table
is printed at the end. Stdlib only.

  python3 scripts/zero_shot_grid.py --runs runs.json --out /tmp/grid [--trainer target/release/trainer] \
      [--parallel 4] [--set-all max_steps=400 ...]

runs.json: [{"name": "bi_cos", "model_type": "bi_encoder", "set": {"similarity": "cosine"}}, ...]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

TEST_TASKS = {
    "clinc150_unseen": "data/clinc150_unseen.json",
    "trec": "data/heldout/trec_test.json",
    "wordnet_domains": "data/heldout/wordnet_domains_test.json",
    "fortunes": "data/heldout/fortunes_test.json",
}


def yaml_value(v):
    return "null" if v is None else json.dumps(v)


def run_one(args, spec):
    name = spec["name"]
    os.makedirs(args.runs_dir, exist_ok=True)
    log = open(os.path.join(args.runs_dir, f"{name}.log"), "w")
    cmd = [args.trainer, "train", "--config", args.config, "--run-name", name, "--output-dir", args.runs_dir]
    if spec.get("model_type"):
        cmd += ["--model-type", spec["model_type"]]
    for k, v in args.set_all.items():  # raw YAML from the command line
        cmd += ["--set", f"{k}={v}"]
    for k, v in spec.get("set", {}).items():  # JSON values (JSON is YAML)
        cmd += ["--set", f"{k}={yaml_value(v)}"]
    env = {**os.environ, **args.env}
    t0 = time.time()
    try:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=args.timeout or None).returncode
    except subprocess.TimeoutExpired:
        rc = 124  # the run's checkpoints so far are still scored below

    wall = time.time() - t0
    row = {"name": name, "model_type": spec.get("model_type", "bi_encoder"), "set": spec.get("set", {}), "rc": rc, "train_wall_s": round(wall, 1)}
    run_dir = os.path.join(args.runs_dir, name)
    metrics = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))] if os.path.exists(os.path.join(run_dir, "metrics.jsonl")) else []
    probed = [m for m in metrics if m.get("probe_top1") is not None]
    if probed:
        best = max(probed, key=lambda m: m["probe_top1"])  # first of the highest, as best_probe/ keeps it
        best = next(m for m in probed if m["probe_top1"] == best["probe_top1"])
        row.update(best_step=best["step"], dev_macro=best["probe_top1"], dev=best.get("probe_tasks", {}),
                   dev_curve=[(m["step"], round(m["probe_top1"], 4)) for m in probed],
                   steps_per_s=metrics[-1].get("steps_per_s"))
    merge_path = os.path.join(run_dir, "base_merge.json")
    if os.path.exists(merge_path):  # base_merge: best_probe/ may now hold a merge with the base
        merge = json.load(open(merge_path))
        row["base_merge"] = merge
        kept = next(t for t in merge["trials"] if t["weight"] == merge["chosen_weight"])
        row.update(dev_macro=kept["probe_top1"], dev=kept["probe_tasks"])
    ckpt = os.path.join(run_dir, "best_probe")
    info = os.path.join(ckpt, "zsc_checkpoint.json")
    if os.path.exists(info):  # step 0 (the base kept because no trained step beat it) has no metrics record
        row["best_step"] = json.load(open(info))["step"]
    if rc in (0, 124) and os.path.isdir(ckpt):
        ev = [args.trainer, "eval", "--model-path", ckpt, "--split", "all", "--json"]
        for path in TEST_TASKS.values():
            ev += ["--data", path]
        out = subprocess.run(ev, capture_output=True, text=True, env=env)
        log.write(out.stderr)
        reports = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
        test = {}
        for task, path in TEST_TASKS.items():
            r = next((r for r in reports if r.get("data") == path), None)
            if r:
                test[task] = r["top1_accuracy"]
        row["test"] = test
        if len(test) == len(TEST_TASKS):
            row["test_macro"] = sum(test.values()) / len(test)
    log.close()
    if args.cleanup:
        shutil.rmtree(run_dir, ignore_errors=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"[grid] {name}: rc={rc} dev={row.get('dev_macro')} test={row.get('test_macro')} ({wall:.0f} s)", flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="JSON list of runs")
    ap.add_argument("--out", required=True)
    ap.add_argument("--trainer", default="target/release/trainer")
    ap.add_argument("--config", default="config.yml")
    ap.add_argument("--runs-dir", help="where checkpoints and logs go (default OUT/runs)")
    ap.add_argument("--results", help="JSON lines file (default OUT/results.jsonl)")
    ap.add_argument("--cleanup", action="store_true", help="delete each run's checkpoints once it is scored")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--set-all", nargs="*", default=[], help="KEY=VALUE for every run (YAML values)")
    ap.add_argument("--timeout", type=int, default=0, help="seconds one training may take (0 = no limit)")
    ap.add_argument("--threads", type=int, default=0, help="OMP/RAYON threads per run (0 = default)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    args.runs_dir = args.runs_dir or os.path.join(args.out, "runs")
    args.results = args.results or os.path.join(args.out, "results.jsonl")
    args.set_all = dict(kv.split("=", 1) for kv in args.set_all)
    args.env = {"OMP_NUM_THREADS": str(args.threads), "RAYON_NUM_THREADS": str(args.threads)} if args.threads else {}
    specs = json.load(open(args.runs))
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        rows = list(pool.map(lambda s: run_one(args, s), specs))
    print(f"{'run':28} {'dev':>6} {'test':>6}  " + " ".join(f"{t[:10]:>10}" for t in TEST_TASKS))
    for r in rows:
        t = r.get("test", {})
        print(f"{r['name']:28} {r.get('dev_macro') or 0:6.3f} {r.get('test_macro') or 0:6.3f}  " + " ".join(f"{t.get(k, 0):10.3f}" for k in TEST_TASKS))
    sys.exit(0 if all(r["rc"] == 0 for r in rows) else 1)


if __name__ == "__main__":
    main()
