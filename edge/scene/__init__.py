"""The class-agnostic scene-change stage: new static things in the view that no detector class covers.

Modules, one job each: `stabilise` (register frames to the reference view), `background` (long- and short-term
backgrounds -> static foreground), `regions` (static foreground -> measured regions, ghosts), `stage` (the three
wired together per camera, and the merge with the detector's detections).
"""
