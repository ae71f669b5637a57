"""Calibration: the ranges of a float model's activations, the calibration table, the accuracy guard and its
report. :func:`calibrate` is the entry point (also ``ep_trtpy.calibrate`` and ``ep-trtpy calibrate``)."""

from ep_trtpy.calibration.calibrate import calibrate
from ep_trtpy.calibration.collect import CalibrationError, NpzFolderReader

__all__ = ["CalibrationError", "NpzFolderReader", "calibrate"]
