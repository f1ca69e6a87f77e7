"""Zero-shot classification in Ray Data (with ``ray[data]`` installed; the wheel is not on PyPI yet).

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

``classify_adapted`` classifies a Dataset with the labels adapted to it (the pool,
docs/corpus.md) in passes over the data: embed once (the vectors are kept in the object store),
then per round every worker assigns its blocks' texts and sums their vectors per label, the driver
adds the sums and moves the labels, and a last pass scores the kept vectors. It gives the labels,
scores and probabilities of ``Classifier.classify(texts, labels, adapt=...)`` in one process::

    from zsc.ray import classify_adapted
    out = classify_adapted(ray.data.read_json("tickets.jsonl"), "bundles/minilm", ["billing", "delivery"])
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ._zsc import Classifier

DEFAULT_BATCH = 256


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
            self._classifier = _load_in_worker(self.model, self.options)
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
        return _columns(ranked, self.top_k, self.multi_label)

    def __call__(self, batch: Any) -> Any:
        if hasattr(batch, "columns") and hasattr(batch, "assign"):  # a pandas DataFrame
            return batch.assign(**{k: list(v) for k, v in self.predict(self._texts(batch)).items()})
        if isinstance(batch, dict):
            return _with_columns(dict(batch), self.predict(self._texts(batch)))
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


def _load_in_worker(model: str, options: Dict[str, Any]) -> Classifier:
    """The classifier of one Ray actor: its ONNX Runtime threads default to the actor's CPUs."""
    options = dict(options)
    if options["threads"] is None:
        options["threads"] = _assigned_cpus()
    return Classifier.from_pretrained(model, **options)


def _with_columns(batch: Dict[str, Any], columns: Dict[str, Any]) -> Dict[str, Any]:
    """``batch`` with the prediction columns added (lists of lists as object arrays)."""
    for name, column in columns.items():
        batch[name] = column if isinstance(column, np.ndarray) else _object_array(column)
    return batch


def _object_array(rows: List[list]) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    out[:] = [np.asarray(r) for r in rows]
    return out


class _PoolPass:
    """A Ray Data callable over a batch of kept vectors (or texts): loads the model once per actor."""

    def __init__(self, model: str, names: Optional[List[str]] = None, vectors: Optional[np.ndarray] = None,
                 threads: Optional[int] = None, batch_size: int = 32, views: str = "prototype",
                 text_column: str = "text", options: Optional[Dict[str, Any]] = None) -> None:
        self.model, self.names, self.vectors = str(model), names, vectors
        self.load_options = {"threads": threads, "batch_size": batch_size, "views": views}
        self.text_column = text_column
        self.options = options or {}
        self._classifier: Optional[Classifier] = None
        self._labels = None

    def _load(self) -> Classifier:
        if self._classifier is None:
            self._classifier = _load_in_worker(self.model, self.load_options)
            if self.names is not None:
                self._labels = self._classifier.labels_from_vectors(self.names, np.asarray(self.vectors, dtype=np.float32))
        return self._classifier


class _Embed(_PoolPass):
    """Pass 0: the batch's texts to their unit vectors and lengths (columns ``_zsc_units``, ``_zsc_norms``)."""

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        if self.text_column not in batch:
            raise KeyError(f"no column `{self.text_column}` in the batch; set text_column")
        units, norms = self._load().pool_vectors(list(batch[self.text_column]))
        return {**batch, "_zsc_units": units, "_zsc_norms": norms}


class _Sums(_PoolPass):
    """One round: the batch's per-label sums of assigned vectors, as a single row."""

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        clf = self._load()
        units = np.asarray(batch["_zsc_units"], dtype=np.float32)
        sums, counts = clf.label_sums(units, np.asarray(batch["_zsc_norms"], dtype=np.float32), self._labels, adapt=self.options)
        return {"sums": sums[None, ...], "counts": counts[None, ...]}


class _Score(_PoolPass):
    """The last pass: the kept vectors scored against the adapted labels, as ``ZeroShotMapper`` columns."""

    def __init__(self, *args: Any, top_k: Optional[int] = 1, multi_label: bool = False,
                 threshold: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.top_k, self.multi_label, self.threshold = top_k, multi_label, threshold

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        clf = self._load()
        ranked = clf.classify_vectors(np.asarray(batch["_zsc_units"], dtype=np.float32),
                                      np.asarray(batch["_zsc_norms"], dtype=np.float32), self._labels,
                                      top_k=self.top_k, multi_label=self.multi_label, threshold=self.threshold)
        kept = {k: v for k, v in batch.items() if not k.startswith("_zsc_")}
        return _with_columns(kept, _columns(ranked, self.top_k, self.multi_label))


def classify_adapted(ds: Any, model: str, labels: Sequence[Any], *, text_column: str = "text",
                     adapt: Any = True, top_k: Optional[int] = 1, multi_label: bool = False,
                     threshold: Optional[float] = None, threads: Optional[int] = None, batch_size: int = 32,
                     views: str = "prototype", concurrency: int = 2, num_cpus: int = 1,
                     rows_per_batch: int = DEFAULT_BATCH, return_report: bool = False) -> Any:
    """Classify the Dataset ``ds`` with ``labels`` adapted to it as a pool (BiEncoder bundles).

    ``adapt`` is True (the measured defaults) or a dict of settings as for ``Classifier.classify``;
    ``balanced`` needs the whole pool in one process and is refused here. The result has the
    columns of ``ZeroShotMapper``; with ``return_report`` also the adaptation report (rounds,
    labels moved, texts per label). The kept vectors take ``n x (dim + 1) x 4`` bytes of object store.
    """
    if adapt is None or adapt is False:
        settings: Dict[str, Any] = {"rounds": 0}  # classified as given, in the same passes
    else:
        settings = {} if adapt is True else dict(adapt)
    if settings.get("balanced"):
        raise ValueError("balanced assignment needs the whole pool at once: use Classifier.classify(texts, labels, "
                         "adapt={'balanced': True}) in one process")
    rounds = int(settings.get("rounds", _defaults()["rounds"]))
    driver = Classifier.from_pretrained(str(model), threads=threads, batch_size=batch_size, views=views)
    start = driver.encode_labels(list(labels) if not isinstance(labels, (str, dict)) else [labels])
    names, current = start.labels, driver.label_vectors(start)
    common = {"model": str(model), "threads": threads, "batch_size": batch_size, "views": views}
    run = {"concurrency": concurrency, "num_cpus": num_cpus, "batch_size": rows_per_batch, "batch_format": "numpy"}
    kept = ds.map_batches(_Embed, fn_constructor_kwargs={**common, "text_column": text_column}, **run).materialize()
    report = {"rounds": 0, "pool": kept.count(), "moved": 0, "counts": [0] * len(names), "skipped": None}
    need = float(settings.get("min_pool_per_label", _defaults()["min_pool_per_label"])) * len(names)
    if rounds > 0 and report["pool"] < need:  # the pool guard, as Classifier.adapt_labels applies it
        report["skipped"] = (f"the pool has {report['pool']} texts for {len(names)} labels, fewer than "
                             f"{need / len(names):g} per label (min_pool_per_label): labels kept as given")
        rounds = 0
    for _ in range(rounds):
        parts = kept.select_columns(["_zsc_units", "_zsc_norms"]).map_batches(
            _Sums, fn_constructor_kwargs={**common, "names": names, "vectors": current, "options": settings}, **run
        ).take_all()
        sums = np.sum([p["sums"] for p in parts], axis=0, dtype=np.float64)
        counts = np.sum([p["counts"] for p in parts], axis=0, dtype=np.uint64)
        adapted, moved = driver.adapted_labels(start, sums, counts, adapt=settings)
        current = driver.label_vectors(adapted)
        report.update(rounds=report["rounds"] + 1, moved=moved, counts=[int(c) for c in counts])
    out = kept.map_batches(_Score, fn_constructor_kwargs={**common, "names": names, "vectors": current, "top_k": top_k,
                                                          "multi_label": multi_label, "threshold": threshold}, **run)
    return (out, report) if return_report else out


def _defaults() -> Dict[str, Any]:
    """The library's default settings (``zsc::AdaptOptions::default()`` in Rust)."""
    from ._zsc import adapt_defaults

    return dict(adapt_defaults())


def _columns(ranked: List[List[Dict[str, Any]]], top_k: Optional[int], multi_label: bool) -> Dict[str, Any]:
    """``classify`` results as the columns ``ZeroShotMapper`` adds."""
    if top_k == 1 and not multi_label:
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
