"""Classifier.classify_file (files in and out, as `zsc classify --input`) and pool adaptation
(`adapt=`) on the real all-MiniLM-L6-v2, plus its distributed form in Ray Data."""

import json

import numpy as np
import pytest

import zsc
from conftest import ROOT, zsc_cli

DEV = json.loads((ROOT / "data" / "clinc150_unseen_dev.json").read_text())
TEXTS = [s["text"] for s in DEV]
GOLD = [set(s["labels"]) for s in DEV]
LABELS = sorted({l for s in DEV for l in s["labels"]})


def accuracy(ranked):
    return float(np.mean([r[0]["label"] in g for r, g in zip(ranked, GOLD)]))


def test_adaptation_lifts_an_untouched_base_on_held_out_intents(classifiers):
    clf = classifiers["bi_encoder"]
    off = accuracy(clf.classify(TEXTS, LABELS, top_k=1))
    on = accuracy(clf.classify(TEXTS, LABELS, top_k=1, adapt=True))
    # measured 0.734 -> 0.776 on these 900 dev texts (45 labels, 20 texts each; max length 64)
    assert on >= off + 0.03, (off, on)
    # the guard: 30 texts for 45 labels move nothing, so adapting equals not adapting
    few = TEXTS[:30]
    assert clf.classify(few, LABELS, top_k=1, adapt=True) == clf.classify(few, LABELS, top_k=1)


def test_adaptation_pieces_equal_the_one_call(classifiers):
    clf = classifiers["bi_encoder"]
    units, norms = clf.pool_vectors(TEXTS)
    assert units.shape == (900, clf.dim) and norms.shape == (900,)
    np.testing.assert_allclose(np.linalg.norm(units, axis=1), 1.0, atol=1e-5)
    start = clf.encode_labels(LABELS)
    adapted, report = clf.adapt_labels(units, norms, start, adapt=True)
    assert report["rounds"] == 3 and report["moved"] > 30 and sum(report["counts"]) == 900
    ranked = clf.classify_vectors(units, norms, adapted, top_k=1)
    assert ranked == clf.classify(TEXTS, LABELS, top_k=1, adapt=True)
    # a label set travels as names and vectors
    again = clf.labels_from_vectors(adapted.labels, clf.label_vectors(adapted))
    assert clf.classify_vectors(units, norms, again, top_k=1) == ranked


def test_adapt_settings_and_architectures_are_checked(classifiers):
    clf = classifiers["bi_encoder"]
    with pytest.raises(ValueError, match="unknown setting `round`"):
        clf.classify(["x"], ["a"], adapt={"round": 2})
    with pytest.raises(ValueError, match="label_weight must be between 0 and 1"):
        clf.classify(["x"], ["a"], adapt={"label_weight": 1.5})
    for arch in ("poly_encoder", "colbert"):
        with pytest.raises(ValueError, match="needs a BiEncoder bundle"):
            classifiers[arch].classify(["x"], ["a", "b"], adapt=True)


def test_classify_file_equals_classify_and_resumes(classifiers, bundles, tmp_path):
    clf = classifiers["bi_encoder"]
    texts = TEXTS[:120]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"uid": f"u{i}", "body": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out.jsonl"
    summary = clf.classify_file(src, out, LABELS, top_k=2, text_field="body", id_field="uid")
    assert summary["rows"] == 120 and summary["bad_rows"] == 0 and summary["adapt"] is None
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    want = clf.classify(texts, LABELS, top_k=2)
    assert [r["id"] for r in rows] == [f"u{i}" for i in range(120)]
    assert [[p["label"] for p in r["labels"]] for r in rows] == [[p["label"] for p in w] for w in want]
    # the CLI writes the same file
    cli_out = tmp_path / "cli.jsonl"
    args = ["classify", "--model", bundles["bi_encoder"], "--input", src, "--output", cli_out, "--top-k", "2",
            "--text-field", "body", "--id-field", "uid", "--labels-file", tmp_path / "labels.txt"]
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    done = zsc_cli(args)
    assert done.returncode == 0, done.stderr
    assert [json.loads(l)["labels"][0]["label"] for l in cli_out.read_text().splitlines()] == [w[0]["label"] for w in want]

    full = out.read_bytes()
    out.write_bytes(full[: len(full) // 3])  # an interrupted run, its last row torn
    summary = clf.classify_file(src, out, LABELS, top_k=2, text_field="body", id_field="uid", resume=True)
    assert summary["resumed"] > 0 and summary["resumed"] + summary["rows"] == 120
    assert out.read_bytes() == full

    adapted = clf.classify_file(src, tmp_path / "adapted.csv", LABELS, top_k=1, text_field="body", adapt=True)
    assert adapted["adapt"]["skipped"] is not None  # 120 texts for 45 labels: the pool guard


def test_classify_file_errors_are_python_exceptions(classifiers, tmp_path):
    clf = classifiers["bi_encoder"]
    with pytest.raises(FileNotFoundError, match="nothing.jsonl"):
        clf.classify_file(tmp_path / "nothing.jsonl", tmp_path / "o.jsonl", ["a"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": \n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not JSON"):
        clf.classify_file(bad, tmp_path / "o.jsonl", ["a"])
    summary = clf.classify_file(bad, tmp_path / "o.jsonl", ["a"], skip_bad_rows=True)
    assert (summary["rows"], summary["bad_rows"]) == (1, 1)
    with pytest.raises(ValueError, match="unknown input format"):
        clf.classify_file(bad, tmp_path / "o.jsonl", ["a"], input_format="xml")


def test_adaptation_steps_refuse_false_and_wrong_widths(classifiers):
    clf = classifiers["bi_encoder"]
    units, norms = clf.pool_vectors(TEXTS[:20])
    with pytest.raises(ValueError, match="adapt=False: this is a step of adaptation"):
        clf.adapt_labels(units, norms, LABELS, adapt=False)
    with pytest.raises(ValueError, match="vectors of width 8, this bundle's are 384"):
        clf.classify_vectors(np.zeros((2, 8), dtype=np.float32), np.ones(2, dtype=np.float32), LABELS)
    with pytest.raises(ValueError, match="2 rows of unit vectors but 3 lengths"):
        clf.label_sums(units[:2], norms[:3], LABELS)
