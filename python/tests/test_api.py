"""Shapes, dtypes, label forms, errors and threads of the bindings."""

import threading
import time

import numpy as np
import pytest

import zsc
from conftest import ARCHS, zsc_cli

LABELS = ["alarm", "weather", "music"]


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_and_dtypes(arch, classifiers):
    clf = classifiers[arch]
    scores = clf.scores(["wake me up", "is it sunny", "jazz please"], LABELS)
    assert scores.dtype == np.float32 and scores.shape == (3, 3) and scores.flags["C_CONTIGUOUS"]
    vectors = clf.embed(["wake me up", "is it sunny"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, clf.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # MiniLM normalises
    assert clf.scores([], LABELS).shape == (0, 3)
    assert clf.embed([]).shape == (0, clf.dim)


def test_a_single_string_is_one_text_or_one_label(classifiers):
    clf = classifiers["bi_encoder"]
    np.testing.assert_array_equal(clf.scores("wake me up", LABELS), clf.scores(["wake me up"], LABELS))
    np.testing.assert_array_equal(clf.scores(["wake me up"], "alarm"), clf.scores(["wake me up"], ["alarm"]))
    assert len(clf.classify("wake me up", LABELS)) == 1
    assert clf.scores(("t" for t in ["a text"]), LABELS).shape == (1, 3)  # any iterable


def test_label_sets_are_reusable_and_owned(classifiers):
    clf = classifiers["bi_encoder"]
    labels = clf.encode_labels([zsc.Label("alarm", examples=["set an alarm"]), {"name": "weather"}, "music"])
    assert labels.labels == LABELS and len(labels) == 3
    once = clf.scores(["wake me at 6"], labels)
    np.testing.assert_allclose(once, clf.scores(["wake me at 6"], labels))
    np.testing.assert_allclose(
        once, clf.scores(["wake me at 6"], [zsc.Label("alarm", examples=["set an alarm"]), "weather", "music"]), atol=1e-6)
    with pytest.raises(ValueError, match="encoded by another classifier"):
        classifiers["colbert"].scores(["x"], labels)


def test_calibration_less_probabilities_are_sigmoids(classifiers):
    clf = classifiers["bi_encoder"]
    assert not clf.calibrated
    (row,) = clf.classify(["wake me up"], LABELS, multi_label=True)
    for p in row:
        assert p["probability"] == pytest.approx(1 / (1 + np.exp(-p["score"])), abs=1e-6)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda c: c.classify([""], LABELS), ValueError, "text 0 is empty"),
        (lambda c: c.classify(["x"], []), ValueError, "no candidate labels"),
        (lambda c: c.classify(["x"], ["alarm", ""]), ValueError, "label 1 is empty"),
        (lambda c: c.classify(["x"], LABELS, top_k=0), ValueError, "top_k"),
        (lambda c: c.classify(["x"], LABELS, top_k=-1), ValueError, "must be at least 1 .* got -1"),
        (lambda c: c.classify(["x"], LABELS, threshold=1.5), ValueError, "threshold"),
        (lambda c: c.scores([3], LABELS), ValueError, "text 0 is not a string"),
        (lambda c: c.scores(["x"], [{"nam": "alarm"}]), ValueError, "unknown key `nam`"),
        (lambda c: c.scores(["x"], [{"name": "a", "examples": "one string"}]), ValueError, "list of strings"),
        (lambda c: c.scores(["x"], [zsc.Label("a", examples=[""])]), ValueError, "label `a`"),
        (lambda c: c.scores(["x"], 5), ValueError, "labels"),
    ],
)
def test_bad_input_raises(call, error, message, classifiers):
    with pytest.raises(error, match=message):
        call(classifiers["bi_encoder"])


def test_errors_carry_the_cli_message(bundles, classifiers, tmp_path):
    bad = tmp_path / "labels.yaml"
    bad.write_text("- alarm\n- alarm\n")
    done = zsc_cli(["classify", "--model", bundles["bi_encoder"], "--labels-file", bad, "x"])
    assert done.returncode != 0
    with pytest.raises(ValueError) as raised:
        zsc.read_labels_file(bad)
    assert f"error: {raised.value}" in done.stderr
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        zsc.read_labels_file(tmp_path / "missing.yaml")


def test_missing_or_broken_bundles(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        zsc.Classifier.from_pretrained(tmp_path / "nowhere")
    # a relative name that could be a Hub id: the Hub (offline here) fails, the folder is missing
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(FileNotFoundError, match="no bundle folder `bundles/no-such-bundle`"):
        zsc.Classifier.from_pretrained("bundles/no-such-bundle")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    with pytest.raises(zsc.ZscError, match="manifest"):
        zsc.Classifier.from_pretrained(tmp_path / "broken")
    with pytest.raises(ValueError, match="views"):
        zsc.Classifier.from_pretrained(tmp_path / "broken", views="median")


def test_threads_share_one_classifier(bundles):
    clf = zsc.Classifier.from_pretrained(bundles["bi_encoder"], sessions=2, threads=1)
    texts = [f"text number {i} about the weather and alarms" for i in range(64)]
    expected = clf.scores(texts, LABELS)
    results = [None] * 4

    def work(i):
        results[i] = clf.scores(texts, LABELS)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_inference_releases_the_gil(bundles):
    """While one thread embeds, another keeps running Python: the main loop's longest stall must be
    a small part of the call (holding the GIL would stall it for the whole call)."""
    clf = zsc.Classifier.from_pretrained(bundles["bi_encoder"], threads=1)
    texts = [f"a longer sentence number {i} to keep the encoder busy for a while" for i in range(1500)]
    worker = threading.Thread(target=clf.embed, args=(texts,))
    start = last = time.perf_counter()
    longest = 0.0
    worker.start()
    while worker.is_alive():
        time.sleep(0.001)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    took = last - start
    assert took > 0.5, f"the call took {took:.2f} s: too short to tell"
    assert longest < took / 3, f"the main thread stalled {longest:.2f} s of a {took:.2f} s call"


def test_a_template_wraps_every_label_like_the_hf_pipeline(bundles):
    wrapped = zsc.Classifier.from_pretrained(bundles["bi_encoder"], template="This text is about {}.")
    bare = zsc.Classifier.from_pretrained(bundles["bi_encoder"], template="{}")
    assert wrapped.template == "This text is about {}."
    a = wrapped.scores(["wake me up at 7"], ["alarm", "weather"])
    b = bare.scores(["wake me up at 7"], ["This text is about alarm.", "This text is about weather."])
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert abs(float(a[0, 0]) - float(bare.scores(["wake me up at 7"], ["alarm"])[0, 0])) > 1e-4
    with pytest.raises(ValueError, match="must contain"):
        zsc.Classifier.from_pretrained(bundles["bi_encoder"], template="no slot")


def test_labels_per_text_in_one_call(classifiers):
    clf = classifiers["bi_encoder"]
    texts = ["wake me up at 7", "will it rain tomorrow", "set an alarm for noon"]
    per_text = [["alarm", "music"], ["weather", "alarm", "traffic"], ["alarm", "music"]]
    got = clf.classify(texts, per_text, top_k=None)
    for text, labels, ranked in zip(texts, per_text, got):
        want = clf.classify([text], labels, top_k=None)[0]
        assert [p["label"] for p in ranked] == [p["label"] for p in want]
        np.testing.assert_allclose([p["score"] for p in ranked], [p["score"] for p in want], atol=1e-5)
    assert [len(r) for r in got] == [2, 3, 2]
    with pytest.raises(ValueError, match="2 label lists for 3 texts"):
        clf.classify(texts, per_text[:2])
    with pytest.raises(ValueError, match="adapt needs one label set"):
        clf.classify(texts, per_text, adapt=True)
