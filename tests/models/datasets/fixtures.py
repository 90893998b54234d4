"""Tiny label exports and clips written on the fly (no binary fixtures in the repository)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

W, H = 160, 120


def square_x(frame: int) -> int:
    """Where the clip's white square is: moves 2 px a frame for 40 frames, then stands still."""
    return 10 + 2 * min(frame, 40)


def write_clip(path: Path, frames: int = 60) -> Path:
    """A 160x120 MJPG clip: a white 20x20 square moving right for 40 frames, then still (near-duplicates)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    assert writer.isOpened()
    for f in range(frames):
        img = np.full((H, W, 3), 40, np.uint8)
        x = square_x(f)
        img[50:70, x:x + 20] = 255
        writer.write(img)
    writer.release()
    return path


def cvat_xml(path: Path, source: str = "clip.avi", frames: int = 60) -> Path:
    """Track 0 `car`: keyframes at 0 (x 10) and 10 (x 30), outside from 20, back at 30 (occluded), held to the end.
    Track 1 `tree`: one box at frame 0, outside at 5. A polygon shape is skipped."""
    path.write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>1</id><name>clip</name><size>{frames}</size><mode>interpolation</mode>
      <start_frame>0</start_frame><stop_frame>{frames - 1}</stop_frame>
      <labels><label><name>car</name></label><label><name>tree</name></label></labels>
      <original_size><width>{W}</width><height>{H}</height></original_size>
    </task>
    <source>{source}</source>
  </meta>
  <track id="0" label="car" source="manual">
    <box frame="0" outside="0" occluded="0" keyframe="1" xtl="10" ytl="50" xbr="30" ybr="70" z_order="0"/>
    <box frame="10" outside="0" occluded="0" keyframe="1" xtl="30" ytl="50" xbr="50" ybr="70" z_order="0"/>
    <box frame="20" outside="1" occluded="0" keyframe="1" xtl="50" ytl="50" xbr="70" ybr="70" z_order="0"/>
    <box frame="30" outside="0" occluded="1" keyframe="1" xtl="70" ytl="50" xbr="90" ybr="70" z_order="0"/>
  </track>
  <track id="1" label="tree" source="manual">
    <box frame="0" outside="0" occluded="0" keyframe="1" xtl="100" ytl="10" xbr="150" ybr="60" z_order="0"/>
    <box frame="5" outside="1" occluded="0" keyframe="1" xtl="100" ytl="10" xbr="150" ybr="60" z_order="0"/>
  </track>
  <track id="2" label="car" source="manual">
    <polygon frame="0" outside="0" occluded="0" keyframe="1" points="1,1;5,1;5,5" z_order="0"/>
  </track>
</annotations>
""", encoding="utf-8")
    return path


def label_studio_json(path: Path, video: str = "/data/upload/1/3f2a9c1d-clip.avi", frames: int = 60) -> Path:
    """One task, one `person` track: keyframes at LS frames 1 (x 6.25%) and 11 (x 18.75%, enabled false), then 31
    (x 43.75%, enabled), held to framesCount."""
    def key(frame: int, x_px: float, enabled: bool) -> dict[str, object]:
        return {"frame": frame, "enabled": enabled, "rotation": 0, "x": x_px / W * 100, "y": 50 / H * 100,
                "width": 20 / W * 100, "height": 20 / H * 100, "time": (frame - 1) / 10}

    task = {"id": 1, "data": {"video": video}, "annotations": [
        {"was_cancelled": True, "result": []},
        {"was_cancelled": False, "result": [{
            "id": "a1", "type": "videorectangle", "from_name": "box", "to_name": "video", "origin": "manual",
            "value": {"framesCount": frames, "duration": frames / 10, "labels": ["Person"],
                      "sequence": [key(1, 10, True), key(11, 30, False), key(31, 70, True)]}}]}]}
    path.write_text(json.dumps([task]), encoding="utf-8")
    return path


def coco_json(folder: Path) -> Path:
    """Two 160x120 images (two Roboflow copies of photo 000007) and a third, boxes of `bag` and `bin`."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    names = ["000007_jpg.rf.aaaaaaaa11.jpg", "000007_jpg.rf.bbbbbbbb22.jpg", "street_1.jpg"]
    for n in names:
        cv2.imwrite(str(folder / "images" / n), np.full((H, W, 3), 90, np.uint8))
    data = {
        "images": [{"id": i + 1, "file_name": n, "width": W, "height": H} for i, n in enumerate(names)],
        "categories": [{"id": 1, "name": "bag"}, {"id": 2, "name": "bin"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [16, 12, 32, 24], "area": 768, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [80, 60, 80, 60], "area": 4800, "iscrowd": 0},
            {"id": 3, "image_id": 3, "category_id": 2, "bbox": [150, 100, 40, 40], "area": 1600, "iscrowd": 0},
        ],
    }
    path = folder / "coco.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def yolo_folder(root: Path, split_names: dict[str, list[str]], classes: list[str], line: str = "0 0.5 0.5 0.2 0.2"
                ) -> Path:
    """ROOT/<split>/images/<name>.jpg + labels with one box each, and classes.txt."""
    for split, names in split_names.items():
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        for n in names:
            cv2.imwrite(str(root / split / "images" / f"{n}.jpg"), np.full((H, W, 3), 120, np.uint8))
            (root / split / "labels" / f"{n}.txt").write_text(line + "\n", encoding="utf-8")
    (root / "classes.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
    return root
