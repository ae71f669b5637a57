"""The build progress bar: silent for quick builds, a bar on a terminal, log lines only with detailed_build_log."""

from __future__ import annotations

import io
import logging

from ep_trtpy.tuner.progress import DELAY_S, BuildProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _drive(progress: BuildProgress, clock: Clock, n: int = 10, step: float = 0.5) -> None:
    for i in range(n):
        progress(i, n, f"layer{i}: timing 8 candidates")
        clock.t += step
    progress.close()


def test_a_quick_build_prints_nothing():
    clock, out = Clock(), Terminal()
    _drive(BuildProgress("g", stream=out, clock=clock), clock, n=10, step=DELAY_S / 20)
    assert out.getvalue() == ""


def test_a_slow_build_on_a_terminal_draws_one_line_and_finishes_it():
    clock, out = Clock(), Terminal()
    _drive(BuildProgress("g", stream=out, clock=clock), clock, n=10, step=0.5)
    text = out.getvalue()
    frames = text.split("\r")[1:]
    assert frames and text.endswith("\n") and text.count("\n") == 1
    assert "layer4: timing 8 candidates" in frames[0] and " 4/10 layers" in frames[0]  # 2 s passed at layer 4
    assert "[" + "#" * 24 + "]" in frames[-1] and "10/10 layers" in frames[-1] and "done in 5.0 s" in frames[-1]


def test_started_counts_the_time_before_finalize():
    clock, out = Clock(), Terminal()
    _drive(BuildProgress("g", stream=out, clock=clock, started=clock.t - 10), clock, n=3, step=0.01)
    assert " 0/3 layers" in out.getvalue()


def test_not_a_terminal_prints_nothing_and_logs_only_when_detailed(caplog):
    for detailed in (False, True):
        clock, out = Clock(), io.StringIO()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ep_trtpy.tuner"):
            _drive(BuildProgress("g", detailed=detailed, stream=out, clock=clock), clock, n=10, step=0.5)
        assert out.getvalue() == ""
        lines = [r.getMessage() for r in caplog.records]
        if detailed:
            assert lines[0] == "building 'g': layer 5/10: layer4: timing 8 candidates" and len(lines) == 3
        else:
            assert lines == []


class Broken(Terminal):
    def write(self, text: str) -> int:
        raise OSError("stderr is gone")


def test_a_broken_stderr_never_fails_the_build():
    clock = Clock()
    progress = BuildProgress("g", stream=Broken(), clock=clock)
    _drive(progress, clock, n=10, step=0.5)  # raises nothing
    assert not progress.bar and not progress.drawn
