"""The tuner: tactic choice around the native engine's finalize, with the timing cache.

    tuner = Tuner.for_build(options, device, label)      # opens the timing cache when enabled
    tuner.apply(plan)                                    # cached tactics into the plan's untimed layers
    engine = runtime.build_engine(plan, weights, ordinal, tuning_level=tuner.level, progress=tuner.progress)
    tuner.record(plan, engine)                           # new timings into the cache; tactic_ms into layer meta

The native kernels time their candidates themselves in ``prepare`` (cuDNN engine configurations, cuBLASLt
heuristic candidates, our kernels' variants), as many as the optimization level asks for
(``Engine.set_tuning_level``), and report them through ``Engine.layer_timings()``. A layer whose tactic comes
with the plan (``tactic_name``, or ``tactic >= 0``: from an engine file or the timing cache) is not timed. So a
build whose every timed layer is in the timing cache times nothing (the native counter ``tactics_timed`` stays
0), and an engine loaded from the engine cache times nothing either.

Per layer, after finalize: ``meta["tactic_ms"]`` is the chosen tactic's time (from this finalize or the timing
cache) and ``meta["tactic_source"]`` says where the choice came from (``timed``, ``timing cache``); ``ep-trtpy
inspect`` shows both. ``detailed_build_log`` logs every timed layer's candidates with their times and the winner.

The reference backend has no native engine and no tactics: the builder does not call the tuner for it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ep_trtpy.engine.artifact import Device
from ep_trtpy.engine.plan import LayerSpec, Plan
from ep_trtpy.options import Options
from ep_trtpy.tuner.progress import BuildProgress
from ep_trtpy.tuner.signature import layer_signature, signature_key
from ep_trtpy.tuner.timing_cache import Entry, TimingCache, current_environment

log = logging.getLogger("ep_trtpy.tuner")

DEFAULT_LEVEL = 3

_stats_lock = threading.Lock()
_stats = {"timing_cache_hits": 0, "timing_cache_misses": 0, "timing_cache_writes": 0}


def stats() -> dict[str, int]:
    """Process-wide tuner counters, with the timing cache on: layers whose tactic came from it (hits), layers that
    were timed instead (misses), entries written to its files (writes)."""
    with _stats_lock:
        return dict(_stats)


def reset_stats() -> None:
    with _stats_lock:
        for k in _stats:
            _stats[k] = 0


def _count(name: str, n: int) -> None:
    if n:
        with _stats_lock:
            _stats[name] += n


def _untimed(layer: LayerSpec) -> bool:
    return layer.tactic < 0 and not layer.tactic_name


def _fmt_ms(ms: float) -> str:
    return f"{ms:.4f} ms" if math.isfinite(ms) else "failed"


class Tuner:
    """Tactic choice for one engine build (see the module docstring)."""

    def __init__(self, level: int = DEFAULT_LEVEL, cache: TimingCache | None = None, detailed: bool = False,
                 progress: BuildProgress | None = None) -> None:
        self.level = int(level)
        self.cache = cache
        self.detailed = detailed
        self.progress = progress
        self.from_cache: set[int] = set()  # layer indices whose tactic apply() took from the cache

    @classmethod
    def for_build(cls, options: Options, device: Device, label: str = "engine", started: float | None = None,
                  versions: Mapping[str, Any] | None = None) -> Tuner:
        """The tuner for a build with `options` on `device` (its name and compute capability). The timing cache
        file is read by :meth:`apply`, only when a layer needs a tactic. `versions` overrides the native library
        versions (tests)."""
        level, detailed = options.builder_optimization_level, options.detailed_build_log
        cache = None
        if options.timing_cache_enable:
            env = current_environment(device.name, device.cc, versions)
            cache = TimingCache(options.timing_cache_dir, env)
        return cls(level, cache, detailed, BuildProgress(label, detailed, started=started))

    # ------------------------------------------------------------------------------------ before finalize --
    def apply(self, plan: Plan) -> int:
        """Give every untimed layer of `plan` the tactic the timing cache holds for its signature; returns how
        many layers got one. Layers that already carry a tactic are left alone."""
        self.from_cache = set()
        if self.cache is None or self.level == 0 or not any(_untimed(lay) for lay in plan.layers):
            return 0
        self.cache.load()
        for i, layer in enumerate(plan.layers):
            if not _untimed(layer):
                continue
            entry = self.cache.get(signature_key(layer_signature(plan, layer, self.level)))
            if entry is None:
                continue
            layer.tactic, layer.tactic_name = entry.tactic, entry.tactic_name
            layer.meta["tactic_ms"] = entry.ms
            layer.meta["tactic_source"] = "timing cache"
            self.from_cache.add(i)
            if self.detailed:
                log.info("layer %d '%s' (%s): tactic %s (%s) from the timing cache", i, layer.name, layer.kernel,
                         entry.tactic_name or entry.tactic, _fmt_ms(entry.ms))
        _count("timing_cache_hits", len(self.from_cache))
        return len(self.from_cache)

    # ------------------------------------------------------------------------------------- after finalize --
    def record(self, plan: Plan, engine: Any) -> int:
        """Read the finalized `engine`'s choices and timings into `plan` (tactic, tactic_name, meta) and the timing
        cache (written at once); returns how many entries were written."""
        tactics = [int(t) for t in engine.tactics()] if hasattr(engine, "tactics") else []
        names = [str(n) for n in engine.tactic_names()] if hasattr(engine, "tactic_names") else []
        timings = list(engine.layer_timings()) if hasattr(engine, "layer_timings") else []
        misses = 0
        for i, layer in enumerate(plan.layers):
            if i < len(tactics):
                layer.tactic = tactics[i]
            if i < len(names):
                layer.tactic_name = names[i]
            cands = [(str(n), float(ms)) for n, ms in timings[i]] if i < len(timings) else []
            if cands:
                self._timed(plan, i, layer, cands)
                misses += 1
        if self.cache is not None:
            _count("timing_cache_misses", misses)
        written = self.cache.save() if self.cache is not None else 0
        _count("timing_cache_writes", written)
        return written

    def _timed(self, plan: Plan, i: int, layer: LayerSpec, cands: Sequence[tuple[str, float]]) -> None:
        ms = next((t for n, t in cands if layer.tactic_name and n == layer.tactic_name),
                  min((t for _, t in cands), default=math.inf))
        layer.meta["tactic_ms"] = ms if math.isfinite(ms) else None
        layer.meta["tactic_source"] = "timed"
        if self.detailed:
            log.info("layer %d '%s' (%s): %d candidates: %s -> %s (%s)", i, layer.name, layer.kernel, len(cands),
                     ", ".join(f"{n} {_fmt_ms(t)}" for n, t in sorted(cands, key=lambda c: c[1])),
                     layer.tactic_name or layer.tactic, _fmt_ms(ms))
        if self.cache is not None and self.level > 0 and math.isfinite(ms):
            sig = layer_signature(plan, layer, self.level)
            self.cache.put(signature_key(sig), Entry(sig, layer.tactic, layer.tactic_name, ms, list(cands)))

