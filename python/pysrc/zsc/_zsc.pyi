from os import PathLike
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str

class ZscError(Exception):
    """An error of the runtime (bundle, ONNX Runtime, Hub) that is not a bad argument."""

class Prediction(TypedDict):
    label: str
    score: float
    probability: float

class Label:
    """A label with an optional description and example texts."""

    name: str
    description: Optional[str]
    examples: List[str]
    def __init__(self, name: str, description: Optional[str] = None, examples: Optional[Sequence[str]] = None) -> None: ...

class LabelSet:
    """Labels encoded once by ``Classifier.encode_labels``; only that classifier accepts them."""

    @property
    def labels(self) -> List[str]: ...
    def __len__(self) -> int: ...

class AdaptReport(TypedDict):
    rounds: int
    pool: int
    moved: int
    counts: List[int]
    skipped: Optional[str]

class FileSummary(TypedDict):
    rows: int
    resumed: int
    bad_rows: int
    seconds: float
    calibrated: bool
    adapt: Optional[AdaptReport]

LabelLike = Union[str, Label, Mapping[str, object]]
# True (the measured defaults) or settings: rounds, label_weight, min_texts, min_pool_per_label, balanced
Adapt = Union[None, bool, Mapping[str, object]]
PathArg = Union[str, "PathLike[str]"]
Labels = Union[LabelSet, LabelLike, Iterable[LabelLike]]
Texts = Union[str, Iterable[str]]

class Classifier:
    """A loaded bundle. Safe to share between threads: calls run in parallel up to ``sessions``."""

    @staticmethod
    def from_pretrained(
        model: Union[str, "PathLike[str]"],
        *,
        threads: Optional[int] = None,
        sessions: int = 1,
        batch_size: int = 32,
        views: str = "prototype",
        template: Optional[str] = None,
        ort_library: Optional[Union[str, "PathLike[str]"]] = None,
    ) -> "Classifier": ...
    def classify(
        self,
        texts: Texts,
        labels: Union[Labels, Sequence[Union[LabelSet, Sequence[LabelLike]]]],  # or one list per text
        top_k: Optional[int] = None,
        multi_label: bool = False,
        threshold: Optional[float] = None,
        adapt: Adapt = None,
    ) -> List[List[Prediction]]: ...
    def classify_file(
        self,
        input: PathArg,
        output: PathArg,
        labels: Labels,
        *,
        top_k: int = 5,
        multi_label: bool = False,
        threshold: Optional[float] = None,
        input_format: Optional[str] = None,
        output_format: Optional[str] = None,
        text_field: str = "text",
        id_field: Optional[str] = None,
        skip_bad_rows: bool = False,
        resume: bool = False,
        progress: bool = False,
        adapt: Adapt = None,
        adapt_max_memory_mib: int = 4096,
    ) -> FileSummary: ...
    def pool_vectors(self, texts: Texts) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def label_sums(
        self, units: npt.NDArray[np.float32], norms: npt.NDArray[np.float32], labels: Labels, adapt: Adapt = None
    ) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.uint64]]: ...
    def adapted_labels(
        self, start: Labels, sums: npt.NDArray[np.float64], counts: npt.NDArray[np.uint64], adapt: Adapt = None
    ) -> Tuple[LabelSet, int]: ...
    def adapt_labels(
        self, units: npt.NDArray[np.float32], norms: npt.NDArray[np.float32], labels: Labels, adapt: Adapt = None
    ) -> Tuple[LabelSet, AdaptReport]: ...
    def classify_vectors(
        self,
        units: npt.NDArray[np.float32],
        norms: npt.NDArray[np.float32],
        labels: Labels,
        top_k: Optional[int] = None,
        multi_label: bool = False,
        threshold: Optional[float] = None,
    ) -> List[List[Prediction]]: ...
    def label_vectors(self, labels: Labels) -> npt.NDArray[np.float32]: ...
    def labels_from_vectors(self, names: Sequence[str], vectors: npt.NDArray[np.float32]) -> LabelSet: ...
    def scores(self, texts: Texts, labels: Labels) -> npt.NDArray[np.float32]: ...
    def embed(self, texts: Texts) -> npt.NDArray[np.float32]: ...
    def encode_labels(self, labels: Labels) -> LabelSet: ...
    @property
    def model_type(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def template(self) -> Optional[str]: ...
    @property
    def calibrated(self) -> bool: ...
    @property
    def path(self) -> "Path": ...

def read_labels_file(path: Union[str, "PathLike[str]"]) -> List[Label]: ...
def adapt_defaults() -> Mapping[str, object]: ...
