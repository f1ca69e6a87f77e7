from os import PathLike
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Sequence, TypedDict, Union

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

LabelLike = Union[str, Label, Mapping[str, object]]
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
        ort_library: Optional[Union[str, "PathLike[str]"]] = None,
    ) -> "Classifier": ...
    def classify(
        self,
        texts: Texts,
        labels: Labels,
        top_k: Optional[int] = None,
        multi_label: bool = False,
        threshold: Optional[float] = None,
    ) -> List[List[Prediction]]: ...
    def scores(self, texts: Texts, labels: Labels) -> npt.NDArray[np.float32]: ...
    def embed(self, texts: Texts) -> npt.NDArray[np.float32]: ...
    def encode_labels(self, labels: Labels) -> LabelSet: ...
    @property
    def model_type(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def calibrated(self) -> bool: ...
    @property
    def path(self) -> "Path": ...

def read_labels_file(path: Union[str, "PathLike[str]"]) -> List[Label]: ...
