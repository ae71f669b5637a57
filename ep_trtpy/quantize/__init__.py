"""Quantization's arithmetic and data: quantized types and their exact emulation (:mod:`.numerics`), the calibration
methods (:mod:`.methods`: entropy, percentile, min-max) and the calibration table (:mod:`.table`). Calibration
itself, which runs models, is :mod:`ep_trtpy.calibration`; the builder's passes fold_qdq and quantize_calibrated
turn scales into quantized layers (ep_trtpy/ops/quantize.py)."""
