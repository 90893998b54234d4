"""Composite scenarios (synthetic objects on real footage): determinism, truth semantics, object where truth says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridwatch.synth.backgrounds import BACKGROUNDS, Background, Walker, Window
from gridwatch.synth.composite import (
    CompositeScenario,
    PastedObject,
    _clip_fps,
    check_owners,
    read_frames,
    render_frames,
    source_indices,
    truth,
)
from gridwatch.synth.scenario import EffectsSpec, ScenarioError, parse_scenario


def _pile(t: float = 1.0, **kw: object) -> PastedObject:
    return PastedObject(id="pile", kind="pile", t=t, x=300.0, y=380.0, size_m=1.0, colour=(60, 60, 65),
                        **kw)  # type: ignore[arg-type]


def _scenario(seed: int = 1, objects: list[PastedObject] | None = None, **kw: object) -> CompositeScenario:
    return CompositeScenario(name="t", seed=seed, background="aboda_empty", duration_s=2.0, fps=5.0,
                             objects=[_pile()] if objects is None else objects, **kw)  # type: ignore[arg-type]


def test_pingpong_window_plays_forward_then_back_and_forward_stops_at_its_end() -> None:
    w = Window(2.0, 5.0, "pingpong")
    assert [w.clip_time(t) for t in (0.0, 1.0, 3.0, 4.0, 6.0, 7.0)] == [2.0, 3.0, 5.0, 4.0, 2.0, 3.0]
    assert Window(2.0, 5.0, "forward").clip_time(10.0) == 5.0


def test_walker_feet_are_interpolated_and_none_off_the_path() -> None:
    walker = Walker(((1.0, 0.0, 100.0), (2.0, 10.0, 80.0)))
    assert walker.foot_at(1.5) == (5.0, 90.0)
    assert walker.foot_at(0.5) is None and walker.foot_at(2.5) is None


def test_truth_counts_what_stays_new_and_names_the_type() -> None:
    walker_t = 31.0 - BACKGROUNDS["aboda_walker"].window.start_s
    foot = BACKGROUNDS["aboda_walker"].walkers["man"].foot_at(31.0)
    assert foot is not None
    objs = [
        PastedObject(id="scenery", kind="bag", t=0.0, x=200, y=300),  # part of the view at setup
        PastedObject(id="brief", kind="bag", t=3.0, until_s=5.0, x=250, y=300),  # picked up again
        PastedObject(id="dumped", kind="pile", t=2.0, x=200, y=420, grow_s=3.0),
        PastedObject(id="cable", kind="wire", t=4.0, fall_s=0.5, x=300, y=200, size_m=3.0, angle_deg=10),
        PastedObject(id="bag", kind="bag", t=walker_t, x=foot[0] - 20, y=foot[1], owner="man"),
    ]
    sc = CompositeScenario(name="t", background="aboda_walker", duration_s=15.0, objects=objs)
    got = {i["actor"]: (i["type"], i["start_s"]) for i in truth(sc)["incidents"]}
    assert got == {"dumped": ("exposed_garbage", 2.0), "cable": ("fallen_wire", 4.5),
                   "man/bag": ("littering", round(walker_t, 3))}
    for inc in truth(sc)["incidents"]:
        x1, y1, x2, y2 = inc["box"]
        assert x1 < inc["pixel"][0] < x2 and y1 < inc["pixel"][1] < y2
        assert inc["radius_px"] >= 40.0
    check_owners(sc)  # the drop is at the man's feet


def test_a_littering_truth_says_when_the_owner_left_the_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """`owner_left_s`: first time the owner's feet are more than LEAVE_DISTANCE_M from the object (pixels over the
    ground scale), or off the walker's path; only littering carries it."""
    real = BACKGROUNDS["aboda_walker"]
    drop_t = 31.0 - real.window.start_s
    obj = PastedObject(id="bag", kind="bag", t=drop_t, x=300.0, y=400.0, owner="man")
    sc = CompositeScenario(name="t", background="aboda_walker", duration_s=15.0, objects=[obj])
    # A man who stands by the bag until 31 s, then walks up at 100 px/s on ground of 100 px/m: 4 m at 35 s.
    walker = Walker(((30.0, 300.0, 400.0), (31.0, 300.0, 400.0), (36.0, 300.0, -100.0)))
    monkeypatch.setitem(BACKGROUNDS, "aboda_walker", Background(
        real.name, real.clip, real.size, real.window, ((0.0, 100.0), (480.0, 100.0)), real.ground, {"man": walker}))
    (inc,) = truth(sc)["incidents"]
    assert inc["type"] == "littering" and inc["start_s"] == pytest.approx(drop_t)
    assert inc["owner_left_s"] == pytest.approx(35.0 - real.window.start_s, abs=0.06)
    # a walker whose path ends first has left when it ends
    monkeypatch.setitem(BACKGROUNDS, "aboda_walker", Background(
        real.name, real.clip, real.size, real.window, ((0.0, 100.0), (480.0, 100.0)), real.ground,
        {"man": Walker(((30.0, 300.0, 400.0), (33.0, 300.0, 300.0)))}))
    assert truth(sc)["incidents"][0]["owner_left_s"] == pytest.approx(33.0 - real.window.start_s, abs=0.06)
    assert all("owner_left_s" not in i for i in truth(_scenario())["incidents"])


def test_invalid_composites_name_the_field_and_the_fix() -> None:
    with pytest.raises(ScenarioError, match="not at man's feet"):
        check_owners(CompositeScenario(name="t", background="aboda_walker", duration_s=15.0, objects=[
            PastedObject(id="bag", kind="bag", t=7.0, x=50, y=50, owner="man")]))
    with pytest.raises(ValueError, match="background 'nowhere' unknown"):
        CompositeScenario(background="nowhere")
    with pytest.raises(ValueError, match=r"exceeds background lot_aisle's 30\.0 s window"):
        CompositeScenario(background="lot_aisle", duration_s=40.0)
    with pytest.raises(ValueError, match="owner 'woman' unknown"):
        CompositeScenario(background="aboda_walker", duration_s=10.0, objects=[
            PastedObject(id="bag", kind="bag", t=7.0, x=50, y=50, owner="woman")])
    with pytest.raises(ValueError, match=r"scenery .* cannot grow"):
        _pile(t=0.0, grow_s=2.0)
    # the scenario's effects are the synthetic suite's own spec
    assert parse_scenario({"effects": {"shake_px": 1.0}}).effects == EffectsSpec(shake_px=1.0)


def test_same_seed_same_frames_and_truth_another_seed_another_pile(shared_data: Path) -> None:
    a = list(render_frames(_scenario(seed=1), shared_data))
    b = list(render_frames(_scenario(seed=1), shared_data))
    c = list(render_frames(_scenario(seed=2), shared_data))
    assert len(a) == 10 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert truth(_scenario(seed=1)) == truth(_scenario(seed=1))
    x1, y1, x2, y2 = truth(_scenario(seed=1))["incidents"][0]["box"]
    assert np.abs(a[-1][y1:y2, x1:x2].astype(int) - c[-1][y1:y2, x1:x2].astype(int)).mean() > 5


def test_the_object_is_pasted_where_the_truth_says_and_nowhere_else(shared_data: Path) -> None:
    sc = _scenario(jpeg_quality=100)
    inc = truth(sc)["incidents"][0]
    x1, y1, x2, y2 = inc["box"]
    frames = list(render_frames(sc, sc_shared := shared_data))
    clip = sc_shared / sc.bg.clip
    real = list(read_frames(clip, source_indices(sc, _clip_fps(clip))))
    outside = np.ones(real[0].shape[:2], bool)
    outside[max(0, y1 - 25):y2 + 25, max(0, x1 - 25):x2 + 25] = False  # the box plus its soft shadow
    for i, (out, src) in enumerate(zip(frames, real, strict=True)):
        diff = np.abs(out.astype(int) - src.astype(int)).max(axis=2)
        inside = float(diff[y1:y2, x1:x2].mean())
        assert float(diff[outside].mean()) < 1.5, f"frame {i}: the frame changed away from the object"
        if i / sc.fps < inc["start_s"]:
            assert inside < 1.5, f"frame {i}: something pasted before the truth's start"
        else:
            assert inside > 25, f"frame {i}: the pile is not inside its truth box"


def test_the_cli_fails_cleanly_without_the_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """(Rendering itself is the e2e composite test's generate_composite; a family scenario is 15-22 s of video.)"""
    from gridwatch.synth.__main__ import main

    assert main(["composite", "9", "--out", str(tmp_path / "nope"), "--shared", str(tmp_path)]) == 2
    assert "not found; set GRIDWATCH_SHARED" in capsys.readouterr().err
