#!/usr/bin/env python3
"""Side-by-side inference speed: our Rust runtime against the Python stacks, same machine, one run.

usage: .venv/bin/python scripts/compare_speed.py [--n 2000] [--batch-size 32] [--threads 2]
           [--repeats 3] [--archs bi_encoder poly_encoder colbert] [--out target/speed-report.md]
           [--no-torch] [--no-build]

Extra packages: .venv/bin/pip install -r scripts/bench_requirements.txt

The same exported model (the MiniLM speed bundles of benches/speed_bundles.rs under
target/speed-bundles/, built on first use), the same N CLINC150 texts (a seeded sample of
data/clinc150_test.json) against its 150 labels, the same batch size and thread count, through:

  ours        the release Rust binary runtime/examples/throughput.rs (tokenise in Rust, texts sorted
              by length into batches, ONNX Runtime via `ort`, heads in ndarray)
  bare-ort    ONNX Runtime alone on the same encoder.onnx with pre-tokenised inputs in the same
              length-sorted batches: only session.run is timed (the upper bound for `ours`)
  py-ort      Python onnxruntime on encoder.onnx + HF `tokenizers` (same tokenizer.json, batch-longest
              padding) + numpy pooling/scoring, batches in input order (how a Python service is written)
  py-ort-sorted   the same, texts sorted by length first (isolates what sorting buys in Python)
  torch       PyTorch eager: transformers AutoModel (same weights) + AutoTokenizer, heads in torch,
              batches in input order, torch.inference_mode()
  sentence-transformers   bi_encoder only: SentenceTransformer.encode (it sorts by length itself)

Labels are encoded once per system before timing (reported separately for ours). Every system runs
one warm-up pass, then --repeats timed passes over all texts; texts/s is from the fastest pass
(other engineers share this machine: the fastest pass is the least disturbed one) and the median is
kept in the JSON. Thread counts: ONNX Runtime intra_op_num_threads = --threads (inter-op 1),
torch.set_num_threads(--threads), RAYON_NUM_THREADS / OMP / OpenBLAS = --threads.
Top-1 labels of every system are compared with ours (agreement should be ~100%: same model).
"""
import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="texts (seeded sample of data/clinc150_test.json)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for every system")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--archs", nargs="+", default=["bi_encoder", "poly_encoder", "colbert"])
    p.add_argument("--data", type=Path, default=ROOT / "data" / "clinc150_test.json")
    p.add_argument("--out", type=Path, default=ROOT / "target" / "speed-report.md")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch and sentence-transformers columns")
    p.add_argument("--no-build", action="store_true", help="do not run cargo build (binary must exist)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


ARGS = parse_args()
# Thread settings must be in the environment before numpy / torch / tokenizers load.
for var in ["RAYON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"]:
    os.environ[var] = str(ARGS.threads)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from safetensors.numpy import load_file as load_safetensors  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def load_average():
    return os.getloadavg()[0]


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------------------------------------
# Workload and the Rust binary


def make_workload():
    records = json.loads(ARGS.data.read_text())
    texts = [r["text"] for r in records]
    labels = sorted({l for r in records for l in r["labels"]})
    rng = random.Random(ARGS.seed)
    if ARGS.n <= len(texts):
        chosen = rng.sample(texts, ARGS.n)
    else:
        chosen = [texts[rng.randrange(len(texts))] for _ in range(ARGS.n)]
    path = ROOT / "target" / "speed-bundles" / f"workload_n{ARGS.n}_seed{ARGS.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"texts": chosen, "labels": labels}))
    return chosen, labels, path


def target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def build_binary():
    if not ARGS.no_build:
        log("building runtime/examples/throughput.rs (release) ...")
        subprocess.run(["cargo", "build", "--release", "-p", "runtime", "--example", "throughput"], cwd=ROOT, check=True)
    binary = target_dir() / "release" / "examples" / "throughput"
    if not binary.exists():
        sys.exit(f"{binary} does not exist: run without --no-build (or set CARGO_TARGET_DIR)")
    return binary


def run_ours(binary, bundle, workload_path):
    cmd = [str(binary), "--bundle", str(bundle), "--workload", str(workload_path), "--batch-size",
           str(ARGS.batch_size), "--threads", str(ARGS.threads), "--repeats", str(ARGS.repeats)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Python onnxruntime + tokenizers + numpy


def ort_session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = ARGS.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def bundle_tokenizer(bundle, max_length, padding=True):
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    pad = tok.padding or {}
    tok.no_padding()
    if padding:
        # batch-longest (the base tokenizer.json pads to a fixed 128; the runtime resets that too)
        tok.enable_padding(pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"),
                           pad_type_id=pad.get("pad_type_id", 0))
    tok.enable_truncation(max_length=max_length)
    return tok


class NumpyHead:
    """Pooling and scoring with numpy, the contract of COMMON.md."""

    def __init__(self, bundle, manifest):
        self.kind = manifest["spec"]["model_type"]
        head = load_safetensors(str(bundle / manifest["head"])) if (bundle / manifest["head"]).exists() else {}
        self.codes = head.get("poly.codes")
        scale = head.get("colbert.score_scale")
        self.scale = float(scale[0]) if scale is not None else None

    @staticmethod
    def mean_pool(out, mask):
        m = mask.astype(np.float32)
        return (m[:, None, :] @ out)[:, 0, :] / np.maximum(m.sum(1, keepdims=True), 1e-9)

    def encode_labels(self, out_batches):
        """out_batches: list of (output [b,T,D], mask [b,T]) in label order."""
        if self.kind == "colbert":
            rows = [o[k][mask[k] != 0] for o, mask in out_batches for k in range(o.shape[0])]
            lengths = np.array([r.shape[0] for r in rows])
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            return ("tokens", np.concatenate(rows, 0), starts, lengths)
        vecs = np.concatenate([self.mean_pool(o, m) for o, m in out_batches], 0)
        return ("vectors", vecs)

    def score(self, out, mask, labels):
        if self.kind == "bi_encoder":
            return self.mean_pool(out, mask) @ labels[1].T
        if self.kind == "poly_encoder":
            logits = self.codes @ out.transpose(0, 2, 1)  # [b, m, T]
            logits = np.where(mask[:, None, :] != 0, logits, -np.inf)
            logits -= logits.max(-1, keepdims=True)
            a = np.exp(logits)
            a /= a.sum(-1, keepdims=True)
            ctx = a @ out  # [b, m, H]
            s = ctx @ labels[1].T  # [b, m, L]
            w = np.exp(s - s.max(1, keepdims=True))
            w /= w.sum(1, keepdims=True)
            return (w * s).sum(1)
        _, tokens, starts, lengths = labels
        sim = out @ tokens.T  # [b, T, S]
        sim = np.where(mask[:, :, None] != 0, sim, -np.inf)
        best = sim.max(1)  # [b, S]
        return self.scale * np.add.reduceat(best, starts, axis=1) / lengths


def feeds_for(session, ids, mask, types):
    by_name = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {i.name: by_name[i.name] for i in session.get_inputs()}


def encodings_to_arrays(encs):
    ids = np.array([e.ids for e in encs], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
    types = np.array([e.type_ids for e in encs], dtype=np.int64)
    return ids, mask, types


def pad_encodings(encs, pad_id, pad_type_id):
    """Pad unpadded encodings to the batch's longest (for the length-sorted paths)."""
    seq = max(len(e.ids) for e in encs)
    b = len(encs)
    ids = np.full((b, seq), pad_id, dtype=np.int64)
    mask = np.zeros((b, seq), dtype=np.int64)
    types = np.full((b, seq), pad_type_id, dtype=np.int64)
    for k, e in enumerate(encs):
        n = len(e.ids)
        ids[k, :n] = e.ids
        mask[k, :n] = e.attention_mask
        types[k, :n] = e.type_ids
    return ids, mask, types


class PythonOrt:
    def __init__(self, bundle):
        self.bundle = bundle
        self.manifest = json.loads((bundle / "manifest.json").read_text())
        self.max_length = self.manifest["spec"]["max_length"]
        self.template = self.manifest["spec"].get("label_template")
        self.session = ort_session(bundle / self.manifest["encoder"])
        self.tok = bundle_tokenizer(bundle, self.max_length, padding=True)
        self.tok_nopad = bundle_tokenizer(bundle, self.max_length, padding=False)
        pad = Tokenizer.from_file(str(bundle / "tokenizer.json")).padding or {}
        self.pad_id, self.pad_type_id = pad.get("pad_id", 0), pad.get("pad_type_id", 0)
        self.head = NumpyHead(bundle, self.manifest)
        self.output = self.manifest["output"]

    def run(self, ids, mask, types):
        return self.session.run([self.output], feeds_for(self.session, ids, mask, types))[0]

    def encode_labels(self, labels):
        if self.template:
            labels = [self.template.replace("{}", l, 1) for l in labels]
        outs = []
        for i in range(0, len(labels), ARGS.batch_size):
            ids, mask, types = encodings_to_arrays(self.tok.encode_batch(labels[i:i + ARGS.batch_size]))
            outs.append((self.run(ids, mask, types), mask))
        return self.head.encode_labels(outs)

    def classify_in_order(self, texts, labels):
        scores = []
        for i in range(0, len(texts), ARGS.batch_size):
            ids, mask, types = encodings_to_arrays(self.tok.encode_batch(texts[i:i + ARGS.batch_size]))
            scores.append(self.head.score(self.run(ids, mask, types), mask, labels))
        return np.concatenate(scores, 0)

    def sorted_batches(self, texts):
        encs = self.tok_nopad.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
        for i in range(0, len(order), ARGS.batch_size):
            rows = order[i:i + ARGS.batch_size]
            yield rows, pad_encodings([encs[r] for r in rows], self.pad_id, self.pad_type_id)

    def classify_sorted(self, texts, labels):
        scores = np.zeros((len(texts), self.n_labels(labels)), dtype=np.float32)
        for rows, (ids, mask, types) in self.sorted_batches(texts):
            scores[rows] = self.head.score(self.run(ids, mask, types), mask, labels)
        return scores

    @staticmethod
    def n_labels(labels):
        return labels[1].shape[0] if labels[0] == "vectors" else len(labels[2])


def time_passes(fn):
    fn()  # warm-up
    times = []
    out = None
    for _ in range(ARGS.repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def summary(name, n, times, top1=None, **extra):
    best = min(times)
    return {"system": name, "texts_per_s": n / best, "texts_per_s_median": n / statistics.median(times),
            "runs_s": times, "top1": top1, **extra}


# ---------------------------------------------------------------------------------------------
# PyTorch eager


class TorchModel:
    def __init__(self, bundle, manifest):
        import torch
        import transformers
        from transformers import AutoModel, AutoTokenizer

        # The poly/colbert checkpoints hold head tensors BertModel does not know: expected, not news.
        transformers.logging.set_verbosity_error()

        torch.set_num_threads(ARGS.threads)
        self.torch = torch
        self.kind = manifest["spec"]["model_type"]
        self.max_length = manifest["spec"]["max_length"]
        base = ROOT / "models" / "all-MiniLM-L6-v2"
        source = Path(manifest["source"])
        weights_dir = source if (source / "config.json").exists() else base
        self.tokenizer = AutoTokenizer.from_pretrained(str(base))
        self.model = AutoModel.from_pretrained(str(weights_dir)).eval()
        if self.kind != "bi_encoder":
            from safetensors.torch import load_file
            w = load_file(str(weights_dir / "model.safetensors"))
            self.codes = w.get("poly.codes")
            self.proj = w.get("colbert.proj.weight")
            self.scale = w.get("colbert.score_scale")
        self.weights_dir = weights_dir

    def forward(self, texts):
        torch = self.torch
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        h = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"]
        if self.kind == "colbert":
            h = torch.nn.functional.normalize(h @ self.proj.T, dim=-1, eps=1e-12)
        return h, mask

    @staticmethod
    def mean_pool(h, mask):
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    def encode_labels(self, labels):
        torch = self.torch
        with torch.inference_mode():
            outs = [self.forward(labels[i:i + ARGS.batch_size]) for i in range(0, len(labels), ARGS.batch_size)]
            if self.kind == "colbert":
                rows = [h[k][m[k] != 0] for h, m in outs for k in range(h.shape[0])]
                lengths = torch.tensor([r.shape[0] for r in rows])
                return torch.cat(rows, 0), torch.repeat_interleave(torch.arange(len(rows)), lengths), lengths
            return torch.cat([self.mean_pool(h, m) for h, m in outs], 0)

    def score(self, h, mask, labels):
        torch = self.torch
        if self.kind == "bi_encoder":
            return self.mean_pool(h, mask) @ labels.T
        if self.kind == "poly_encoder":
            logits = torch.einsum("mh,bth->bmt", self.codes, h)
            logits = logits.masked_fill(mask[:, None, :] == 0, float("-inf"))
            ctx = torch.softmax(logits, -1) @ h  # [b, m, H]
            s = ctx @ labels.T  # [b, m, L]
            return (torch.softmax(s, 1) * s).sum(1)
        tokens, owner, lengths = labels
        sim = (h @ tokens.T).masked_fill(mask[:, :, None] == 0, float("-inf"))
        best = sim.max(1).values  # [b, S]
        sums = torch.zeros(h.shape[0], len(lengths)).index_add_(1, owner, best)
        return self.scale * sums / lengths

    def classify_in_order(self, texts, labels):
        torch = self.torch
        with torch.inference_mode():
            out = []
            for i in range(0, len(texts), ARGS.batch_size):
                h, mask = self.forward(texts[i:i + ARGS.batch_size])
                out.append(self.score(h, mask, labels))
            return torch.cat(out, 0).numpy()


# ---------------------------------------------------------------------------------------------


def token_stats(bundle, texts):
    manifest = json.loads((bundle / "manifest.json").read_text())
    tok = bundle_tokenizer(bundle, manifest["spec"]["max_length"], padding=False)
    lengths = [len(e.ids) for e in tok.encode_batch(texts)]
    b = ARGS.batch_size

    def padded(ls):
        return sum(max(ls[i:i + b]) * len(ls[i:i + b]) for i in range(0, len(ls), b))

    real = sum(lengths)
    in_order, sorted_ = padded(lengths), padded(sorted(lengths))
    return {"mean_tokens": real / len(lengths), "max_tokens": max(lengths), "real_tokens": real,
            "padding_share_in_order": 1 - real / in_order, "padding_share_sorted": 1 - real / sorted_}


def agreement(a, b):
    if a is None or b is None:
        return None
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def bench_arch(arch, bundle, binary, workload_path, texts, labels):
    results = {}
    load_before = load_average()
    log(f"[{arch}] ours (Rust runtime) ...")
    ours = run_ours(binary, bundle, workload_path)
    results["ours"] = ours
    ours_top1 = ours["top1"]

    py = PythonOrt(bundle)
    log(f"[{arch}] bare ONNX Runtime (pre-tokenised, same length-sorted batches) ...")
    batches = [arrays for _, arrays in py.sorted_batches(texts)]

    def bare():
        for ids, mask, types in batches:
            py.run(ids, mask, types)

    times, _ = time_passes(bare)
    results["bare-ort"] = summary("bare-ort", len(texts), times)

    log(f"[{arch}] Python onnxruntime + tokenizers + numpy ...")
    t0 = time.perf_counter()
    py_labels = py.encode_labels(labels)
    label_s = time.perf_counter() - t0
    times, scores = time_passes(lambda: py.classify_in_order(texts, py_labels))
    results["py-ort"] = summary("py-ort", len(texts), times, scores.argmax(1).tolist(), label_encode_s=label_s)
    times, scores = time_passes(lambda: py.classify_sorted(texts, py_labels))
    results["py-ort-sorted"] = summary("py-ort-sorted", len(texts), times, scores.argmax(1).tolist())

    if not ARGS.no_torch:
        log(f"[{arch}] PyTorch eager (transformers) ...")
        tm = TorchModel(bundle, py.manifest)
        t0 = time.perf_counter()
        t_labels = tm.encode_labels(labels)
        label_s = time.perf_counter() - t0
        times, scores = time_passes(lambda: tm.classify_in_order(texts, t_labels))
        results["torch"] = summary("torch", len(texts), times, scores.argmax(1).tolist(), label_encode_s=label_s,
                                   weights=str(tm.weights_dir))
        if arch == "bi_encoder":
            log(f"[{arch}] sentence-transformers ...")
            import torch
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(str(ROOT / "models" / "all-MiniLM-L6-v2"), device="cpu")
            st_labels = st.encode(labels, batch_size=ARGS.batch_size, convert_to_tensor=True)

            def st_classify():
                with torch.inference_mode():
                    emb = st.encode(texts, batch_size=ARGS.batch_size, convert_to_tensor=True)
                    return (emb @ st_labels.T).numpy()

            times, scores = time_passes(st_classify)
            # all-MiniLM's sentence-transformers pipeline L2-normalises, so its top-1 may differ.
            results["sentence-transformers"] = summary("sentence-transformers", len(texts), times,
                                                       scores.argmax(1).tolist())
    for r in results.values():
        r["top1_agreement_with_ours"] = agreement(r.get("top1"), ours_top1)
    results["_load"] = [load_before, load_average()]
    return results


def fmt(x, digits=0):
    return "–" if x is None else f"{x:.{digits}f}"


def main():
    texts, labels, workload_path = make_workload()
    binary = build_binary()
    out = subprocess.run([str(binary), "--make-bundles"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"building the speed bundles failed:\n{out.stderr}")
    bundles = {k: Path(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}

    stats = token_stats(bundles["bi_encoder"], texts)
    log(f"workload: {len(texts)} texts x {len(labels)} labels, {stats}")
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": ARGS.threads, "batch_size": ARGS.batch_size,
               "onnxruntime": ort.__version__, "load_at_start": load_average()}
    all_results = {}
    for arch in ARGS.archs:
        all_results[arch] = bench_arch(arch, bundles[arch], binary, workload_path, texts, labels)
        r = all_results[arch]
        # Written after every architecture, so a long run that gets interrupted keeps what it measured.
        ARGS.out.parent.mkdir(parents=True, exist_ok=True)
        ARGS.out.with_suffix(".partial.json").write_text(json.dumps(
            {"machine": machine, "workload": stats, "results": {
                a: {k: ({kk: vv for kk, vv in v.items() if kk != "top1"} if isinstance(v, dict) else v)
                    for k, v in res.items()} for a, res in all_results.items()}}, indent=2))
        log(f"[{arch}] " + ", ".join(f"{k}: {v['texts_per_s']:.0f}/s" for k, v in r.items() if not k.startswith("_")))

    systems = ["ours", "bare-ort", "py-ort", "py-ort-sorted", "torch", "sentence-transformers"]
    lines = [
        f"Machine: {machine['cpu']}, {machine['cores']} cores; {ARGS.threads} intra-op threads everywhere "
        f"(ONNX Runtime {machine['onnxruntime']} in Rust and Python, torch.set_num_threads({ARGS.threads}), "
        f"RAYON/OMP/OpenBLAS = {ARGS.threads}); batch size {ARGS.batch_size}; {len(texts)} CLINC150 test texts "
        f"(seeded sample, mean {stats['mean_tokens']:.1f} tokens, max {stats['max_tokens']}) against "
        f"{len(labels)} labels; texts/s from the fastest of {ARGS.repeats} passes after a warm-up.",
        f"Padding share of the token grid: {stats['padding_share_in_order']:.0%} in input order, "
        f"{stats['padding_share_sorted']:.0%} sorted by length.",
        "",
        "| architecture | " + " | ".join(systems) + " | ours / py-ort | ours / torch | bare / ours | load (1-min) |",
        "|---" * (len(systems) + 5) + "|",
    ]
    for arch, r in all_results.items():
        tps = {s: r[s]["texts_per_s"] if s in r else None for s in systems}
        ratio = lambda a, b: None if tps[a] is None or tps[b] is None else tps[a] / tps[b]  # noqa: E731
        lo, hi = r["_load"]
        lines.append(
            f"| {arch} | " + " | ".join(fmt(tps[s]) for s in systems)
            + f" | {fmt(ratio('ours', 'py-ort'), 2)}× | {fmt(ratio('ours', 'torch'), 2)}× "
            + f"| {fmt(ratio('bare-ort', 'ours'), 2)}× | {lo:.1f} → {hi:.1f} |"
        )
    lines += ["", "Top-1 agreement with ours (same model; sentence-transformers L2-normalises):", ""]
    for arch, r in all_results.items():
        lines.append(f"- {arch}: " + ", ".join(
            f"{k} {v['top1_agreement_with_ours']:.1%}" for k, v in r.items()
            if not k.startswith("_") and k != "ours" and v.get("top1_agreement_with_ours") is not None))
    lines += ["", "Label encoding (150 labels, once): " + "; ".join(
        f"{arch} ours {r['ours']['label_encode_s'] * 1000:.0f} ms" for arch, r in all_results.items())]
    table = "\n".join(lines)
    print(table)
    ARGS.out.parent.mkdir(parents=True, exist_ok=True)
    ARGS.out.write_text(table + "\n")
    for r in all_results.values():
        for v in r.values():
            if isinstance(v, dict):
                v.pop("top1", None)
    ARGS.out.with_suffix(".json").write_text(json.dumps(
        {"machine": machine, "workload": stats, "results": all_results, "command": sys.argv}, indent=2))
    log(f"wrote {ARGS.out} and {ARGS.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
