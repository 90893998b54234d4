"""FakeDetector: scripted detections for testing downstream stages."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from gridwatch.models.base import Detector
from gridwatch.models.fake import FakeDetector

IMAGE = np.zeros((120, 160, 3), dtype=np.uint8)


def test_returns_the_script_in_order_with_names() -> None:
    fake = FakeDetector.from_boxes([[(10, 10, 50, 40, "car", 0.9), (60, 10, 70, 40, "person", 0.7)], []])
    assert isinstance(fake, Detector)
    first = fake.detect(IMAGE)
    assert first.xyxy.dtype == np.float32 and first.xyxy.tolist() == [[10, 10, 50, 40], [60, 10, 70, 40]]
    assert first.class_id.tolist() == [0, 1]  # type: ignore[union-attr]
    assert first.data["class_name"].tolist() == ["car", "person"]
    assert len(fake.detect(IMAGE)) == 0
    assert fake.calls == [(120, 160, 3), (120, 160, 3)]


@pytest.mark.parametrize(("mode", "third_len"), [("empty", 0), ("repeat_last", 1)])
def test_after_the_script(mode: str, third_len: int) -> None:
    fake = FakeDetector.from_boxes([[], [(0, 0, 5, 5, "wire", 0.5)]], when_exhausted=mode)  # type: ignore[arg-type]
    fake.detect(IMAGE)
    fake.detect(IMAGE)
    third = fake.detect(IMAGE)
    assert len(third) == third_len and third.data["class_name"].shape == (third_len,)


def test_raise_when_exhausted() -> None:
    fake = FakeDetector.from_boxes([[]], when_exhausted="raise")
    fake.detect(IMAGE)
    with pytest.raises(IndexError, match="#2"):
        fake.detect(IMAGE)


def test_callers_cannot_change_the_script() -> None:
    fake = FakeDetector.from_boxes([[(10, 10, 50, 40, "car", 0.9)]], when_exhausted="repeat_last")
    fake.detect(IMAGE).xyxy[0, 0] = 999
    assert fake.detect(IMAGE).xyxy[0, 0] == 10


def test_accepts_supervision_detections_and_fills_defaults() -> None:
    det = sv.Detections(xyxy=np.array([[1, 2, 3, 4]], dtype=np.float64), class_id=np.array([2]))
    out = FakeDetector([det]).detect(IMAGE)
    assert out.confidence.tolist() == [1.0]  # type: ignore[union-attr]
    assert out.data["class_name"].tolist() == ["litter"] and out.xyxy.dtype == np.float32


@pytest.mark.parametrize(
    "build",
    [
        lambda: FakeDetector.from_boxes([[(0, 0, 1, 1, "bus", 0.5)]]),
        lambda: FakeDetector([sv.Detections(xyxy=np.zeros((1, 4)), class_id=np.array([7]))]),
    ],
)
def test_unknown_classes_are_rejected_up_front(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_rejects_non_images_like_a_real_backend() -> None:
    with pytest.raises(ValueError):
        FakeDetector([]).detect(np.zeros((4, 4), dtype=np.uint8))
