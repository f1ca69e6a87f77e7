"""The bindings give what `zsc classify --json` gives, on every architecture."""

import json

import pytest

from conftest import ARCHS, zsc_cli

TEXTS = ["wake me up at 7 tomorrow", "will it rain in Paris this weekend", "play something by Miles Davis",
         "my card was charged twice", "how do I say thank you in German"]
LABELS = ["alarm", "weather", "music", "billing", "translation"]


def cli_rows(bundle, extra: list) -> list:
    args = ["classify", "--model", bundle, "--json", *extra]
    for label in LABELS:
        args += ["--label", label]
    done = zsc_cli(args + TEXTS)
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["labels"] for line in done.stdout.splitlines()]


def assert_same(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs) == len(TEXTS)
    for a_row, b_row in zip(ours, theirs):
        assert [p["label"] for p in a_row] == [p["label"] for p in b_row]
        for a, b in zip(a_row, b_row):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_classify_equals_cli(arch, bundles, classifiers):
    clf = classifiers[arch]
    assert clf.model_type == arch
    assert_same(clf.classify(TEXTS, LABELS), cli_rows(bundles[arch], ["--top-k", "0"]))
    assert_same(clf.classify(TEXTS, LABELS, top_k=2), cli_rows(bundles[arch], ["--top-k", "2"]))


@pytest.mark.parametrize("arch", ARCHS)
def test_multi_label_equals_cli(arch, bundles, classifiers):
    ours = classifiers[arch].classify(TEXTS, LABELS, multi_label=True, threshold=0.5)
    assert_same(ours, cli_rows(bundles[arch], ["--multi-label", "--threshold", "0.5"]))


@pytest.mark.parametrize("arch", ARCHS)
def test_labels_with_examples_equal_cli(arch, bundles, classifiers, tmp_path):
    import zsc

    labels_file = tmp_path / "labels.yaml"
    labels_file.write_text(
        "- name: alarm\n  description: setting an alarm or a wake-up call\n  examples: [set an alarm for 6, wake me at noon]\n"
        "- weather\n- name: music\n  examples: [put on some jazz]\n- billing\n- translation\n")
    labels = zsc.read_labels_file(labels_file)
    assert labels[0] == zsc.Label("alarm", "setting an alarm or a wake-up call", ["set an alarm for 6", "wake me at noon"])
    done = zsc_cli(["classify", "--model", bundles[arch], "--json", "--top-k", "0", "--labels-file", labels_file, *TEXTS])
    assert done.returncode == 0, done.stderr
    theirs = [json.loads(line)["labels"] for line in done.stdout.splitlines()]
    assert_same(classifiers[arch].classify(TEXTS, labels), theirs)
    as_dicts = [{"name": l.name, "description": l.description, "examples": l.examples} for l in labels]
    assert_same(classifiers[arch].classify(TEXTS, as_dicts), theirs)


@pytest.mark.parametrize("arch", ARCHS)
def test_scores_are_the_ranked_scores(arch, classifiers):
    clf = classifiers[arch]
    scores = clf.scores(TEXTS, LABELS)
    for row, ranked in zip(scores, clf.classify(TEXTS, LABELS)):
        by_label = {p["label"]: p["score"] for p in ranked}
        assert [by_label[l] for l in LABELS] == pytest.approx(row.tolist(), abs=1e-6)
