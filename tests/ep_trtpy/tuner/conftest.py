"""Tuner tests use the builder tests' helpers (tests/ep_trtpy/builder) and a fake native engine (fake_engine.py)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "builder"))
