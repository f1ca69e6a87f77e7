"""zsc.ray.ZeroShotMapper on a local Ray instance with 2 workers equals single-process `zsc`,
row for row."""

import json

import numpy as np
import pytest

from conftest import ROOT, zsc_cli
from zsc.ray import ZeroShotMapper

ray = pytest.importorskip("ray", reason="ray[data] is an optional extra (make setup installs it)")

LABELS = sorted({l for s in json.loads((ROOT / "data" / "clinc150_unseen.json").read_text()) for l in s["labels"]})


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory):
    samples = json.loads((ROOT / "data" / "train.json").read_text())
    texts = list(dict.fromkeys(s["text"].strip() for s in samples if s["text"].strip() and "\n" not in s["text"]))[:3000]
    path = tmp_path_factory.mktemp("ray") / "texts.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    return path, texts


@pytest.fixture(scope="module")
def local_ray():
    # 4 logical CPU slots on the 2 cores: one per mapper actor, the rest for Ray Data's read tasks
    # (with every slot held by an actor, reading could not be scheduled)
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=256 * 1024 * 1024, log_to_driver=False)
    yield
    ray.shutdown()


def test_two_workers_equal_single_process_zsc(local_ray, texts_file, bundles):
    path, texts = texts_file
    ds = ray.data.read_json(str(path))
    out = ds.map_batches(
        ZeroShotMapper,
        fn_constructor_kwargs={"model": str(bundles["bi_encoder"]), "labels": LABELS, "threads": 1},
        concurrency=2, num_cpus=1, batch_size=200,
    ).to_pandas().sort_values("id")
    assert list(out["id"]) == list(range(len(texts)))
    assert list(out["text"]) == texts

    args = ["classify", "--model", bundles["bi_encoder"], "--json", "--top-k", "1"]
    for label in LABELS:
        args += ["--label", label]
    done = zsc_cli(args + ["-"], input="\n".join(texts) + "\n")
    assert done.returncode == 0, done.stderr
    single = [json.loads(line)["labels"][0] for line in done.stdout.splitlines()]
    assert len(single) == len(texts)
    assert list(out["label"]) == [p["label"] for p in single]
    np.testing.assert_allclose(out["score"].to_numpy(), [p["score"] for p in single], atol=1e-5)
    np.testing.assert_allclose(out["probability"].to_numpy(), [p["probability"] for p in single], atol=1e-5)


def test_lists_for_top_k_and_pandas_batches(bundles):
    import pandas as pd

    mapper = ZeroShotMapper(str(bundles["bi_encoder"]), ["alarm", "weather", "music"], top_k=None)
    out = mapper(pd.DataFrame({"text": ["wake me at 6", "is it snowing"], "n": [1, 2]}))
    assert list(out.columns) == ["text", "n", "labels", "scores", "probabilities"]
    assert out["labels"][0][0] == "alarm" and len(out["labels"][1]) == 3
    with pytest.raises(KeyError, match="no column `text`"):
        mapper({"body": np.array(["x"], dtype=object)})


def test_a_threshold_can_leave_a_row_without_label(bundles):
    mapper = ZeroShotMapper(str(bundles["bi_encoder"]), ["alarm", "weather"], threshold=1.0)
    out = mapper({"text": np.array(["wake me at 6", "is it snowing"], dtype=object)})
    assert list(out["label"]) == [None, None] and np.isnan(out["score"]).all() and np.isnan(out["probability"]).all()


def test_adapted_passes_on_two_workers_equal_single_process(local_ray, bundles):
    import zsc
    from zsc.ray import classify_adapted

    dev = json.loads((ROOT / "data" / "clinc150_unseen_dev.json").read_text())
    TEXTS = [s["text"] for s in dev]
    LABELS = sorted({l for s in dev for l in s["labels"]})
    clf = zsc.Classifier.from_pretrained(bundles["bi_encoder"])
    single = clf.classify(TEXTS, LABELS, top_k=1, adapt=True)
    plain = clf.classify(TEXTS, LABELS, top_k=1)
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(TEXTS)], override_num_blocks=6)
    out, report = classify_adapted(ds, str(bundles["bi_encoder"]), LABELS, threads=1, concurrency=2,
                                   rows_per_batch=128, return_report=True)
    df = out.to_pandas().sort_values("id")
    assert list(df["id"]) == list(range(900)) and list(df["text"]) == TEXTS
    assert report["rounds"] == 3 and sum(report["counts"]) == 900
    assert list(df["label"]) == [r[0]["label"] for r in single]
    np.testing.assert_allclose(df["score"].to_numpy(), [r[0]["score"] for r in single], atol=1e-5)
    np.testing.assert_allclose(df["probability"].to_numpy(), [r[0]["probability"] for r in single], atol=1e-5)
    assert sum(a[0]["label"] != b[0]["label"] for a, b in zip(single, plain)) > 20  # adaptation changed rows
    with pytest.raises(ValueError, match="balanced assignment needs the whole pool"):
        classify_adapted(None, str(bundles["bi_encoder"]), LABELS, adapt={"balanced": True})
