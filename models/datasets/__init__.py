"""From labelled data to a training dataset: importers, class mapping, group split, mixing, report.

Public API (the `gridwatch data` commands call these):
    build(recipe_path, out)        mix the recipe's sources into an Ultralytics folder + data.yaml + report
    write_report(root)             report.json / report.txt / contact_sheet.png for any Ultralytics folder
    load_recipe(path)              read and validate a recipe YAML
    DatasetError                   every user-facing error here (a GridwatchError)

Importers (each returns `Sample`s under the source's class names): `yolo.import_yolo`, `coco.import_coco`,
`cvat.import_cvat_video`, `labelstudio.import_label_studio`, `teacher.pseudo_label`.
"""

from gridwatch.models.datasets.build import BuildResult, build
from gridwatch.models.datasets.recipe import Recipe, load_recipe
from gridwatch.models.datasets.records import Box, DatasetError, Sample
from gridwatch.models.datasets.report import write_report

__all__ = ["Box", "BuildResult", "DatasetError", "Recipe", "Sample", "build", "load_recipe", "write_report"]
