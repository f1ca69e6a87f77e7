"""Checks an exported bundle: onnx.checker (full_check), ONNX Runtime at two dynamic shapes,
output name / shape / finiteness, ColBERT unit norms. Optionally, for ColBERT, compares against
normalize(last_hidden_state @ W^T) computed from a bi-encoder export of the same encoder.

With --fp32-reference (an int8 bundle checked against the f32 export of the same weights) it also
reports the graph's quantized ops, what ONNX Runtime's optimiser fuses them into, and the cosine
similarity of the two bundles' output rows.

usage: check_bundle.py BUNDLE [--bi-reference BI_BUNDLE --weights model.safetensors]
                              [--fp32-reference FP32_BUNDLE]
Prints one JSON line with what it measured; exits non-zero on any failed check.
"""
import argparse
import collections
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402


def run(sess, ids, mask):
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return sess.run(None, feeds)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--bi-reference")
    ap.add_argument("--weights")
    ap.add_argument("--fp32-reference")
    a = ap.parse_args()
    manifest = json.load(open(os.path.join(a.bundle, "manifest.json")))
    path = os.path.join(a.bundle, manifest["encoder"])
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path)
    inputs = [i.name for i in model.graph.input]
    assert inputs == manifest["inputs"], (inputs, manifest["inputs"])
    out = model.graph.output[0]
    assert out.name == manifest["output"], (out.name, manifest["output"])
    dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence", manifest["output_dim"]], dims
    for i in model.graph.input:
        d = [x.dim_param for x in i.type.tensor_type.shape.dim]
        assert d == ["batch", "sequence"], d

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    report = {"checker": "ok", "opset": model.opset_import[0].version, "ir_version": model.ir_version}
    max_norm_err = 0.0
    outputs = []
    for batch, seq in [(1, 5), (3, 11)]:
        ids = rng.integers(1000, 2000, size=(batch, seq)).astype(np.int64)
        ids[:, 0] = 101
        mask = np.ones((batch, seq), dtype=np.int64)
        if batch > 1:
            mask[1, 7:] = 0  # padded row
            ids[1, 7:] = 0
        y = run(sess, ids, mask)
        assert y.shape == (batch, seq, manifest["output_dim"]), y.shape
        assert np.isfinite(y).all()
        if manifest["spec"]["model_type"] == "colbert":
            norms = np.linalg.norm(y, axis=-1)
            max_norm_err = max(max_norm_err, float(np.abs(norms - 1).max()))
        outputs.append((ids, mask, y))
    if manifest["spec"]["model_type"] == "colbert":
        assert max_norm_err < 1e-5, max_norm_err
        report["max_unit_norm_error"] = max_norm_err
    if a.bi_reference:
        bi = ort.InferenceSession(os.path.join(a.bi_reference, "encoder.onnx"), providers=["CPUExecutionProvider"])
        w = st.load(a.weights)["colbert.proj.weight"].astype(np.float64)
        diff = 0.0
        for ids, mask, y in outputs:
            h = run(bi, ids, mask).astype(np.float64)
            e = h @ w.T
            e = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
            diff = max(diff, float(np.abs(e - y).max()))
        assert diff < 1e-5, diff
        report["max_abs_diff_vs_bi_projection"] = diff
    if a.fp32_reference:
        report.update(compare_quantized(path, model, outputs, a.fp32_reference))
    print(json.dumps(report))


def compare_quantized(path, model, outputs, reference):
    ops = collections.Counter(n.op_type for n in model.graph.node)
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        fused = collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)
    ref = ort.InferenceSession(os.path.join(reference, "encoder.onnx"), providers=["CPUExecutionProvider"])
    min_cos = 1.0
    for ids, mask, y in outputs:
        r = run(ref, ids, mask)
        real = mask.astype(bool)
        a, b = y[real].astype(np.float64), r[real].astype(np.float64)
        cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
        min_cos = min(min_cos, float(cos.min()))
    return {
        "ops": {k: ops.get(k, 0) for k in ["MatMul", "MatMulInteger", "DynamicQuantizeLinear"]},
        "fused": {k: fused.get(k, 0) for k in ["MatMulIntegerToFloat", "DynamicQuantizeMatMul", "MatMulInteger"]},
        "min_cosine_vs_fp32": min_cos,
    }


if __name__ == "__main__":
    main()
