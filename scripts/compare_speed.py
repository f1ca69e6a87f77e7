#!/usr/bin/env python3
"""Side-by-side inference speed: our Rust runtime (f32 and int8 bundles) against the strongest Python
set-ups a careful user builds, same machine, one run.

usage: .venv-bench/bin/python scripts/compare_speed.py [--n 2000] [--batch-size 32] [--threads 2]
           [--repeats 5] [--archs bi_encoder poly_encoder colbert] [--out target/speed-report.md]
           [--no-torch] [--no-st-onnx] [--no-build]

Set-up: scripts/setup_bench_venv.sh (makes .venv-bench: the main .venv's torch / onnxruntime / onnx /
numpy plus scripts/bench_requirements.txt). Offline: the model is the local models/all-MiniLM-L6-v2.

The same exported models (the MiniLM speed bundles of benches/speed_bundles.rs under
target/speed-bundles/, f32 and `zsc-export --quantize int8`, built on first use), the same N CLINC150
texts (a seeded sample of data/clinc150_test.json) against its 150 labels, the same batch size and
thread count, through (rows of the report):

  ours                 the release Rust binary runtime/examples/throughput.rs (tokenise in Rust,
                       texts sorted by length into batches, ONNX Runtime via `ort`, heads in ndarray)
  bare-ort             ONNX Runtime alone (Python) on the same encoder.onnx with pre-tokenised
                       inputs in the same length-sorted batches: only session.run is timed
  bare-ort, ORT quantize_dynamic   the same on onnxruntime.quantization.quantize_dynamic(
                       per_channel=True) of our f32 graph: the reference for our own int8 graph
  py-ort               Python onnxruntime + HF `tokenizers` (same tokenizer.json, batch-longest
                       padding) + numpy pooling/scoring; "input order" keeps the texts' order,
                       "sorted" sorts them by token count first (the same batches as ours)
  torch                PyTorch eager: transformers AutoModel (same weights, its default SDPA
                       attention) + AutoTokenizer, heads in torch, sorted batches, inference_mode
  sentence-transformers            bi_encoder only: SentenceTransformer.encode (PyTorch; it sorts by
                       length itself), its ONNX backend (backend="onnx", its own optimum export) and
                       that backend's dynamic int8 export (export_dynamic_quantized_onnx_model with
                       the configuration that fits this CPU: avx512_vnni, avx512 or avx2)

What makes the Python columns careful (measured by scripts/py_ort_thread_settings.py,
docs/speed.md): numpy's OpenBLAS gets one thread, because its idle worker thread busy-waits after every
small pooling/scoring product on the core that ONNX Runtime's worker thread needs (2.3x on 2
cores); sorted batches; warm-up; best of --repeats passes. The tokenizer's rayon pool is also set
to one thread (measured: no effect either way on batches of 32 short texts). Everything gets --threads intra-op threads (ONNX Runtime intra_op_num_threads,
inter-op 1; torch.set_num_threads).

Labels are encoded once per system before timing. Every system runs one warm-up pass, then
--repeats timed passes over all texts, each started once the machine is quiet and counted only if no
other process used more than 10% of the CPU during it (scripts/quiet.py; other engineers share this
machine); texts/s is from the fastest clean pass, the median is kept in the JSON. Top-1 labels
of every system are compared with ours (f32). The report names the CPU and the instruction-set
flags that decide int8 speed (avx2, avx512f, avx512_vnni, avx_vnni, amx), and the 1-minute load
before and after each architecture. Writes target/speed-report.md and .json.
"""
import argparse
import json
import os
import platform
import random
import shutil
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
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--archs", nargs="+", default=["bi_encoder", "poly_encoder", "colbert"])
    p.add_argument("--data", type=Path, default=ROOT / "data" / "clinc150_test.json")
    p.add_argument("--out", type=Path, default=ROOT / "target" / "speed-report.md")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch and sentence-transformers (PyTorch)")
    p.add_argument("--no-st-onnx", action="store_true", help="skip sentence-transformers' ONNX backend rows")
    p.add_argument("--no-build", action="store_true", help="do not run cargo build (binary must exist)")
    p.add_argument("--latency-calls", type=int, default=300, help="single-text calls timed for ours' latency")
    p.add_argument("--max-wait-s", type=float, default=None,
                   help="longest wait for a quiet machine before a pass (default $ZSC_QUIET_MAX_WAIT_S or 900)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


ARGS = parse_args()
# Thread settings must be in the environment before numpy / torch / tokenizers load.
for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS"]:
    os.environ[var] = str(ARGS.threads)  # torch's intra-op pool
# numpy's BLAS only does the small pooling/scoring products; its idle worker thread spins on the
# core ONNX Runtime's worker needs: the cause of the old script's slow py-ort column (2.3x,
# scripts/py_ort_thread_settings.py).
os.environ["OPENBLAS_NUM_THREADS"] = "1"
# The tokenizer's rayon pool: measured to make no difference here; one thread, like BLAS.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quiet  # noqa: E402
from safetensors.numpy import load_file as load_safetensors  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

BASE_MODEL = ROOT / "models" / "all-MiniLM-L6-v2"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def load_average():
    return os.getloadavg()[0]


def cpu_info():
    """Model name and the flags that decide int8 / f32 kernel choice in ONNX Runtime's MLAS."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8"]
    return {"model": model, "flags": {f: f in flags for f in wanted}}


def st_quantization_config(cpu):
    f = cpu["flags"]
    if f["avx512_vnni"]:
        return "avx512_vnni"
    if f["avx512f"]:
        return "avx512"
    return "avx2"


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
        subprocess.run(["cargo", "build", "--release", "-p", "zsc", "--example", "throughput"], cwd=ROOT, check=True)
    binary = target_dir() / "release" / "examples" / "throughput"
    if not binary.exists():
        sys.exit(f"{binary} does not exist: run without --no-build (or set CARGO_TARGET_DIR)")
    return binary


def run_ours(binary, bundle, workload_path, attempts=3):
    """The Rust binary (its own warm-up and --repeats passes); rerun while another process used the
    CPU during it (up to `attempts` runs), keeping the fastest clean run."""
    cmd = [str(binary), "--bundle", str(bundle), "--workload", str(workload_path), "--batch-size",
           str(ARGS.batch_size), "--threads", str(ARGS.threads), "--repeats", str(ARGS.repeats),
           "--latency-calls", str(ARGS.latency_calls)]
    # the runtime's own tokenizer pool gets the threads it would have in a real process
    env = {**os.environ, "RAYON_NUM_THREADS": str(ARGS.threads)}
    runs = []
    for _ in range(attempts):
        quiet.wait_quiet(ARGS.max_wait_s)
        with quiet.Interval() as iv:
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["others_cpu_share"] = iv.others
        runs.append(r)
        if iv.clean:
            break
    clean = [r for r in runs if r["others_cpu_share"] < quiet.CLEAN_SHARE] or runs
    best = max(clean, key=lambda r: r["texts_per_s"])
    best["clean"] = best["others_cpu_share"] < quiet.CLEAN_SHARE
    return best


def ort_reference_bundle(bundle):
    """onnxruntime.quantization.quantize_dynamic(per_channel=True) of an f32 bundle's graph (cached)."""
    out = bundle.parent / f"{bundle.name}_ort_quantize_dynamic"
    src = bundle / "encoder.onnx"
    dst = out / "encoder.onnx"
    if not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out.mkdir(parents=True, exist_ok=True)
        for f in bundle.iterdir():
            if f.is_file() and f.name != "encoder.onnx":
                shutil.copy(f, out / f.name)
        quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8)
    return out


# ---------------------------------------------------------------------------------------------
# Python onnxruntime + tokenizers + numpy


def ort_session(path, session_options=None):
    so = session_options or ort.SessionOptions()
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
    """Pooling and scoring with numpy, the contract of docs/architectures.md."""

    def __init__(self, bundle, manifest):
        self.kind = manifest["spec"]["model_type"]
        head = load_safetensors(str(bundle / manifest["head"])) if (bundle / manifest["head"]).exists() else {}
        self.codes = head.get("poly.codes")
        scale = head.get("colbert.score_scale")
        self.scale = float(scale[0]) if scale is not None else None

    @staticmethod
    def mean_pool(out, mask):
        m = mask.astype(np.float32)
        return np.einsum("bt,btd->bd", m, out) / np.maximum(m.sum(1, keepdims=True), 1e-9)

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
    def __init__(self, bundle, encoder=None):
        self.bundle = bundle
        self.manifest = json.loads((bundle / "manifest.json").read_text())
        self.max_length = self.manifest["spec"]["max_length"]
        self.template = self.manifest["spec"].get("label_template")
        self.session = ort_session(encoder or bundle / self.manifest["encoder"])
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
        # stable sort by token count: the same batches as the Rust runtime's
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
    """Warm-up, then --repeats passes during which no other process used the CPU (scripts/quiet.py);
    returns the clean pass times (all passes if none was clean) and the last result."""
    fn()  # warm-up
    clean, times, out, shares = quiet.clean_passes(fn, ARGS.repeats, max_wait_s=ARGS.max_wait_s)
    TIMING_NOTES.append({"passes": len(times), "clean": len(clean), "others_share": shares})
    return clean or times, out


TIMING_NOTES = []


def summary(name, n, times, top1=None, **extra):
    best = min(times)
    note = TIMING_NOTES[-1] if TIMING_NOTES else {}
    return {"system": name, "texts_per_s": n / best, "texts_per_s_median": n / statistics.median(times),
            "runs_s": times, "top1": top1, "clean": note.get("clean", 0) > 0, "timing": note, **extra}


def length_order(tokenizer_call, texts):
    """Indices of texts sorted by token count (stable)."""
    lengths = [len(x) for x in tokenizer_call(texts)]
    return sorted(range(len(texts)), key=lambda i: lengths[i])


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
        source = Path(manifest["source"])
        weights_dir = source if (source / "config.json").exists() else BASE_MODEL
        self.tokenizer = AutoTokenizer.from_pretrained(str(BASE_MODEL))
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

    def classify_sorted(self, texts, labels):
        torch = self.torch
        # length-sorted batches, as sentence-transformers does (the tokenizer call is part of the work)
        order = length_order(lambda t: self.tokenizer(t, truncation=True, max_length=self.max_length)["input_ids"], texts)
        with torch.inference_mode():
            out = [None] * len(texts)
            for i in range(0, len(order), ARGS.batch_size):
                rows = order[i:i + ARGS.batch_size]
                h, mask = self.forward([texts[r] for r in rows])
                for r, s in zip(rows, self.score(h, mask, labels)):
                    out[r] = s
            return torch.stack(out).numpy()


# ---------------------------------------------------------------------------------------------
# sentence-transformers: PyTorch, its ONNX backend, its dynamic int8 export


def st_model_copy():
    """A private copy of the base model folder: the ONNX backend writes onnx/ files into it."""
    dst = ROOT / "target" / "st-models" / "all-MiniLM-L6-v2"
    if not (dst / "config.json").exists():
        shutil.copytree(BASE_MODEL, dst, symlinks=False, dirs_exist_ok=True)
    return dst


def st_session_options():
    so = ort.SessionOptions()
    so.intra_op_num_threads = ARGS.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return so


def st_models(cpu):
    """(name, model) for sentence-transformers' PyTorch, ONNX and ONNX-int8 paths."""
    from sentence_transformers import SentenceTransformer

    models = []
    if not ARGS.no_torch:
        models.append(("sentence-transformers (PyTorch f32)", SentenceTransformer(str(BASE_MODEL), device="cpu")))
    if not ARGS.no_st_onnx:
        from sentence_transformers import export_dynamic_quantized_onnx_model

        folder = st_model_copy()
        f32_file = folder / "onnx" / "model.onnx"
        if not f32_file.exists():
            log("sentence-transformers: exporting its ONNX model (optimum) ...")
            SentenceTransformer(str(folder), backend="onnx", device="cpu").save_pretrained(str(folder))
        kwargs = {"provider": "CPUExecutionProvider", "session_options": st_session_options()}
        onnx_model = SentenceTransformer(str(folder), backend="onnx", device="cpu", model_kwargs=kwargs)
        models.append(("sentence-transformers ONNX f32", onnx_model))
        config = st_quantization_config(cpu)
        q_file = folder / "onnx" / f"model_qint8_{config}.onnx"
        if not q_file.exists():
            log(f"sentence-transformers: export_dynamic_quantized_onnx_model(..., {config!r}) ...")
            export_dynamic_quantized_onnx_model(onnx_model, config, str(folder))
        q_kwargs = {**kwargs, "session_options": st_session_options(), "file_name": f"onnx/{q_file.name}"}
        models.append((f"sentence-transformers ONNX int8 ({config})",
                       SentenceTransformer(str(folder), backend="onnx", device="cpu", model_kwargs=q_kwargs)))
    return models


def bench_st(cpu, texts, labels, results):
    import torch

    for name, st in st_models(cpu):
        log(f"[bi_encoder] {name} ...")
        st_labels = st.encode(labels, batch_size=ARGS.batch_size, convert_to_numpy=True)

        def st_classify():
            with torch.inference_mode():
                emb = st.encode(texts, batch_size=ARGS.batch_size, convert_to_numpy=True)
            return emb @ st_labels.T

        times, scores = time_passes(st_classify)
        # all-MiniLM's sentence-transformers pipeline L2-normalises, so its top-1 may differ.
        results[name] = summary(name, len(texts), times, scores.argmax(1).tolist())


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


def bench_bare(name, py, texts, results):
    batches = [arrays for _, arrays in py.sorted_batches(texts)]

    def bare():
        for ids, mask, types in batches:
            py.run(ids, mask, types)

    times, _ = time_passes(bare)
    results[name] = summary(name, len(texts), times)


def bench_arch(arch, bundles, binary, workload_path, texts, labels, cpu):
    results = {}
    load_before = load_average()
    f32, int8 = bundles[arch], bundles[f"{arch}_int8"]
    for tag, bundle in [("f32", f32), ("int8", int8)]:
        log(f"[{arch}] ours {tag} (Rust runtime) ...")
        results[f"ours {tag}"] = run_ours(binary, bundle, workload_path)

    for tag, bundle, encoder in [("f32", f32, None), ("int8", int8, None),
                                 ("int8, ORT quantize_dynamic", f32, ort_reference_bundle(f32) / "encoder.onnx")]:
        log(f"[{arch}] bare ONNX Runtime {tag} (pre-tokenised, same length-sorted batches) ...")
        bench_bare(f"bare-ort {tag}", PythonOrt(bundle, encoder), texts, results)

    for tag, bundle in [("f32", f32), ("int8", int8)]:
        log(f"[{arch}] Python onnxruntime {tag} + tokenizers + numpy ...")
        py = PythonOrt(bundle)
        t0 = time.perf_counter()
        py_labels = py.encode_labels(labels)
        label_s = time.perf_counter() - t0
        if tag == "f32":
            times, scores = time_passes(lambda: py.classify_in_order(texts, py_labels))
            results["py-ort f32, input order"] = summary("py-ort f32, input order", len(texts), times,
                                                         scores.argmax(1).tolist(), label_encode_s=label_s)
        times, scores = time_passes(lambda: py.classify_sorted(texts, py_labels))
        results[f"py-ort {tag}, sorted"] = summary(f"py-ort {tag}, sorted", len(texts), times, scores.argmax(1).tolist(),
                                                   label_encode_s=label_s)

    if not ARGS.no_torch:
        log(f"[{arch}] PyTorch eager (transformers), sorted batches ...")
        tm = TorchModel(f32, json.loads((f32 / "manifest.json").read_text()))
        t_labels = tm.encode_labels(labels)
        times, scores = time_passes(lambda: tm.classify_sorted(texts, t_labels))
        results["torch f32, sorted"] = summary("torch f32, sorted", len(texts), times, scores.argmax(1).tolist(),
                                               weights=str(tm.weights_dir))
    if arch == "bi_encoder" and not (ARGS.no_torch and ARGS.no_st_onnx):
        bench_st(cpu, texts, labels, results)

    ours_top1 = results["ours f32"]["top1"]
    for r in results.values():
        r["top1_agreement_with_ours_f32"] = agreement(r.get("top1"), ours_top1)
    results["_load"] = [load_before, load_average()]
    return results


def fmt(x, digits=0):
    return "–" if x is None else f"{x:.{digits}f}"


ROWS = ["ours f32", "ours int8", "bare-ort f32", "bare-ort int8", "bare-ort int8, ORT quantize_dynamic",
        "py-ort f32, input order", "py-ort f32, sorted", "py-ort int8, sorted", "torch f32, sorted",
        "sentence-transformers (PyTorch f32)", "sentence-transformers ONNX f32"]


def report(machine, stats, all_results):
    archs = list(all_results)
    st_int8 = next((k for r in all_results.values() for k in r if k.startswith("sentence-transformers ONNX int8")), None)
    rows = ROWS + ([st_int8] if st_int8 else [])
    flags = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in machine["cpu"]["flags"].items())
    lines = [
        f"CPU: {machine['cpu']['model']}, {machine['cores']} cores; flags: {flags}.",
        f"ONNX Runtime {machine['onnxruntime']} (the same library in Rust and Python), torch {machine['torch']}, "
        f"transformers {machine['transformers']}, sentence-transformers {machine['sentence_transformers']}; "
        f"{ARGS.threads} intra-op threads everywhere; batch size {ARGS.batch_size}; {stats['n_texts']} CLINC150 test "
        f"texts (seeded sample, mean {stats['mean_tokens']:.1f} tokens, max {stats['max_tokens']}) against "
        f"{stats['n_labels']} labels; texts/s from the fastest of {ARGS.repeats} passes after a warm-up; "
        f"{machine['date']}.",
        f"Padding share of the token grid: {stats['padding_share_in_order']:.0%} in input order, "
        f"{stats['padding_share_sorted']:.0%} sorted by length.",
        "",
        "| texts/s | " + " | ".join(archs) + " |",
        "|---" * (len(archs) + 1) + "|",
    ]
    for row in rows:
        cells = []
        for arch in archs:
            r = all_results[arch].get(row)
            if r is None:
                cells.append("–")
                continue
            agree = r.get("top1_agreement_with_ours_f32")
            extra = "" if agree is None or row == "ours f32" else f" ({agree:.0%})"
            dirty = "" if r.get("clean", True) else " ⚠"
            cells.append(f"{r['texts_per_s']:.0f}{extra}{dirty}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines.append("| 1-min load before → after | " + " | ".join(
        f"{all_results[a]['_load'][0]:.1f} → {all_results[a]['_load'][1]:.1f}" for a in archs) + " |")
    lines += ["", "In parentheses: top-1 agreement with ours f32 on the same texts (sentence-transformers "
              "L2-normalises, so its rankings differ by design; int8 rows differ by quantization). Every pass "
              "ran while other processes used under "
              f"{quiet.CLEAN_SHARE:.0%} of the CPU (scripts/quiet.py); ⚠ marks a figure with no such pass."]

    def tps(arch, row):
        r = all_results[arch].get(row)
        return None if r is None else r["texts_per_s"]

    def ratio(arch, a, b):
        x, y = tps(arch, a), tps(arch, b)
        return None if x is None or y is None else x / y

    lines += ["", "| ratio (same run) | " + " | ".join(archs) + " |", "|---" * (len(archs) + 1) + "|"]
    for label, a, b in [("ours int8 / ours f32 (target ≥ 1.8)", "ours int8", "ours f32"),
                        ("ours int8 / sentence-transformers PyTorch f32 (target ≥ 2.5)", "ours int8",
                         "sentence-transformers (PyTorch f32)"),
                        ("ours int8 / py-ort int8, same batches (target ≥ 0.97)", "ours int8", "py-ort int8, sorted"),
                        ("ours f32 / py-ort f32, same batches", "ours f32", "py-ort f32, sorted"),
                        ("ours int8 / bare-ort int8", "ours int8", "bare-ort int8"),
                        ("bare-ort int8 (ours) / bare-ort ORT quantize_dynamic", "bare-ort int8",
                         "bare-ort int8, ORT quantize_dynamic"),
                        ("ours int8 / sentence-transformers ONNX int8", "ours int8", st_int8)]:
        lines.append(f"| {label} | " + " | ".join(
            (lambda v: "–" if v is None else f"{v:.2f}×")(ratio(arch, a, b)) for arch in archs) + " |")
    lines += ["", "Ours, one text per call against the 150 cached labels (back to back, "
              f"{ARGS.latency_calls} calls, median / p90 ms): " + "; ".join(
                  f"{arch} f32 {all_results[arch]['ours f32']['latency_ms_median']:.2f} / "
                  f"{all_results[arch]['ours f32']['latency_ms_p90']:.2f}, int8 "
                  f"{all_results[arch]['ours int8']['latency_ms_median']:.2f} / "
                  f"{all_results[arch]['ours int8']['latency_ms_p90']:.2f}" for arch in archs) + ".",
              "", "Label encoding (once): " + "; ".join(
                  f"{arch} ours f32 {all_results[arch]['ours f32']['label_encode_s'] * 1000:.0f} ms, int8 "
                  f"{all_results[arch]['ours int8']['label_encode_s'] * 1000:.0f} ms" for arch in archs) + "."]
    return "\n".join(lines)


def package_version(name):
    try:
        import importlib.metadata as m
        return m.version(name)
    except Exception:  # noqa: BLE001 - a missing optional package is reported as such
        return "not installed"


def main():
    texts, labels, workload_path = make_workload()
    binary = build_binary()
    out = subprocess.run([str(binary), "--make-bundles"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"building the speed bundles failed:\n{out.stderr}")
    bundles = {k: Path(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}

    stats = {**token_stats(bundles["bi_encoder"], texts), "n_texts": len(texts), "n_labels": len(labels)}
    log(f"workload: {len(texts)} texts x {len(labels)} labels, {stats}")
    cpu = cpu_info()
    machine = {"cpu": cpu, "cores": os.cpu_count(), "threads": ARGS.threads, "batch_size": ARGS.batch_size,
               "onnxruntime": ort.__version__, "torch": package_version("torch"),
               "transformers": package_version("transformers"),
               "sentence_transformers": package_version("sentence-transformers"),
               "date": time.strftime("%Y-%m-%d %H:%M %Z"), "load_at_start": load_average()}
    log(f"machine: {machine}")
    all_results = {}
    for arch in ARGS.archs:
        all_results[arch] = bench_arch(arch, bundles, binary, workload_path, texts, labels, cpu)
        r = all_results[arch]
        # Written after every architecture, so a long run that gets interrupted keeps what it measured.
        ARGS.out.parent.mkdir(parents=True, exist_ok=True)
        ARGS.out.with_suffix(".partial.json").write_text(json.dumps(
            {"machine": machine, "workload": stats, "results": {
                a: {k: ({kk: vv for kk, vv in v.items() if kk != "top1"} if isinstance(v, dict) else v)
                    for k, v in res.items()} for a, res in all_results.items()}}, indent=2))
        log(f"[{arch}] " + ", ".join(f"{k}: {v['texts_per_s']:.0f}/s" for k, v in r.items() if not k.startswith("_")))

    table = report(machine, stats, all_results)
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
