"""scripts/int8_check.py on the real all-MiniLM-L6-v2: its f32 bundle against an int8 export of the
same model (the default, feed-forward output kept f32) and against itself."""

import json
import sys

from conftest import ROOT, export, run


def check(f32, other) -> dict:
    done = run([sys.executable, ROOT / "scripts" / "int8_check.py", f32, other, "--n", "120"], cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_int8_export_is_close_to_f32_and_a_bundle_equals_itself(bundles, tmp_path):
    f32 = bundles["bi_encoder"]
    int8 = export(["--checkpoint", ROOT / "models" / "all-MiniLM-L6-v2", "--quantize", "int8"], tmp_path / "int8")
    row = check(f32, int8)
    assert (row["texts"], row["labels"]) == (120, 45), row
    # Measured 0.995 / 0.957 (300 texts, docs/encoders.md); a broken scheme gave 0.05 / 0.03.
    assert 0.98 < row["cosine_mean"] < 0.9999 and row["cosine_min"] > 0.95, row
    assert row["top1_agreement"] > 0.85, row
    same = check(f32, f32)
    assert same["cosine_min"] > 0.9999 and same["top1_agreement"] == 1.0, same


def test_bundles_of_different_shapes_are_refused(bundles):
    done = run([sys.executable, ROOT / "scripts" / "int8_check.py", bundles["bi_encoder"], bundles["colbert"]], cwd=ROOT)
    assert done.returncode == 2 and "differ" in done.stderr, done.stderr


def test_a_missing_bundle_or_data_file_is_one_line(bundles, tmp_path):
    script = ROOT / "scripts" / "int8_check.py"
    done = run([sys.executable, script, tmp_path / "nowhere", bundles["bi_encoder"]], cwd=ROOT)
    assert done.returncode == 1 and "nowhere" in done.stderr and "Traceback" not in done.stderr, done.stderr
    done = run([sys.executable, script, bundles["bi_encoder"], bundles["bi_encoder"], "--data", tmp_path / "no.json"], cwd=ROOT)
    assert done.returncode == 1 and "no.json" in done.stderr and "Traceback" not in done.stderr, done.stderr
