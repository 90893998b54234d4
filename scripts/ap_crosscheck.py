"""Cross-check gridwatch's COCO 101-point AP against Ultralytics' ap_per_class on the test fixture.

Needs Ultralytics (the [train] extra): `python scripts/ap_crosscheck.py` from the repository root. Both get the
same true-positive matrix, so only the interpolation differs (COCO: precision at 101 recall points, averaged;
Ultralytics: a trapezoid over the same points); measured here: at most 0.012 AP over 20 fixtures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    import gridwatch

    gridwatch.__path__.insert(0, str(REPO / ".build" / "typecheck" / "gridwatch"))  # this tree, from another venv
    sys.path.insert(0, str(REPO))  # the fixture lives in tests/
    from ultralytics.utils.metrics import ap_per_class

    from gridwatch.models.detection_metrics import DetectionEvaluator, match_greedy
    from tests.models.test_detection_metrics import _random_fixture

    worst = 0.0
    for seed in range(1, 21):
        ev = DetectionEvaluator(["a", "b", "c"])
        tps, confs, pcls, tcls = [], [], [], []
        for pred, conf, pc, gt, gc in _random_fixture(seed):
            ev.add(pred, conf, pc, gt, gc)
            for c in range(3):
                m = pc == c
                tps.append(match_greedy(pred[m], conf[m], gt[gc == c]))
                confs.append(conf[m])
                pcls.append(pc[m])
            tcls.append(gc)
        res = ev.result()
        out = ap_per_class(np.concatenate(tps), np.concatenate(confs), np.concatenate(pcls), np.concatenate(tcls))
        ap, classes = out[5], out[6].astype(int)  # AP (nc, 10 thresholds), the classes with labels
        ours50 = np.array([c.ap50 for c in res.classes])[classes]
        ours5095 = np.array([c.ap50_95 for c in res.classes])[classes]
        worst = max(worst, float(np.abs(ours50 - ap[:, 0]).max()), float(np.abs(ours5095 - ap.mean(1)).max()))
        if seed <= 3:
            print(seed, "AP50 ours", np.round(ours50, 4), "ultralytics", np.round(ap[:, 0], 4),
                  "| mAP50-95 ours", round(float(ours5095.mean()), 4), "ultralytics", round(float(ap.mean()), 4))
    print(f"max |difference| over 20 fixtures x 3 classes (AP50 and AP50-95): {worst:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
