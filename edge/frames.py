"""The frame that flows from a source through the sampler to the detector."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded image with its capture time.

    `ts` is the capture time in seconds on a monotonic clock (for a file: its presentation timestamp), and is what
    every rule measures durations with; `wall` is the same instant as UTC wall-clock time, for the wire.
    """

    camera_id: str
    index: int
    ts: float
    wall: datetime
    image: np.ndarray

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
