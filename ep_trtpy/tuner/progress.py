"""The build progress bar, driven by the native engine's ``finalize(progress=...)`` callback.

The native engine calls ``progress(layer_index, n_layers, text)`` (with the GIL held) before it prepares each
layer; ``text`` names the layer and what is being timed. :class:`BuildProgress` is that callable:

* nothing at all for a build that finishes within :data:`DELAY_S` seconds of its start;
* after that, when stderr is a terminal: one line redrawn in place (at most 10 times a second) and finished with
  a newline at :meth:`BuildProgress.close`::

      building 'main_graph' [##########--------------]  41/120 layers  conv_41: timing 8 candidates

* when stderr is not a terminal: nothing, unless ``detailed_build_log`` is on; then log lines (INFO, at most one a
  second) instead of the bar.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger("ep_trtpy.tuner")

DELAY_S = 2.0
REDRAW_S = 0.1
LOG_EVERY_S = 1.0
BAR_WIDTH = 24


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 100


class BuildProgress:
    """``progress(layer_index, n_layers, text)`` for ``Engine.finalize`` (see the module docstring)."""

    def __init__(self, label: str, detailed: bool = False, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, started: float | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.started = clock() if started is None else started
        self.bar = _is_terminal(self.stream)
        self.lines = detailed and not self.bar
        self.drawn = False
        self._last = -1e30
        self._state = (0, 0, "")

    def __call__(self, layer_index: int, n_layers: int, text: str) -> None:
        self._state = (int(layer_index), int(n_layers), str(text))
        now = self.clock()
        if now - self.started < DELAY_S:
            return
        if self.bar and now - self._last >= REDRAW_S:
            try:
                self._draw(*self._state)
            except (OSError, ValueError):  # stderr went away: the build must not fail for its progress bar
                self.bar = self.drawn = False
            self._last = now
        elif self.lines and now - self._last >= LOG_EVERY_S:
            log.info("building '%s': layer %d/%d: %s", self.label, layer_index + 1, n_layers, text)
            self._last = now

    def _draw(self, done: int, total: int, text: str) -> None:
        filled = BAR_WIDTH * done // total if total else BAR_WIDTH
        head = f"building '{self.label}' [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {done:>4d}/{total} layers  "
        line = (head + text)[:max(len(head), _columns(self.stream) - 1)]
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """Finish the bar (all layers done) if one was drawn."""
        if self.drawn:
            _, total, _ = self._state
            try:
                self._draw(total, total, f"done in {self.clock() - self.started:.1f} s")
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self.drawn = False
