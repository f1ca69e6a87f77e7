#!/usr/bin/env python3
"""Counts the operators ONNX Runtime's graph optimiser leaves in a model after fusion.

usage: count_fused_nodes.py MODEL.onnx [--level all|extended|basic] [--keep OUT.onnx]

Loads MODEL.onnx in an ONNX Runtime CPU session with `optimized_model_filepath` set, reads the
optimised model back and prints op-type counts before/after, highlighting the fused kernels
(Attention, MultiHeadAttention, SkipLayerNormalization, LayerNormalization, Gelu, FastGelu,
BiasGelu, EmbedLayerNormalization, ...). Prints a JSON summary as its last line.
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
        mark = "  <- fused" if op in FUSED and after.get(op, 0) else ""
        print(f"{op:<34}{before.get(op, 0):>8}{after.get(op, 0):>8}{mark}")
    summary = {
        "onnxruntime": ort.__version__,
        "level": a.level,
        "nodes_before": sum(before.values()),
        "nodes_after": sum(after.values()),
        "fused": {op: after[op] for op in FUSED if after.get(op, 0)},
        "after": dict(sorted(after.items())),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
