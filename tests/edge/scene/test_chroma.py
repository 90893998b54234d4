"""The colour half of the scene-change stage and the shape rules that came with it: a bag as bright as the paving
but green, dark and saturated pixels that must not trigger chroma, hole-filled band elongation, thin static pieces
and the frame's edge, and which detector classes may stand for a region."""

from __future__ import annotations

import cv2
import numpy as np
import supervision as sv

from gridwatch.edge.config import parse_site_config, read_classes
from gridwatch.edge.scene.background import thin_pieces
from gridwatch.edge.scene.chroma import ChromaBackground, chroma_planes
from gridwatch.edge.scene.regions import band_elongation, fill_holes, find_regions
from gridwatch.edge.scene.stage import SceneChangeStage, SceneOutput, merge_regions, outside_view

from .test_stage import BG, FPS, OBJ, H, W, centre, cfg

PAVING = 120
GREEN_AS_PAVING = (95, 135, 100)  # BGR; grey level 0.114 B + 0.587 G + 0.299 R = 120.0, chroma -0.29 / -0.33


def paved() -> np.ndarray:
    """The test street with a plain grey paving slab (grey level 120) around the drop spot."""
    out = BG.copy()
    x1, y1, x2, y2 = OBJ
    out[y1 - 25:y2 + 25, x1 - 25:x2 + 25] = PAVING
    return out


def with_colour(img: np.ndarray, box: tuple[int, int, int, int], bgr: tuple[int, int, int]) -> np.ndarray:
    out = img.copy()
    x1, y1, x2, y2 = box
    out[y1:y2, x1:x2] = bgr
    return out


def regions_over(frames: list[np.ndarray], **kw: object) -> list[SceneOutput]:
    stage = SceneChangeStage(cfg(**kw))
    return [stage.update(f, i / FPS) for i, f in enumerate(frames)]


def test_the_green_bag_is_as_bright_as_the_paving() -> None:
    y, c1, c2, _, _ = chroma_planes(np.array([[GREEN_AS_PAVING, (PAVING,) * 3]], np.uint8))
    assert abs(float(y[0, 0]) - PAVING) < 1.0 and abs(float(y[0, 1]) - PAVING) < 1.0
    assert min(abs(float(c1[0, 0])), abs(float(c2[0, 0]))) > 0.25 and float(c1[0, 1]) == float(c2[0, 1]) == 0.0


def test_a_green_bag_as_bright_as_grey_paving_becomes_a_region_by_its_colour() -> None:
    ground = paved()
    frames = [with_colour(ground, OBJ, GREEN_AS_PAVING) if i / FPS >= 4 else ground for i in range(int(14 * FPS))]
    found = [o.regions for o in regions_over(frames)]
    last = found[-1]
    assert len(last) == 1, [r.xyxy.tolist() for r in found[-4:]]
    cx, cy = centre(last.xyxy[0])
    assert abs(cx - 165) <= 4 and abs(cy - 112.5) <= 4
    first = next(i / FPS for i, r in enumerate(found) if len(r))
    assert 4 + 3.0 <= first <= 4 + 3.0 + 2.0, first
    # the same frames in grey only: the bag differs by nothing the grey path sees
    assert not any(len(o.regions) for o in regions_over(frames, chroma_threshold=0.0))


def test_dark_and_saturated_pixels_do_not_trigger_chroma() -> None:
    size = (80, 45)
    bg = ChromaBackground(0.15, 20.0, (48.0, 225.0))
    dark, bright, mid = (30, 30, 30), (240, 240, 240), (PAVING,) * 3
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[:, :25], frame[:, 25:50], frame[:, 50:] = dark, bright, mid
    # the same grey levels (within 3), other colours: chroma ratios 0.48 (dark) and 0.43 (bright) off
    frame[35:45, 55:75] = (5, 150, 200)  # mid grey (149), but its blue channel is next to nothing
    bg.start(frame)
    changed = frame.copy()
    changed[:, :25], changed[:, 25:50], changed[10:30, 55:70] = (40, 25, 40), (150, 255, 255), GREEN_AS_PAVING
    changed[35:45, 55:75] = (5, 120, 250)  # grey 146, (R - G) / Y 0.34 -> 0.89: a channel at 5 is no colour
    y = chroma_planes(changed)[0]
    assert abs(float(y[0, 0]) - 30) < 3 and abs(float(y[0, 30]) - 240) < 4
    diff = bg.update(changed, (2 * size[1], 2 * size[0]), np.ones((2 * size[1], 2 * size[0]), bool))
    assert float(diff.long[:, :100].max()) == 0.0  # dark and saturated (work columns 0-99): not measured
    assert float(diff.short[:, :100].max()) == 0.0 and float(diff.step[:, :100].max()) == 0.0
    assert float(diff.long[20:60, 110:140].min()) > 20.0  # the green patch at mid grey: > 20 grey-equivalent
    assert float(diff.long[70:, 100:].max()) == 0.0  # the unchanged paving and the clipped-channel patch
    assert float(diff.short[70:90, 110:150].max()) == 0.0


def test_a_global_colour_cast_is_no_chroma_difference() -> None:
    bg = ChromaBackground(0.15, 20.0, (48.0, 225.0))
    frame = np.full((45, 80, 3), PAVING, np.uint8)
    frame[10:30, 10:30] = GREEN_AS_PAVING
    bg.start(frame)
    warmer = np.clip(frame.astype(np.int16) + np.array([-12, 0, 14], np.int16), 0, 255).astype(np.uint8)
    diff = bg.update(warmer, (90, 160), np.ones((90, 160), bool))
    assert float(diff.long.max()) < 5.0, float(diff.long.max())  # white balance: no 20-level difference


def test_a_ring_measures_compact_once_its_hole_is_filled_and_a_cable_stays_long() -> None:
    """A bag whose middle matches the paving is established as its rim: a ring, which as a band is long and
    thin (a wire to the shape gate) and filled is the compact bag it is."""
    ring = np.zeros((40, 40), np.uint8)
    cv2.circle(ring, (20, 20), 14, 1, 2)
    mask = ring.astype(bool)
    filled = fill_holes(mask)
    assert filled[20, 20] and not filled[0, 0] and filled.sum() > mask.sum() * 2
    assert band_elongation(mask) > 6.0  # the wire gate's default
    assert band_elongation(filled) < 1.6
    established = np.zeros((H, W), bool)
    established[40:80, 40:80] = mask
    line = np.zeros((H, W), np.uint8)
    cv2.line(line, (150, 30), (300, 60), 1, 3)
    established |= line.astype(bool)
    found = sorted(find_regions(established, np.full((H, W), 5.0, np.float32), np.full((H, W), 50.0, np.float32),
                                20), key=lambda r: r.box[0])
    assert len(found) == 2
    bag, cable = found
    assert bag.elongation < 2.0, bag.elongation
    assert cable.elongation > 20.0, cable.elongation


def test_thin_static_pieces_are_kept_when_long_and_away_from_the_frame_edge() -> None:
    thin = np.zeros((H, W), bool)
    thin[90, 100:130] = True  # a 30 px cable, one pixel wide, mid-frame: kept
    thin[50, 20:35] = True  # 15 px: speckle-sized, dropped
    thin[2, 100:200] = True  # a line 2 px from the top edge: dropped
    thin[40:140, W - 3] = True  # ... and 3 px from the right edge
    thin[150, 5:60] = True  # 5 px from the left edge, 30 from the bottom: kept
    kept = thin_pieces(thin, 20.0, 4)
    assert kept[90, 100:130].all() and kept[150, 5:60].all()
    assert not kept[50].any() and not kept[2].any() and not kept[:, W - 3].any()


def test_a_thin_cable_set_down_becomes_a_region_the_opening_would_erase() -> None:
    cable = BG.copy()
    cv2.line(cable, (60, 140), (200, 150), (25, 25, 25), 2)
    frames = [cable if i / FPS >= 4 else BG for i in range(int(12 * FPS))]
    last = regions_over(frames)[-1].regions
    assert len(last) == 1
    x1, y1, x2, y2 = last.xyxy[0]
    assert x1 <= 70 and x2 >= 190 and y1 >= 130 and y2 <= 160
    assert float(last.data["region_elongation"][0]) > 6.0


def test_outside_view_masks_the_refilled_border_of_a_shifted_view() -> None:
    assert outside_view(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (H, W)) is None
    shift = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]])  # reference -> frame: the frame moved
    out = outside_view(shift, (H, W))
    assert out is not None
    # reference x maps to frame x + 3: the last 3 columns (+2 margin) have no source; y - 2: the first 2 rows
    assert out[:, W - 5:].all() and not out[10:H - 10, W - 7].any()
    assert out[:4, :].all() and not out[6, 10:W - 10].any()


def test_only_a_detection_of_a_class_a_rule_reads_stands_for_a_region() -> None:
    region = sv.Detections(
        xyxy=np.array([[105, 105, 135, 138]], np.float32), confidence=np.array([0.8], np.float32),
        class_id=np.array([-1]),
        data={"class_name": np.array(["unknown_object"]), "region_area_m2": np.full(1, np.nan),
              "region_elongation": np.ones(1), "region_contrast": np.full(1, 0.3), "region_age_s": np.full(1, 4.0),
              "source": np.array(["scene"])},
    )

    def det(name: str) -> sv.Detections:
        return sv.Detections(xyxy=np.array([[100, 100, 140, 140]], np.float32), confidence=np.array([0.5], np.float32),
                             class_id=np.array([32]), data={"class_name": np.array([name])})

    site = parse_site_config({
        "site_id": "s", "gateway_id": "g", "detector": {"type": "onnx", "model": "m.onnx"},
        "cameras": [{"id": "c", "source": {"type": "file", "path": "x.mp4"},
                     "incidents": {"littering": {"dwell_s": 3}, "exposed_garbage": {"dwell_s": 5}}}],
    }, "test")
    reads = read_classes(site.cameras[0])
    assert "person" in reads and "sports ball" not in reads
    ball = merge_regions(det("sports ball"), region, reads)
    assert ball.data["class_name"].tolist() == ["sports ball", "unknown_object"]  # the region survives
    garbage = next(iter(reads - {"person", "unknown_object"}))
    assert merge_regions(det(garbage), region, reads).data["class_name"].tolist() == [garbage]
    assert merge_regions(det("sports ball"), region).data["class_name"].tolist() == ["sports ball"]  # None: all
