"""Calibration tests use the quantization tests' models (tests/ep_trtpy/quantize/qmodels.py)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "quantize"))
