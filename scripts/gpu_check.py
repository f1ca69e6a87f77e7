#!/usr/bin/env python3
"""The GPU check (run by scripts/gpu_check.sh): on one GPU, with a prebuilt trainer binary,
1. what the binary's libtorch sees (`trainer devices --json`: CUDA linked, devices, CUDA graphs);
2. training speed of the BiEncoder step at batch 32/128/512, fp32 and bf16: the trainer
   (CUDA graphs; and eager CUDA at batch 32) against the PyTorch-eager peer of the same recipe
   (scripts/torch_train_peer.py) on the same GPU; steady-state steps/s and pairs/s;
3. quality: every architecture trained with the default config.yml in fp32 and in bf16, its
   best_probe/ checkpoint scored on the held-out test tasks (scripts/zero_shot_grid.py);
4. optionally a recipe grid (--grid RUNS.json) for the zero-shot protocol.
Writes OUT/gpu_check.json (and prints it as the last line) and OUT/grid.jsonl (quality and grid runs);
every part is written as it finishes, so a run cut short keeps what it measured. Checkpoints go to
--work and are deleted once scored. --dry-run does the same on the CPU with
tiny sizes (a check of the script itself, no figures).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(cmd, env=None, timeout=None):
    """Runs cmd; a run past `timeout` seconds counts as failed (rc 124) instead of stalling the check."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return 124, "", f"timed out after {timeout} s\n{err}"
    return p.returncode, p.stdout, p.stderr


def steady_rate(metrics_path, skip):
    """Steps/s between the first loss read-back at or after step `skip` and the last one before
    the final step (whose record also carries the end-of-run validation)."""
    recs = [json.loads(l) for l in open(metrics_path)]
    last = recs[-1]["step"]
    marks = [r for r in recs if r["step"] >= skip and r["step"] < last]
    # records of one read-back share an `elapsed`: keep the last step of each
    by_elapsed = {}
    for r in marks:
        by_elapsed[r["elapsed"]] = r["step"]
    points = sorted((s, e) for e, s in by_elapsed.items())
    if len(points) < 2:
        return recs[-1]["steps_per_s"]
    (s0, e0), (s1, e1) = points[0], points[-1]
    return (s1 - s0) / max(e1 - e0, 1e-9)


def ours(a, batch, precision, graphs, steps):
    name = f"speed_b{batch}_{precision}_{'graph' if graphs else 'eager'}"
    # the step the PyTorch peer takes: no base anchor (its extra forward), the peer's label template
    sets = {"probe_data": "null", "val_batches": "1", "val_every": str(steps), "precision": precision,
            "anchor_weight": "0.0", "label_template": '"This text is about {}."',
            "cuda_graphs": "true" if graphs else "false", "log_every": "25", "calibrate": "false", **a.base_set}
    cmd = [a.trainer, "train", "--config", "config.yml", "--run-name", name, "--output-dir", a.runs,
           "--max-steps", str(steps), "--batch-size", str(batch), "--device", a.device]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    t0 = time.time()
    rc, out, err = sh(cmd, timeout=a.step_timeout)
    mode = "cpu" if a.device == "cpu" else "cuda-graph" if graphs else "eager"
    row = {"impl": "trainer (tch)", "mode": mode, "batch_size": batch,
           "precision": precision, "rc": rc, "wall_s": round(time.time() - t0, 1)}
    if rc == 0:
        metrics = os.path.join(a.runs, name, "metrics.jsonl")
        rate = steady_rate(metrics, skip=min(50, steps // 4))
        row.update(steps_per_s=round(rate, 2), pairs_per_s=round(rate * batch, 1))
        row["graph_captured"] = "captured the training step as a CUDA graph" in err
        row["fell_back"] = "continuing with eager CUDA steps" in err
    else:
        row["error"] = err[-1500:]
    return row


def peer(a, batch, precision, steps):
    cmd = [a.python, os.path.join(HERE, "torch_train_peer.py"), "--base", a.base, "--batch-size", str(batch),
           "--steps", str(steps), "--warmup", str(a.peer_warmup), "--device", a.device]
    if precision == "bf16":
        cmd.append("--bf16")
    rc, out, err = sh(cmd, timeout=a.step_timeout)
    try:
        row = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        row = {"error": err[-1500:]}
    row.update(impl="pytorch eager (transformers)", batch_size=batch, precision=precision, rc=rc)
    return row


def save(a, result):
    with open(os.path.join(a.out, "gpu_check.json"), "w") as f:
        json.dump(result, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trainer", default="target/release/trainer")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--base", default="models/all-MiniLM-L6-v2", help="base model folder (also used by the peer)")
    ap.add_argument("--out", default="/tmp/gpu_check", help="results (a few small files)")
    ap.add_argument("--work", default="/tmp/zsc_gpu_work", help="checkpoints, logs")
    ap.add_argument("--grid", help="also run this recipe grid (scripts/zero_shot_grid.py runs file)")
    ap.add_argument("--grid-parallel", type=int, default=6, help="trainings at a time")
    ap.add_argument("--run-timeout", type=int, default=300, help="seconds one grid training may take")
    ap.add_argument("--step-timeout", type=int, default=120, help="seconds one speed run may take")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--speed-batches", default="32,128,512", help="batch sizes of the speed runs (comma-separated)")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the script, measures nothing")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    a.runs = os.path.join(a.work, "speed")
    a.device = "cpu" if a.dry_run else "cuda"
    a.base_set = {"base_model": a.base}
    a.peer_warmup = 2 if a.dry_run else 20
    result = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(), "dry_run": a.dry_run}

    rc, out, err = sh([a.trainer, "devices", "--json"])
    result["devices"] = json.loads(out) if rc == 0 else {"error": err[-1500:]}
    rc, out, _ = sh(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]) if not a.dry_run else (1, "", "")
    result["gpu"] = out.strip() if rc == 0 else None
    print(json.dumps({"devices": result["devices"], "gpu": result["gpu"]}), flush=True)
    save(a, result)

    if not a.skip_speed:
        # (batch, our steps, peer steps, peer warm-up); bf16 peer at batch 32 only (time on the GPU is short)
        plan = [(8, 4, 4, 2)] if a.dry_run else [(32, 300, 200, 20), (128, 200, 100, 10), (512, 100, 40, 5)]
        wanted = {int(b) for b in a.speed_batches.split(",")}
        plan = plan if a.dry_run else [p for p in plan if p[0] in wanted]
        result["speed"] = []

        def record(row):
            result["speed"].append(row)
            print(json.dumps(row), flush=True)
            save(a, result)

        # batch 32 first, eager and graph: the figures the check is for, should time run short
        if plan and plan[0][0] in (8, 32):
            record(ours(a, plan[0][0], "fp32", False, plan[0][1]))
        for batch, steps, peer_steps, warm in plan:
            a.peer_warmup = warm
            record(ours(a, batch, "fp32", True, steps))
            record(peer(a, batch, "fp32", peer_steps))
            if not a.dry_run:
                record(ours(a, batch, "bf16", True, steps))
                if batch == 32:
                    record(ours(a, batch, "bf16", False, steps))
                record(peer(a, batch, "bf16", peer_steps))
        ratio = {}
        for r in result["speed"]:
            if r.get("impl", "").startswith("trainer") and r.get("mode") == "cuda-graph" and r.get("steps_per_s"):
                p = next((q for q in result["speed"] if q.get("impl", "").startswith("pytorch") and q["batch_size"] == r["batch_size"]
                          and q["precision"] == r["precision"] and q.get("steps_per_s")), None)
                if p:
                    ratio[f"b{r['batch_size']}_{r['precision']}"] = round(r["steps_per_s"] / p["steps_per_s"], 2)
        result["ours_over_pytorch"] = ratio
        save(a, result)

    grid = os.path.join(HERE, "zero_shot_grid.py")
    common = ["--trainer", a.trainer, "--set-all", f"base_model={a.base}", f"device={a.device}"]
    if a.dry_run:
        common += ["max_steps=4", "val_every=2", "probe_max_texts=20", "val_batches=1"]
    # quality (every architecture, default config, fp32 and bf16) and the optional recipe grid run
    # as one batch of trainings, several at a time on the one GPU
    runs = []
    if not a.skip_quality:
        runs += [{"name": f"default_{t}_{p}", "model_type": t, "set": {"precision": p}}
                 for t in ("bi_encoder", "poly_encoder", "colbert") for p in (("fp32",) if a.dry_run else ("fp32", "bf16"))]
        if not a.dry_run:
            # the same recipe through captured CUDA graphs: its quality must match the eager run's
            runs.append({"name": "default_bi_encoder_fp32_cudagraph", "model_type": "bi_encoder", "set": {"cuda_graphs": True}})
    if a.grid:
        runs += json.load(open(a.grid))
    if runs:
        runs_file = os.path.join(a.work, "runs.json")
        json.dump(runs, open(runs_file, "w"))
        path = os.path.join(a.out, "grid.jsonl")
        sh([a.python, grid, "--runs", runs_file, "--out", os.path.join(a.work, "grid"), "--results", path,
            "--cleanup", "--parallel", str(a.grid_parallel), "--threads", "2", "--timeout", str(a.run_timeout)] + common)
        rows = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
        result["quality"] = [r for r in rows if r["name"].startswith("default_")]
        result["grid"] = [r for r in rows if not r["name"].startswith("default_")]
        save(a, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
