"""Zero-shot text classification: classify any text against any labels, labels never seen in
training included, with a bundle exported by ``zsc-export`` (or ``trainer export``).

The work runs in Rust (ONNX Runtime, tokenizers) with the GIL released::

    import zsc
    clf = zsc.Classifier.from_pretrained("bundles/minilm")      # a folder or a Hub id
    clf.classify(["wake me up at 7"], ["alarm", "weather", "music"], top_k=2)
    # [[{'label': 'alarm', 'score': 8.1, 'probability': 0.93}, {'label': 'music', ...}]]

Labels are names, ``zsc.Label`` objects (a description and example texts) or dicts with the same
keys; ``clf.encode_labels(labels)`` encodes them once for many calls. ``zsc.ray.ZeroShotMapper``
runs a classifier in Ray Data (with ``ray[data]`` installed).
"""

from ._zsc import Classifier, Label, LabelSet, ZscError, __version__, read_labels_file

__all__ = ["Classifier", "Label", "LabelSet", "ZscError", "read_labels_file", "__version__"]
