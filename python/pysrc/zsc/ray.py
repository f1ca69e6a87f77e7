"""Zero-shot classification in Ray Data (``pip install zsc-rs[ray]``).

``ZeroShotMapper`` is a callable class for ``Dataset.map_batches``: each Ray actor loads the
model and encodes the labels once, then classifies batch after batch in Rust::

    import ray
    from zsc.ray import ZeroShotMapper

    ds = ray.data.read_json("texts.jsonl")                   # or read_parquet, from_pandas, ...
    out = ds.map_batches(
        ZeroShotMapper,
        fn_constructor_kwargs={"model": "bundles/minilm", "labels": ["sports", "politics"]},
        concurrency=4,      # actors; each loads the model once
        num_cpus=1,         # cores per actor: also its ONNX Runtime threads, unless `threads` says
        batch_size=256,
    )
    out.write_parquet("predicted/")

With ``top_k=1`` (the default) the mapper adds the columns ``label``, ``score`` and
``probability``; with ``top_k > 1``, ``top_k=None`` (every label) or ``multi_label=True`` it adds
``labels``, ``scores`` and ``probabilities``, a list per row, best first. Ray itself is imported
only by the caller: this module needs nothing but numpy (and pandas for pandas batches).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ._zsc import Classifier


class ZeroShotMapper:
    """Classify the ``text_column`` of each batch against ``labels`` (names, ``zsc.Label`` objects
    or dicts; read once per actor). The model is a bundle folder every worker can read, or a Hub
    id (fetched into each node's cache). Loading waits for the first batch, so an instance is
    cheap to create and to pickle."""

    def __init__(
        self,
        model: str,
        labels: Sequence[Any],
        text_column: str = "text",
        top_k: Optional[int] = 1,
        multi_label: bool = False,
        threshold: Optional[float] = None,
        threads: Optional[int] = None,
        batch_size: int = 32,
        views: str = "prototype",
    ) -> None:
        if top_k is not None and top_k < 1:
            raise ValueError("top_k must be at least 1 (None gives every label)")
        self.model = str(model)
        self.labels = list(labels) if not isinstance(labels, (str, dict)) else [labels]
        self.text_column = text_column
        self.top_k = top_k
        self.multi_label = multi_label
        self.threshold = threshold
        self.options = {"threads": threads, "batch_size": batch_size, "views": views}
        self._classifier: Optional[Classifier] = None
        self._label_set = None

    def _load(self) -> Classifier:
        if self._classifier is None:
            options = dict(self.options)
            if options["threads"] is None:
                options["threads"] = _assigned_cpus()
            self._classifier = Classifier.from_pretrained(self.model, **options)
            self._label_set = self._classifier.encode_labels(self.labels)
        return self._classifier

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_classifier"] = None  # a loaded model does not travel; each worker loads its own
        state["_label_set"] = None
        return state

    def predict(self, texts: List[str]) -> Dict[str, Any]:
        """The new columns for ``texts`` (a dict of numpy arrays or lists of lists)."""
        clf = self._load()
        ranked = clf.classify(texts, self._label_set, top_k=self.top_k, multi_label=self.multi_label,
                              threshold=self.threshold)
        if self.top_k == 1 and not self.multi_label:
            # a row whose label is under `threshold` gets None and NaNs
            best = [r[0] if r else {"label": None, "score": np.nan, "probability": np.nan} for r in ranked]
            return {
                "label": np.array([b["label"] for b in best], dtype=object),
                "score": np.array([b["score"] for b in best], dtype=np.float32),
                "probability": np.array([b["probability"] for b in best], dtype=np.float32),
            }
        return {
            "labels": [[p["label"] for p in r] for r in ranked],
            "scores": [[p["score"] for p in r] for r in ranked],
            "probabilities": [[p["probability"] for p in r] for r in ranked],
        }

    def __call__(self, batch: Any) -> Any:
        if hasattr(batch, "columns") and hasattr(batch, "assign"):  # a pandas DataFrame
            return batch.assign(**{k: list(v) for k, v in self.predict(self._texts(batch)).items()})
        if isinstance(batch, dict):
            out = dict(batch)
            for name, column in self.predict(self._texts(batch)).items():
                out[name] = column if isinstance(column, np.ndarray) else _object_array(column)
            return out
        raise TypeError(f"ZeroShotMapper takes dict (numpy) or pandas batches, not {type(batch).__name__}")

    def _texts(self, batch: Any) -> List[str]:
        if self.text_column not in batch:
            raise KeyError(f"no column `{self.text_column}` in the batch (columns: {', '.join(map(str, list(batch.keys())))}); "
                           "set text_column")
        return list(batch[self.text_column])  # a non-string raises in Rust, naming its row


def _assigned_cpus() -> Optional[int]:
    """The CPUs Ray gave this actor or task (``num_cpus``), or None outside Ray (ONNX Runtime then
    takes one thread per physical core)."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # no Ray, or not inside a Ray worker
        return None
    return max(1, int(cpus)) if cpus else None


def _object_array(rows: List[list]) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    out[:] = [np.asarray(r) for r in rows]
    return out
