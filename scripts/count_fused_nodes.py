#!/usr/bin/env python3
"""Counts the operators ONNX Runtime's graph optimiser leaves in a model after fusion.

usage: count_fused_nodes.py MODEL.onnx [--level all|extended|basic] [--keep OUT.onnx]
                            [--offline-bert NUM_HEADS HIDDEN_SIZE]

Loads MODEL.onnx in an ONNX Runtime CPU session with `optimized_model_filepath` set, reads the
optimised model back and prints op-type counts before/after, highlighting the fused kernels
(Attention, MultiHeadAttention, SkipLayerNormalization, LayerNormalization, Gelu, FastGelu,
BiasGelu, EmbedLayerNormalization, ...). Prints a JSON summary as its last line.

With --offline-bert it also runs the offline `onnxruntime.transformers.optimizer` (model_type bert),
which recognises more patterns than the session-level optimiser (for opset >= 17 graphs the session
optimiser fuses neither Attention, whose matcher only knows LayerNormalization-1 / Add-7,13 /
Reshape-5,13, nor SkipLayerNormalization, which needs a fixed sequence length), and counts that too.
"""
import argparse
import collections
import json
import os
import tempfile

import onnx
import onnxruntime as ort

FUSED = [
    "Attention",
    "MultiHeadAttention",
    "EmbedLayerNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "LayerNormalization",
    "SimplifiedLayerNormalization",
    "Gelu",
    "FastGelu",
    "BiasGelu",
    "QuickGelu",
    "FusedMatMul",
    "FusedGemm",
    "MatMulNBits",
]

LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def op_counts(model):
    return collections.Counter(n.op_type for n in model.graph.node)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--level", choices=sorted(LEVELS), default="all")
    ap.add_argument("--keep", help="also keep the optimised model at this path")
    ap.add_argument("--offline-bert", nargs=2, type=int, metavar=("NUM_HEADS", "HIDDEN_SIZE"))
    a = ap.parse_args()

    before = op_counts(onnx.load(a.model, load_external_data=False))
    with tempfile.TemporaryDirectory() as tmp:
        out = a.keep or os.path.join(tmp, "optimized.onnx")
        so = ort.SessionOptions()
        so.graph_optimization_level = LEVELS[a.level]
        so.optimized_model_filepath = out
        ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
        after = op_counts(onnx.load(out, load_external_data=False))

    print(f"model: {a.model}  (onnxruntime {ort.__version__}, level {a.level})")
    print(f"nodes: {sum(before.values())} before, {sum(after.values())} after optimisation")
    print(f"{'op_type':<34}{'before':>8}{'after':>8}")
    for op in sorted(set(before) | set(after), key=lambda o: (-after.get(o, 0), o)):
        mark = "  <- fused" if op in FUSED and after.get(op, 0) > before.get(op, 0) else ""
        print(f"{op:<34}{before.get(op, 0):>8}{after.get(op, 0):>8}{mark}")
    summary = {
        "onnxruntime": ort.__version__,
        "level": a.level,
        "nodes_before": sum(before.values()),
        "nodes_after": sum(after.values()),
        "fused": {op: after[op] for op in FUSED if after.get(op, 0)},
        "after": dict(sorted(after.items())),
    }
    if a.offline_bert:
        from onnxruntime.transformers.optimizer import optimize_model

        heads, hidden = a.offline_bert
        m = optimize_model(a.model, model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0, use_gpu=False)
        offline = op_counts(m.model)
        print(f"offline transformers optimizer (bert, {heads} heads, hidden {hidden}): {sum(offline.values())} nodes")
        for op, n in sorted(offline.items(), key=lambda kv: -kv[1]):
            print(f"  {op:<32}{n:>8}")
        summary["offline_bert"] = {
            "nodes": sum(offline.values()),
            "fused": {op: offline[op] for op in FUSED if offline.get(op, 0)},
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
