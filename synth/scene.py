"""A compiled scenario: camera, street frame, zones, actors and the pre-rendered background.

``Scene.frame_at(t)`` is a pure function of the scenario and t (the noise generator is seeded per
frame), which is what makes same-seed runs byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridwatch.calibration.camera import PinholeCamera
from gridwatch.synth.actors import Actor, build_actors
from gridwatch.synth.effects import apply_effects, draw_flicker_patches
from gridwatch.synth.primitives import Thing
from gridwatch.synth.render import Image, RenderedFrame, apply_look, render_background, render_frame
from gridwatch.synth.scenario import Scenario
from gridwatch.synth.world import StreetFrame, Zone, make_scenery, make_zones


def make_camera(scenario: Scenario) -> PinholeCamera:
    c = scenario.camera
    w, h = scenario.resolution
    return PinholeCamera.from_hfov(w, h, c.hfov_deg, c.height_m, c.tilt_deg, c.heading_deg, c.lat, c.lon)


def make_frame(scenario: Scenario) -> StreetFrame:
    return StreetFrame(scenario.street.bearing_deg, scenario.street.kerb_distance_m)


@dataclass(frozen=True)
class Scene:
    scenario: Scenario
    camera: PinholeCamera
    frame: StreetFrame
    zones: list[Zone]
    actors: list[Actor]
    background: Image

    @classmethod
    def compile(cls, scenario: Scenario) -> Scene:
        camera = make_camera(scenario)
        frame = make_frame(scenario)
        rng = np.random.default_rng(scenario.seed)
        scenery = make_scenery(frame, scenario.street, rng)
        return cls(
            scenario,
            camera,
            frame,
            make_zones(frame, scenario.street),
            build_actors(scenario, frame),
            render_background(camera, scenery),
        )

    def things_at(self, t: float) -> list[Thing]:
        return [thing for actor in self.actors for thing in actor.things_at(t)]

    def frame_at(self, t: float, index: int = 0) -> RenderedFrame:
        """Render the frame at time t with the scenario's look applied (labels are look-independent)."""
        raw = render_frame(self.camera, self.background, self.things_at(t), self.scenario.look.shadows)
        rng = np.random.default_rng([self.scenario.seed, index])
        scenery = draw_flicker_patches(raw.image, self.scenario.effects, t, self.scenario.seed)
        image = apply_look(scenery, self.scenario.look, rng)
        image = apply_effects(image, self.scenario.effects, t, self.scenario.seed, index)
        return RenderedFrame(image, raw.labels)
