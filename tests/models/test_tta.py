"""Test-time augmentation (`gridwatch.models.tta`): flip and multiscale views, mapping back, merging, batching,
config and eval.

The real-graph tests use a tiny ONNX "detector" that boxes the bright pixels of its input (so a mirrored image
really gives the mirrored box) and scores the box higher the further right it is (so the mirror's box wins NMS
for an object on the left, and the kept box is the un-mirrored one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from gridwatch.app.cli import main
from gridwatch.edge.config import ConfigError, parse_site_config
from gridwatch.edge.detectors import camera_detectors, load_detectors
from gridwatch.edge.model_update import spec_for
from gridwatch.models.base import ModelInfo, make_detections
from gridwatch.models.evaluate import EVAL_IOU, evaluate_detector, load_for_eval
from gridwatch.models.fake import FakeDetector, fake_info
from gridwatch.models.onnx_backend import OnnxDetector
from gridwatch.models.registry import load_detector, parse_detector_spec
from gridwatch.models.rename import RenamedDetector
from gridwatch.models.tta import (
    TTA_VIEWS,
    FlipTtaDetector,
    TtaDetector,
    View,
    merge_views,
    mirror,
    shrink,
    unmirror,
    unshrink,
    view_of,
    with_tta,
)
from tests.models.conftest import manifest_dict, sha256_of

CLASSES = ["garbage", "garbage_bin", "overflow"]
S = 64  # the tiny graph's input side


def dets(rows: list[tuple[float, float, float, float, int, float]]) -> sv.Detections:
    arr = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
    return make_detections(arr[:, :4], arr[:, 5], arr[:, 4].astype(np.int64), CLASSES)


# --- un-mirroring and merging (pure) -------------------------------------------------------------------------
def test_unmirror_maps_an_asymmetric_box_exactly_and_is_its_own_inverse() -> None:
    found = dets([(10, 20, 30, 60, 2, 0.8), (0, 5, 7, 9, 0, 0.4)])
    back = unmirror(found, 100)
    np.testing.assert_array_equal(back.xyxy, np.array([[70, 20, 90, 60], [93, 5, 100, 9]], np.float32))
    np.testing.assert_array_equal(unmirror(back, 100).xyxy, found.xyxy)
    assert list(back.class_id) == [2, 0] and list(back.data["class_name"]) == ["overflow", "garbage"]
    np.testing.assert_array_equal(back.confidence, found.confidence)
    np.testing.assert_array_equal(found.xyxy[0], [10, 20, 30, 60])  # the input is not mutated


def test_a_box_drawn_on_an_image_lands_on_the_mirror_where_unmirror_says() -> None:
    image = np.zeros((48, 100, 3), np.uint8)
    image[20:60, 10:30] = 255  # columns 10..29: the span [10, 30)
    cols = np.flatnonzero(mirror(image)[:, :, 0].max(axis=0))
    seen = dets([(cols[0], 20, cols[-1] + 1, 48, 1, 0.9)])
    np.testing.assert_array_equal(unmirror(seen, 100).xyxy[0], [10, 20, 30, 48])


def test_merge_keeps_one_box_per_object_the_more_confident_and_never_across_classes() -> None:
    plain = dets([(10, 10, 50, 50, 0, 0.6), (100, 100, 140, 160, 2, 0.9)])
    other = dets([(11, 10, 51, 50, 0, 0.7),  # garbage again: wins, more confident
                  (100, 100, 140, 160, 1, 0.5),  # a bin on the overflow's box: another class, kept
                  (200, 10, 220, 30, 2, 0.3)])  # seen in this view only: kept
    merged = merge_views([plain, other], iou_threshold=0.6)
    rows = sorted(zip(merged.xyxy[:, 0].tolist(), merged.data["class_name"].tolist(),
                      [round(float(c), 2) for c in merged.confidence], strict=True))
    assert rows == [(11.0, "garbage", 0.7), (100.0, "garbage_bin", 0.5), (100.0, "overflow", 0.9),
                    (200.0, "overflow", 0.3)]


def test_merge_of_two_empty_views_is_empty_with_class_names() -> None:
    empty = dets([])
    merged = merge_views([empty, dets([])], 0.6)
    assert len(merged) == 0 and "class_name" in merged.data


# --- the wrapper over a scripted detector -------------------------------------------------------------------
class BatchFake(FakeDetector):
    """A scripted detector with `detect_batch`, recording how it was called."""

    def __init__(self, script: list[sv.Detections], dynamic: bool) -> None:
        super().__init__(script, info=fake_info(CLASSES), when_exhausted="raise")
        self.dynamic_batch = dynamic
        self.batches: list[list[np.ndarray]] = []

    def detect_batch(self, images: list[np.ndarray]) -> list[sv.Detections]:
        self.batches.append([im.copy() for im in images])
        return [self.detect(im) for im in images]


def test_flip_runs_the_frame_and_its_mirror_in_one_batch_and_unmirrors_the_mirror_boxes() -> None:
    frame = np.random.default_rng(1).integers(0, 255, (36, 64, 3), dtype=np.uint8)
    before = frame.copy()
    inner = BatchFake([dets([(4, 6, 20, 30, 2, 0.5)]),  # the frame: overflow at the left
                       dets([(44.5, 6, 60, 30, 2, 0.8)])],  # the mirror: the same object, more confident
                      dynamic=True)
    tta = FlipTtaDetector(inner, 0.6)
    out = tta.detect(frame)
    assert len(inner.batches) == 1 and tta.runs == 1  # one network run with a batch of two
    first, second = inner.batches[0]
    np.testing.assert_array_equal(first, frame)
    np.testing.assert_array_equal(second, frame[:, ::-1])
    np.testing.assert_array_equal(frame, before)
    assert len(out) == 1 and out.data["class_name"].tolist() == ["overflow"]
    np.testing.assert_array_equal(out.xyxy[0], [4, 6, 19.5, 30])  # 64 - 60, 64 - 44.5
    assert out.confidence[0] == pytest.approx(0.8)
    assert tta.info is inner.info


def test_without_a_dynamic_batch_flip_runs_the_detector_twice() -> None:
    inner = BatchFake([dets([]), dets([(0, 0, 10, 10, 0, 0.5)])], dynamic=False)
    tta = FlipTtaDetector(inner, 0.6)
    out = tta.detect(np.zeros((20, 40, 3), np.uint8))
    assert inner.batches == [] and len(inner.calls) == 2 and tta.runs == 2
    np.testing.assert_array_equal(out.xyxy, [[30, 0, 40, 10]])


def test_a_detector_without_detect_batch_runs_twice() -> None:
    inner = FakeDetector([dets([]), dets([])], info=fake_info(CLASSES))
    tta = FlipTtaDetector(inner, 0.6)
    assert len(tta.detect(np.zeros((20, 40, 3), np.uint8))) == 0 and len(inner.calls) == 2


def test_the_cli_offers_exactly_the_modes_a_detector_entry_takes() -> None:
    from gridwatch.app.cli import TTA_CHOICES
    from gridwatch.models.tta import TTA_MODES

    assert list(TTA_MODES) == TTA_CHOICES  # the CLI keeps its own copy so that it starts without OpenCV


def test_with_tta_none_is_the_detector_itself_and_an_unknown_mode_is_refused() -> None:
    inner = FakeDetector([])
    assert with_tta(inner, "none", 0.5) is inner
    with pytest.raises(ValueError, match="'flop'"):
        with_tta(inner, "flop", 0.5)


# --- multiscale: shrunk views ----------------------------------------------------------------------------------
def test_shrink_centres_the_frame_at_the_scale_on_grey_and_unshrink_maps_its_boxes_back() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[20:60, 40:120] = 255  # an object at x [40, 120), y [20, 60)
    canvas, placed = shrink(image, 0.5)
    assert canvas.shape == image.shape and placed == (50, 25, 100, 50)
    assert canvas[0, 0].tolist() == [114, 114, 114] and canvas[24, 100].tolist() == [114, 114, 114]
    ys, xs = np.nonzero(canvas[:, :, 0] == 255)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (70, 110, 35, 55)  # 50 + 40/2 ... 25 + 60/2
    seen = dets([(70, 35, 110, 55, 0, 0.9), (0, 0, 60, 30, 1, 0.4)])  # the object; a box half on the grey border
    back = unshrink(seen, placed, (200, 100))
    np.testing.assert_allclose(back.xyxy, [[40, 20, 120, 60], [0, 0, 20, 10]])  # clipped to the frame
    assert back.confidence.tolist() == pytest.approx([0.9, 0.4]) and back.class_id.tolist() == [0, 1]
    np.testing.assert_array_equal(seen.xyxy[0], [70, 35, 110, 55])  # the input is untouched
    same, whole = shrink(image, 1.0)
    assert same is image and whole == (0, 0, 200, 100) and unshrink(seen, whole, (200, 100)) is seen


def test_multiscale_is_one_batch_of_three_views_and_maps_each_back_to_the_frame() -> None:
    """Ultralytics' recipe: the frame, its 0.83 shrink mirrored, its 0.67 shrink; each view's box comes back."""
    assert TTA_VIEWS["multiscale"] == (View(1.0), View(0.83, flip=True), View(0.67))
    frame = np.random.default_rng(2).integers(0, 255, (60, 100, 3), dtype=np.uint8)
    views = [view_of(frame, v) for v in TTA_VIEWS["multiscale"]]
    (_, p1), (_, p2), (_, p3) = views
    assert p1 == (0, 0, 100, 60) and p2 == (8, 5, 83, 50) and p3 == (16, 10, 67, 40)
    # the network's boxes for one object at x [10, 40), y [12, 36) of the frame, as each view shows it
    on_mirror = (100 - (8 + 40 * 0.83), 5 + 12 * 50 / 60, 100 - (8 + 10 * 0.83), 5 + 36 * 50 / 60)
    inner = BatchFake([dets([]),  # the full frame misses it
                       dets([(*on_mirror, 0, 0.7)]),  # the mirrored 0.83 view finds it
                       dets([(16 + 10 * 0.67, 10 + 12 * 40 / 60, 16 + 40 * 0.67, 10 + 36 * 40 / 60, 0, 0.6)])],
                      dynamic=True)
    tta = TtaDetector(inner, "multiscale", 0.6)
    out = tta.detect(frame)
    assert tta.runs == 1 and len(inner.batches) == 1 and len(inner.batches[0]) == 3
    np.testing.assert_array_equal(inner.batches[0][1], mirror(shrink(frame, 0.83)[0]))
    np.testing.assert_array_equal(inner.batches[0][2], shrink(frame, 0.67)[0])
    assert len(out) == 1 and out.confidence[0] == pytest.approx(0.7)  # one object, the best view's box
    np.testing.assert_allclose(out.xyxy[0], [10, 12, 40, 36], atol=0.05)


def test_multiscale_without_a_dynamic_batch_runs_once_per_view() -> None:
    inner = BatchFake([dets([]), dets([]), dets([])], dynamic=False)
    tta = TtaDetector(inner, "multiscale", 0.6)
    assert len(tta.detect(np.zeros((30, 40, 3), np.uint8))) == 0
    assert inner.batches == [] and len(inner.calls) == 3 and tta.runs == 3


# --- a real ONNX graph --------------------------------------------------------------------------------------
def build_bright_box_onnx(path: Path, batch: str | int = "batch", cls: int = 2) -> Path:
    """``images[batch,3,64,64] -> output[batch,7,1]``: one box around the pixels brighter than 0.5 (in input
    pixels, cx cy w h), of class `cls`, scored ``0.5 + 0.4 * cx / 64``."""
    from onnx import TensorProto, helper, numpy_helper, save_model

    idx = np.arange(S, dtype=np.float32)
    consts = {"xs": idx, "xs1": idx + 1, "big": np.float32(1e4), "one": np.float32(1.0), "thr": np.float32(0.5),
              "half": np.float32(0.5), "slope": np.float32(0.4 / S), "onehot": np.eye(3, dtype=np.float32)[[cls]],
              "ax2": np.array([2], np.int64)}
    n = helper.make_node
    nodes = [n("ReduceMean", ["images"], ["gray"], axes=[1], keepdims=0)]  # (B, H, W)
    for axis, prof in ((1, "col"), (2, "row")):  # max over rows -> column profile, over columns -> row profile
        nodes += [n("ReduceMax", ["gray"], [prof], axes=[axis], keepdims=0),
                  n("Greater", [prof, "thr"], [f"{prof}_b"]), n("Cast", [f"{prof}_b"], [f"{prof}_m"], to=1),
                  n("Sub", ["one", f"{prof}_m"], [f"{prof}_i"]), n("Mul", [f"{prof}_i", "big"], [f"{prof}_ib"]),
                  n("Mul", [f"{prof}_m", "xs"], [f"{prof}_a"]), n("Add", [f"{prof}_a", f"{prof}_ib"], [f"{prof}_lo"]),
                  n("ReduceMin", [f"{prof}_lo"], [f"{prof}1"], axes=[1], keepdims=1),
                  n("Mul", [f"{prof}_m", "xs1"], [f"{prof}_b1"]),
                  n("Sub", [f"{prof}_b1", f"{prof}_ib"], [f"{prof}_hi"]),
                  n("ReduceMax", [f"{prof}_hi"], [f"{prof}2"], axes=[1], keepdims=1),
                  n("Add", [f"{prof}1", f"{prof}2"], [f"{prof}_s"]), n("Mul", [f"{prof}_s", "half"], [f"{prof}_c"]),
                  n("Sub", [f"{prof}2", f"{prof}1"], [f"{prof}_w"])]
    nodes += [n("Mul", ["col_c", "slope"], ["sc_a"]), n("Add", ["sc_a", "half"], ["score"]),  # (B, 1)
              n("Mul", ["score", "onehot"], ["scores"]),  # (B, 3)
              n("Concat", ["col_c", "row_c", "col_w", "row_w", "scores"], ["flat"], axis=1),  # (B, 7)
              n("Unsqueeze", ["flat", "ax2"], ["output"])]
    graph = helper.make_graph(
        nodes, "bright_box",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, S, S])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 7, 1])],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
    )
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    manifest = manifest_dict(name="bright-box", input_size=[S, S], classes=CLASSES, sha256=sha256_of(path))
    path.with_suffix(".json").write_text(json.dumps(manifest), encoding="utf-8")
    return path


class CountingSession:
    """Wraps an onnxruntime session and records the input shape of every run."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.shapes: list[tuple[int, ...]] = []

    def run(self, outputs: Any, feeds: dict[str, np.ndarray]) -> Any:
        self.shapes += [tuple(v.shape) for v in feeds.values()]
        return self.inner.run(outputs, feeds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def counting(detector: OnnxDetector) -> CountingSession:
    session = CountingSession(detector._session)
    detector._session = session  # type: ignore[assignment]
    return session


def left_object() -> np.ndarray:
    image = np.zeros((S, S, 3), np.uint8)
    image[10:40, 5:20] = 255  # the span x [5, 20), y [10, 40): left of the middle
    return image


def test_real_graph_flip_is_one_batch_of_two_and_keeps_the_exact_unmirrored_box(tmp_path: Path) -> None:
    det = OnnxDetector.from_path(build_bright_box_onnx(tmp_path / "bb.onnx"), conf_threshold=0.1)
    assert det.dynamic_batch
    plain = det.detect(left_object())
    seen_mirrored = det.detect(mirror(left_object()))
    np.testing.assert_array_equal(plain.xyxy, [[5, 10, 20, 40]])
    np.testing.assert_array_equal(seen_mirrored.xyxy, [[44, 10, 59, 40]])  # really the mirrored object
    assert seen_mirrored.confidence[0] > plain.confidence[0]
    session = counting(det)
    out = FlipTtaDetector(det, 0.45).detect(left_object())
    assert session.shapes == [(2, 3, S, S)]  # one run, the frame and its mirror
    assert len(out) == 1 and out.data["class_name"].tolist() == ["overflow"] and out.class_id.tolist() == [2]
    np.testing.assert_array_equal(out.xyxy, plain.xyxy)  # the un-mirrored box, exactly
    assert out.confidence[0] == pytest.approx(seen_mirrored.confidence[0])  # ... which won NMS


def test_real_graph_with_a_fixed_batch_of_one_runs_twice(tmp_path: Path) -> None:
    det = OnnxDetector.from_path(build_bright_box_onnx(tmp_path / "bb1.onnx", batch=1), conf_threshold=0.1)
    assert not det.dynamic_batch
    session = counting(det)
    out = FlipTtaDetector(det, 0.45).detect(left_object())
    assert session.shapes == [(1, 3, S, S), (1, 3, S, S)]
    np.testing.assert_array_equal(out.xyxy, [[5, 10, 20, 40]])


def test_real_graph_multiscale_finds_the_object_in_every_view_and_keeps_one_box_on_it(tmp_path: Path) -> None:
    det = OnnxDetector.from_path(build_bright_box_onnx(tmp_path / "bb.onnx"), conf_threshold=0.1)
    session = counting(det)
    out = with_tta(det, "multiscale", 0.45).detect(left_object())
    assert session.shapes == [(3, 3, S, S)]  # one run, three views
    assert len(out) == 1 and out.class_id.tolist() == [2]
    np.testing.assert_allclose(out.xyxy[0], [5, 10, 20, 40], atol=2.0)  # resampling moves edges by a pixel or so


# --- config: detector entries, the registry, the edge --------------------------------------------------------
def test_tta_defaults_off_and_flip_wraps_the_backend_under_rename(tmp_path: Path) -> None:
    model = build_bright_box_onnx(tmp_path / "bb.onnx")
    assert parse_detector_spec({"type": "onnx", "model": str(model)}).tta == "none"
    plain = load_detector(parse_detector_spec({"type": "onnx", "model": str(model)}))
    assert isinstance(plain, OnnxDetector)
    spec = parse_detector_spec({"type": "onnx", "model": str(model), "tta": "flip", "iou": 0.5, "conf": 0.1,
                                "rename": {"overflow": "full_bin"}})
    loaded = load_detector(spec, path="detectors.street")
    assert isinstance(loaded, RenamedDetector) and isinstance(loaded.inner, TtaDetector)
    assert loaded.inner.mode == "flip"
    assert loaded.inner.iou_threshold == 0.5 and loaded.inner.batched
    out = loaded.detect(left_object())
    assert out.data["class_name"].tolist() == ["full_bin"] and loaded.info.class_names[2] == "full_bin"


def street_site(model: Path, tta: Any = "flip") -> dict[str, Any]:
    return {
        "site_id": "s1", "gateway_id": "gw1",
        "detectors": {"street": {"type": "onnx", "model": str(model), "conf": 0.1, "tta": tta}},
        "cameras": [{"id": "cam1", "source": {"type": "file", "path": "clip.mp4"}, "analysis_fps": 5,
                     "detectors": [{"name": "street", "every_s": 5}]}],
    }


def test_the_edge_runs_a_detector_entry_with_tta_flip(tmp_path: Path) -> None:
    cfg = parse_site_config(street_site(build_bright_box_onnx(tmp_path / "bb.onnx")))
    loaded = load_detectors(cfg)
    assert isinstance(loaded["street"], TtaDetector) and loaded["street"].mode == "flip"
    assert spec_for(cfg, tmp_path / "other.onnx", tmp_path / "other.json").tta == "flip"  # a model update keeps it
    session = counting(loaded["street"].inner)  # type: ignore[arg-type]
    found = camera_detectors(cfg.cameras[0], loaded).detect(left_object(), 0.0)
    assert session.shapes == [(2, 3, S, S)]
    np.testing.assert_array_equal(found.xyxy, [[5, 10, 20, 40]])
    assert found.data["detector"].tolist() == ["street"]


def test_a_model_update_keeps_the_entrys_renames_and_classes(tmp_path: Path) -> None:
    site = street_site(tmp_path / "m.onnx")
    site["detectors"]["street"] |= {"rename": {"garbage": "street_garbage"}, "classes": ["garbage", "overflow"]}
    spec = spec_for(parse_site_config(site), tmp_path / "other.onnx", tmp_path / "other.json")
    assert spec.rename == {"garbage": "street_garbage"} and spec.classes == ["garbage", "overflow"]
    assert (spec.model, spec.tta, spec.verify_sha256) == (tmp_path / "other.onnx", "flip", True)


@pytest.mark.parametrize("bad", ["flop", "hflip", True, 2])
def test_an_unknown_tta_names_the_field_and_the_fix(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ConfigError) as err:
        parse_site_config(street_site(tmp_path / "m.onnx", tta=bad))
    message = str(err.value)
    assert "detectors.street.tta: " in message and "use 'flip'" in message and "or 'none'" in message
    assert "'multiscale'" in message


def test_a_detector_entry_takes_tta_multiscale(tmp_path: Path) -> None:
    model = build_bright_box_onnx(tmp_path / "bb.onnx")
    loaded = load_detector(parse_detector_spec({"type": "onnx", "model": str(model), "tta": "multiscale"}))
    assert isinstance(loaded, TtaDetector) and loaded.mode == "multiscale" and len(loaded.views) == 3


# --- eval ----------------------------------------------------------------------------------------------------
def test_eval_with_flip_names_the_variant_and_finds_what_only_the_mirror_sees(tmp_path: Path) -> None:
    """A scripted model that finds the labelled object only on mirrored images: AP50 0 without TTA, 1 with."""
    images = tmp_path / "val" / "images"
    labels = tmp_path / "val" / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(images / f"{i}.png"), np.zeros((40, 100, 3), np.uint8))
        (labels / f"{i}.txt").write_text("2 0.2 0.5 0.2 0.5\n")  # overflow at x [10, 30), y [10, 30)

    class MirrorOnly(FakeDetector):
        """Finds the object (at its mirrored place x [70, 90)) only when asked twice per image."""

        info: ModelInfo = fake_info(CLASSES)

        def detect(self, image: np.ndarray) -> sv.Detections:
            self.calls.append(tuple(image.shape))
            return dets([(70, 10, 90, 30, 2, 0.9)]) if len(self.calls) % 2 == 0 else dets([])

    files = sorted(images.glob("*.png"))
    plain = evaluate_detector(MirrorOnly([], info=fake_info(CLASSES)), files, CLASSES)
    flipped = evaluate_detector(FlipTtaDetector(MirrorOnly([], info=fake_info(CLASSES)), EVAL_IOU), files, CLASSES)
    assert plain.ap50("overflow") == 0.0 and flipped.ap50("overflow") == pytest.approx(1.0)
    assert flipped.tta == "flip" and flipped.model.endswith("+ flip TTA") and plain.tta == "none"
    multi = evaluate_detector(TtaDetector(MirrorOnly([], info=fake_info(CLASSES)), "multiscale", EVAL_IOU), files,
                              CLASSES)
    assert multi.tta == "multiscale" and multi.model.endswith("+ multiscale TTA")  # (geometry: tests above)


def test_models_eval_cli_tta_flip_against_the_same_model_without(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model = build_bright_box_onnx(tmp_path / "bb.onnx")
    for split in ("train", "val"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "labels").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / split / "images" / "0.png"), left_object())
        (tmp_path / split / "labels" / "0.txt").write_text(f"2 {12.5 / S} {25 / S} {15 / S} {30 / S}\n")
    data = tmp_path / "data.yaml"
    data.write_text("train: train/images\nval: val/images\nnames: [garbage, garbage_bin, overflow]\n")
    assert isinstance(load_for_eval(model, tta="flip"), TtaDetector)
    out = tmp_path / "eval"
    assert main(["models", "eval", str(model), "--data", str(data), "--tta", "flip", "--baseline", str(model),
                 "--baseline-tta", "none", "--out", str(out), "--quiet", "--scenarios", "0"]) == 0
    text = capsys.readouterr().out
    assert "bright-box 0.0.1 + flip TTA" in text.splitlines()[0] and "+ flip TTA" not in text.splitlines()[1]
    report = json.loads((out / "metrics.json").read_text())
    assert report["metrics"]["tta"] == "flip" and report["baseline_tta"] == "none"
    assert "flip TTA" in report["metrics"]["evaluated_with"]
    assert report["metrics"]["per_class_mAP50"]["overflow"] == 1.0
