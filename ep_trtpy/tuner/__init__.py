"""The auto-tuner: tactic choice per layer, the persistent timing cache, and the build progress bar.

* :mod:`ep_trtpy.tuner.tuner`: :class:`Tuner`, called by ``builder/build.py:instantiate`` around the native
  engine's finalize (cached tactics in, new timings out), and the process-wide counters :func:`stats`.
* :mod:`ep_trtpy.tuner.timing_cache`: the JSON timing cache file (one per library versions + GPU), atomic merging
  writes safe with several processes, never a crash on a bad file.
* :mod:`ep_trtpy.tuner.signature`: what a timing depends on (kernel, parameters, operand dtypes/shapes/alignment,
  optimization level).
* :mod:`ep_trtpy.tuner.progress`: the progress bar on stderr for builds longer than two seconds.

Options: ``builder_optimization_level`` (0-5), ``timing_cache_enable``, ``timing_cache_path``,
``detailed_build_log`` (ep_trtpy/options.py).
"""

from ep_trtpy.tuner.timing_cache import Entry, Environment, TimingCache, current_environment
from ep_trtpy.tuner.tuner import Tuner, reset_stats, stats

__all__ = ["Entry", "Environment", "TimingCache", "Tuner", "current_environment", "reset_stats", "stats"]
