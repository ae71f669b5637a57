"""_host tests use the builder tests' helpers and fallbacks (tests/ep_trtpy/builder)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "builder"))

import builder_fallbacks  # noqa: E402

builder_fallbacks.install()
