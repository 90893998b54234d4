"""synth: a synthetic street-world generator for training and testing gridwatch.

Public API:
    CLASSES                     detector class names, in class-id order
    generate(scenario, out_dir) render a scenario to video + YOLO labels + truth.json
    build_dataset(out_dir, ...) write an Ultralytics dataset from the randomised scenario family
    load_scenario(path)         read and validate a scenario YAML
"""

from gridwatch.synth.actors import CLASSES
from gridwatch.synth.dataset import DatasetSummary, build_dataset
from gridwatch.synth.generate import generate
from gridwatch.synth.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["CLASSES", "DatasetSummary", "Scenario", "ScenarioError", "build_dataset", "generate", "load_scenario"]
