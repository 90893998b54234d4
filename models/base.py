"""The detector interface every backend implements, and the errors a backend may raise.

A detector turns one BGR ``uint8`` image into a ``supervision.Detections`` in that image's pixel coordinates.
Backends (ONNX Runtime, Ultralytics, fakes for tests) convert their raw output into that type exactly once,
with `make_detections`, so nothing downstream knows which model ran.

Exceptions
----------
Everything a backend raises on purpose derives from `ModelError`, so the composition root can catch one type::

    ModelError                  base class; never raised directly
    ├── ModelLoadError          the weights cannot be loaded: file missing or unreadable, the runtime rejects
    │   │                       the graph, no execution provider works, optional backend not installed
    │   └── ModelIntegrityError the weights' sha256 differs from the manifest's (wrong or corrupted file);
    │                           the message names the expected and the actual digest
    └── ModelConfigError        the manifest is invalid or disagrees with the model (input size, class count,
                                output layout, decoder), or the detector settings name unknown classes

Caller mistakes that are not about the model (an image that is not ``HxWx3 uint8``) raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import supervision as sv

from gridwatch.errors import GridwatchError


class ModelError(GridwatchError):
    """Base class for every error a detector backend raises on purpose."""


class ModelLoadError(ModelError):
    """The model file could not be turned into a working detector."""


class ModelIntegrityError(ModelLoadError):
    """The model file's sha256 is not the one its manifest promises."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"sha256 mismatch for {path}: manifest expects {expected}, file has {actual}. "
            "Replace the file with the one the manifest describes, or update the manifest's sha256."
        )

    def __reduce__(self) -> tuple[type[ModelIntegrityError], tuple[str, str, str]]:
        # keeps the error picklable (multiprocessing, pytest-xdist) despite the custom signature
        return (type(self), (self.path, self.expected, self.actual))


class ModelConfigError(ModelError):
    """The manifest or the detector settings do not fit the model."""


@dataclass(frozen=True)
class ModelInfo:
    """What the rest of the system may know about the model that ran (it goes on the wire with each event)."""

    name: str
    version: str
    sha256: str
    class_names: tuple[str, ...]
    input_size: tuple[int, int]  # (w, h) of the network input
    decoder: str


@runtime_checkable
class Detector(Protocol):
    """One image in, detections in that image's pixel coordinates out.

    `detect` accepts a BGR ``uint8`` image of any size, never mutates it, and returns a
    `supervision.Detections` with ``xyxy`` float32, ``confidence`` float32, ``class_id`` int and
    ``data["class_name"]`` (array of str).
    """

    @property
    def info(self) -> ModelInfo:
        """The model that runs (a swappable detector answers for the model that ran the caller's last frame)."""
        ...

    def detect(self, image: np.ndarray) -> sv.Detections: ...


def check_image(image: np.ndarray) -> None:
    """Raise ValueError unless `image` is a non-empty ``HxWx3 uint8`` array (what every backend expects)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 uint8 (BGR), got shape {image.shape} dtype {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")


def make_detections(
    xyxy: np.ndarray,
    confidence: np.ndarray,
    class_id: np.ndarray,
    class_names: Sequence[str],
) -> sv.Detections:
    """Build the one `Detections` shape every backend returns.

    `class_names` is the model's full class list; each detection's name is looked up by its `class_id`, so the
    names always agree with the ids.
    """
    names = np.asarray(class_names, dtype=str)
    ids = np.asarray(class_id, dtype=np.int64).reshape(-1)
    return sv.Detections(
        xyxy=np.asarray(xyxy, dtype=np.float32).reshape(-1, 4),
        confidence=np.asarray(confidence, dtype=np.float32).reshape(-1),
        class_id=ids,
        data={"class_name": names[ids] if len(ids) else np.empty(0, dtype=str)},
    )
