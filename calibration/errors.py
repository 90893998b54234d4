"""Exceptions raised by the calibration package.

Every error a caller can act on is a `CalibrationError`, so a gateway can catch one type at start-up and stop
with the message (which names the bad input and the fix). The subclasses also derive from `ValueError` where
the cause is bad input, so generic input-validation code keeps working.

Tree::

    CalibrationError                      base class; never raised directly
    ├── DegenerateCalibrationError        (ValueError) too few, collinear or horizon-straddling point pairs;
    │                                     a singular homography
    ├── CalibrationInputError             (ValueError) malformed input: wrong array shapes, non-finite values,
    │                                     a bad points YAML
    ├── GridLayerError                    (ValueError) a bad grid-layer GeoJSON: wrong geometry type, missing
    │                                     or malformed grid code (the message names the feature index)
    ├── ConvergenceError                  an iterative inverse (GCJ-02 -> WGS-84) did not reach its tolerance
    └── ShiftCheckError                   the camera-shift check cannot work on this image (too little texture
                                          for feature matching)
"""

from __future__ import annotations

from gridwatch.errors import GridwatchError


class CalibrationError(GridwatchError):
    """Base class of every calibration error."""


class DegenerateCalibrationError(CalibrationError, ValueError):
    """The data cannot determine a mapping (too few / collinear points, singular matrix)."""


class CalibrationInputError(CalibrationError, ValueError):
    """Input of the wrong shape, type or value (non-finite numbers, bad YAML)."""


class GridLayerError(CalibrationError, ValueError):
    """A grid-layer GeoJSON that cannot be used; the message names the feature index."""


class ConvergenceError(CalibrationError):
    """An iterative computation stopped before reaching its tolerance."""


class ShiftCheckError(CalibrationError):
    """The camera-shift check cannot run on this image (e.g. a reference frame without texture)."""
