"""`--hyp KEY=VALUE`: the Ultralytics training hyperparameters an engineer may set, each with its valid range.

Only augmentation, loss-weight and schedule knobs are accepted; anything that changes where data or weights come
from has its own flag. A bad spec is refused before training starts, naming the key and its range.
"""

from __future__ import annotations

from gridwatch.errors import GridwatchError

# key: (low, high), inclusive; all values are floats (Ultralytics accepts floats for every one of these)
HYP_RANGES: dict[str, tuple[float, float]] = {
    "mixup": (0.0, 1.0), "copy_paste": (0.0, 1.0), "mosaic": (0.0, 1.0), "cutmix": (0.0, 1.0),
    "scale": (0.0, 0.95), "translate": (0.0, 0.9), "degrees": (0.0, 180.0), "shear": (0.0, 45.0),
    "perspective": (0.0, 0.001), "fliplr": (0.0, 1.0), "flipud": (0.0, 1.0),
    "hsv_h": (0.0, 1.0), "hsv_s": (0.0, 1.0), "hsv_v": (0.0, 1.0),
    "box": (0.0, 50.0), "cls": (0.0, 50.0), "dfl": (0.0, 50.0),
    "lrf": (1e-4, 1.0), "momentum": (0.0, 0.999), "weight_decay": (0.0, 0.1),
    "warmup_epochs": (0.0, 10.0), "warmup_momentum": (0.0, 0.999), "warmup_bias_lr": (0.0, 1.0),
}


class HypError(GridwatchError):
    """A `--hyp` spec that is not KEY=NUMBER with a known key and a value in its range."""


def parse_hyp(specs: tuple[str, ...] | list[str]) -> dict[str, float]:
    """{key: value} from KEY=VALUE specs; a repeated key keeps its last value."""
    out: dict[str, float] = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip()
        if not sep or key not in HYP_RANGES:
            known = ", ".join(sorted(HYP_RANGES))
            raise HypError(f"--hyp {spec!r}: give KEY=VALUE with KEY one of {known}")
        try:
            value = float(text)
        except ValueError:
            raise HypError(f"--hyp {spec!r}: {text!r} is not a number") from None
        low, high = HYP_RANGES[key]
        if not low <= value <= high:  # also refuses nan
            raise HypError(f"--hyp {spec!r}: {key} must lie in [{low:g}, {high:g}]")
        out[key] = value
    return out
