"""_host tests use the builder tests' helpers (tests/ep_trtpy/builder)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "builder"))

