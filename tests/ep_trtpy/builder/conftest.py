"""Builder tests: install the test-only fallbacks for pieces other helpers write in parallel (see
builder_fallbacks.py; each is used only where the real one is missing)."""

import builder_fallbacks

builder_fallbacks.install()
