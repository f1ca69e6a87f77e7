"""Parity of an exported MiniLM bundle with Hugging Face transformers' last_hidden_state.

usage: minilm_parity.py BUNDLE REFERENCE.safetensors TOL
Runs the full reference batch ([6, S], token_type_ids zeros), then sub-batches of other sizes cut to
their own longest sequence (dynamic batch and sequence axes). Prints one JSON line; exits non-zero if
the max abs diff over real tokens exceeds TOL.
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402


def main():
    bundle, ref_path, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ref = st.load(ref_path)
    ids, mask, want = ref["input_ids"], ref["attention_mask"], ref["last_hidden_state"]
    sess = ort.InferenceSession(os.path.join(bundle, "encoder.onnx"), providers=["CPUExecutionProvider"])

    def run(i, m):
        return sess.run(["last_hidden_state"], {"input_ids": i, "attention_mask": m, "token_type_ids": np.zeros_like(i)})[0]

    got = run(ids, mask)
    real = mask.astype(bool)
    diff = np.abs(got - want)
    report = {
        "shape": list(got.shape),
        "max_abs_diff_real_tokens": float(diff[real].max()),
        "max_abs_diff_all_tokens": float(diff.max()),
    }
    # Dynamic axes: other batch sizes, each cut to its own longest real length.
    sub_diff = 0.0
    shapes = []
    for rows in ([1], [0, 2], [3, 1, 5], [4]):
        m = mask[rows]
        s = int(m.sum(axis=1).max())
        g = run(np.ascontiguousarray(ids[rows, :s]), np.ascontiguousarray(m[:, :s]))
        shapes.append(list(g.shape))
        r = m[:, :s].astype(bool)
        sub_diff = max(sub_diff, float(np.abs(g - want[rows, :s])[r].max()))
    report["dynamic_shapes"] = shapes
    report["max_abs_diff_dynamic_real_tokens"] = sub_diff
    print(json.dumps(report))
    ok = report["max_abs_diff_real_tokens"] <= tol and sub_diff <= tol
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
