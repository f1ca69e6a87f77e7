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
