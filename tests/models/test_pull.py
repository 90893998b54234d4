"""`gridwatch data pull`: hard examples as a YOLO folder or a CVAT task (`gridwatch.models.pull`)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from gridwatch.app.cli import main
from gridwatch.models.hard_examples import GuessBox, HardExample

WALL = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


def example(folder: Path, camera: str, stem: str, boxes: list[GuessBox]) -> None:
    (folder / camera).mkdir(parents=True, exist_ok=True)
    (folder / camera / f"{stem}.jpg").write_bytes(b"\xff\xd8 not decoded by pull \xff\xd9")
    ex = HardExample(site_id="s1", gateway_id="gw1", camera_id=camera, frame_index=1, ts=1.0, wall=WALL,
                     image=f"{stem}.jpg", width=200, height=100, reasons=["low_confidence"], boxes=boxes)
    (folder / camera / f"{stem}.json").write_text(ex.model_dump_json())


@pytest.fixture
def field(tmp_path: Path) -> Path:
    root = tmp_path / "field"
    example(root, "cam1", "a", [GuessBox(class_name="garbage", confidence=0.4, box=(20, 10, 60, 50),
                                         source="detector", detector="street"),
                                GuessBox(class_name="car", confidence=0.9, box=(150, 0, 210, 40),  # past the edge
                                         source="detector", detector="coco")])
    example(root, "cam2", "a", [GuessBox(class_name="unknown_object", confidence=1.0, box=(0, 0, 10, 10),
                                         source="region")])
    example(root, "cam2", "b", [])
    return root


def test_yolo_folder_with_the_guesses_as_labels(field: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    out = tmp_path / "yolo"
    assert main(["data", "pull", str(field), "--out", str(out), "--format", "yolo"]) == 0
    assert "3 images, 3 pre-labelled boxes, 3 classes (car, garbage, unknown_object)" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "images").iterdir()) == ["cam1_a.jpg", "cam2_a.jpg", "cam2_b.jpg"]
    assert (out / "classes.txt").read_text().split() == ["car", "garbage", "unknown_object"]
    labels = (out / "labels" / "cam1_a.txt").read_text().splitlines()
    assert labels == ["1 0.200000 0.300000 0.200000 0.400000",  # garbage: centre (40, 30), 40 x 40 of 200 x 100
                      "0 0.875000 0.200000 0.250000 0.400000"]  # car clipped at x=200
    assert (out / "labels" / "cam2_b.txt").read_text() == ""  # a frame with nothing: an empty label file
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "car", 1: "garbage", 2: "unknown_object"} and data["train"] == "images"


def test_cvat_task_xml(field: Path, tmp_path: Path) -> None:
    out = tmp_path / "cvat"
    assert main(["data", "pull", str(field), "--out", str(out), "--format", "cvat"]) == 0
    root = ET.parse(out / "annotations.xml").getroot()
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    task = root.find("meta/task")
    assert task is not None and task.findtext("size") == "3" and task.findtext("mode") == "annotation"
    assert [label.findtext("name") for label in task.iterfind("labels/label")] == ["car", "garbage", "unknown_object"]
    images = root.findall("image")
    assert [(i.get("id"), i.get("name"), i.get("width"), i.get("height")) for i in images] == [
        ("0", "cam1_a.jpg", "200", "100"), ("1", "cam2_a.jpg", "200", "100"), ("2", "cam2_b.jpg", "200", "100")]
    box = images[0].find("box")
    assert box is not None and {k: box.get(k) for k in ("label", "xtl", "ytl", "xbr", "ybr", "source")} == {
        "label": "garbage", "xtl": "20.00", "ytl": "10.00", "xbr": "60.00", "ybr": "50.00", "source": "auto"}
    assert (out / "images" / "cam2_b.jpg").exists()


def test_pull_refuses_a_non_empty_out_a_bad_sidecar_and_a_missing_image(
    field: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "labels-in-progress.txt").write_text("x")
    assert main(["data", "pull", str(field), "--out", str(out)]) == 2
    assert "is not empty; give a new folder" in capsys.readouterr().err
    (field / "cam2" / "b.jpg").unlink()
    assert main(["data", "pull", str(field), "--out", str(tmp_path / "new")]) == 2
    assert "b.json: its image b.jpg is missing next to it" in capsys.readouterr().err
    (field / "cam2" / "b.json").write_text(json.dumps({"version": 1}))
    assert main(["data", "pull", str(field), "--out", str(tmp_path / "new2")]) == 2
    assert "b.json: not a hard-example sidecar" in capsys.readouterr().err
    assert main(["data", "pull", str(tmp_path / "nowhere"), "--out", str(tmp_path / "new3")]) == 2
    assert "no such folder of hard examples" in capsys.readouterr().err
