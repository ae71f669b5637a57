"""Calibration methods: the amax (symmetric range) of a tensor from what calibration saw of it.

* ``minmax``: amax = max(|min|, |max|) over every calibration batch.
* ``percentile`` (default 99.99): the |x| below which that percent of all values lie, read from a
  :data:`NUM_BINS`-bin histogram of |x| over [0, max|x|] (the upper edge of the first bin where the cumulative
  count reaches the percentile; within one bin width of numpy's exact percentile).
* ``entropy``, as TensorRT's EntropyCalibration2 describes it: the same 2048-bin histogram of |x|; for every
  candidate i from 128 to 2047 bins, P is the first i bins with the counts beyond them added to bin i-1, Q is the
  first i bins (without those outliers) merged into 128 quantization levels (i // 128 bins each, the last level
  taking the remainder) and spread back evenly over the bins where P is non-zero; the candidate minimizing the
  KL divergence KL(P || Q) (both normalized; a Q of zero where P is not gets :data:`SMOOTHING` of the mass) wins,
  the first of equals (within :data:`TIE`), and amax = (i + 0.5) * bin width.

Histograms need the range first: calibration runs the data twice (ranges, then histograms), see
:class:`RangeCollector` and :class:`HistogramCollector`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NUM_BINS = 2048
QUANT_LEVELS = 128
"""Levels of the positive half of int8 (TensorRT's entropy calibration merges the histogram into these)."""
FIRST_CANDIDATE = 128
SMOOTHING = 1e-4
TIE = 1e-12
"""Divergences this close (relative, and absolute) are equal: the first candidate of equals wins, whatever the
order of summation."""
DEFAULT_PERCENTILE = 99.99
METHODS = ("entropy", "percentile", "minmax")


@dataclass
class Histogram:
    """Counts of |x| in NUM_BINS equal bins over [0, top]."""

    top: float
    counts: np.ndarray = field(default_factory=lambda: np.zeros(NUM_BINS, np.int64))

    @property
    def width(self) -> float:
        return self.top / len(self.counts)

    def add(self, x: np.ndarray) -> None:
        a = np.abs(np.asarray(x, dtype=np.float64).reshape(-1))
        a = a[np.isfinite(a)]
        if self.top <= 0 or a.size == 0:
            self.counts[0] += a.size
            return
        idx = np.minimum((a / self.width).astype(np.int64), len(self.counts) - 1)
        self.counts += np.bincount(idx, minlength=len(self.counts)).astype(np.int64)


def minmax_amax(lo: float, hi: float) -> float:
    return float(max(abs(lo), abs(hi)))


def percentile_amax(hist: Histogram, percentile: float = DEFAULT_PERCENTILE) -> float:
    """The upper edge of the first bin where the cumulative count reaches `percentile` percent."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile {percentile!r} is outside (0, 100]")
    total = int(hist.counts.sum())
    if total == 0 or hist.top <= 0:
        return 0.0
    cdf = np.cumsum(hist.counts)
    b = int(np.searchsorted(cdf, total * percentile / 100.0, side="left"))
    return float(min(b + 1, len(hist.counts)) * hist.width)


def _spread(counts: np.ndarray, nonzero: np.ndarray, levels: int) -> np.ndarray:
    """counts merged into `levels` groups (i // levels bins each, the last taking the rest), each group's sum
    spread evenly over its `nonzero` bins."""
    i = len(counts)
    step = i // levels
    group = np.minimum(np.arange(i) // step, levels - 1)
    sums = np.bincount(group, weights=counts, minlength=levels)
    members = np.bincount(group, weights=nonzero.astype(np.float64), minlength=levels)
    per = np.divide(sums, members, out=np.zeros(levels), where=members > 0)
    return np.where(nonzero, per[group], 0.0)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(P || Q) of two non-negative vectors after normalizing each; Q's zeros where P is positive get
    SMOOTHING of Q's mass (then Q is normalized again)."""
    p = p / p.sum()
    qs = q.sum()
    q = q / qs if qs > 0 else np.zeros_like(q)
    hole = (p > 0) & (q <= 0)
    if hole.any():
        q = np.where(hole, SMOOTHING, q)
        q = q / q.sum()
    keep = p > 0
    return float(np.sum(p[keep] * np.log(p[keep] / q[keep])))


def entropy_divergences(counts: np.ndarray, levels: int = QUANT_LEVELS,
                        first: int = FIRST_CANDIDATE) -> np.ndarray:
    """divergence[i - first] for every candidate i in [first, len(counts)) (inf where P is empty)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = len(counts)
    tail = np.concatenate([np.cumsum(counts[::-1])[::-1], [0.0]])  # tail[i] = sum(counts[i:])
    out = np.full(max(n - first, 0), np.inf)
    for i in range(first, n):
        p = counts[:i].copy()
        p[i - 1] += tail[i]
        if p.sum() <= 0:
            continue
        q = _spread(counts[:i], p > 0, levels)
        out[i - first] = kl_divergence(p, q)
    return out


def entropy_amax(hist: Histogram, levels: int = QUANT_LEVELS, first: int = FIRST_CANDIDATE) -> float:
    """TensorRT-style entropy calibration's threshold (module docstring); 0 for an all-zero tensor."""
    if hist.top <= 0 or hist.counts.sum() == 0:
        return 0.0
    div = entropy_divergences(hist.counts, levels, first)
    if div.size == 0 or not np.isfinite(div).any():
        return float(hist.top)
    best = int(np.flatnonzero(div <= div.min() * (1 + TIE) + TIE)[0]) + first
    return float((best + 0.5) * hist.width)


@dataclass
class RangeCollector:
    """Running min and max of every tensor (pass one)."""

    lo: dict[str, float] = field(default_factory=dict)
    hi: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, x: np.ndarray) -> None:
        a = np.asarray(x, dtype=np.float64)
        a = a[np.isfinite(a)]
        if a.size == 0:
            return
        self.lo[name] = min(self.lo.get(name, np.inf), float(a.min()))
        self.hi[name] = max(self.hi.get(name, -np.inf), float(a.max()))

    def amax(self, name: str) -> float:
        return minmax_amax(self.lo.get(name, 0.0), self.hi.get(name, 0.0))


@dataclass
class HistogramCollector:
    """|x| histograms over [0, amax of pass one] (pass two)."""

    tops: dict[str, float]
    hists: dict[str, Histogram] = field(default_factory=dict)

    def add(self, name: str, x: np.ndarray) -> None:
        h = self.hists.get(name)
        if h is None:
            h = self.hists[name] = Histogram(self.tops.get(name, 0.0))
        h.add(x)


def amax_of(method: str, ranges: RangeCollector, hists: HistogramCollector | None, name: str,
            percentile: float = DEFAULT_PERCENTILE) -> float:
    """The amax `method` gives tensor `name`."""
    if method == "minmax":
        return ranges.amax(name)
    if hists is None or name not in hists.hists:
        return ranges.amax(name)
    if method == "percentile":
        return percentile_amax(hists.hists[name], percentile)
    if method == "entropy":
        return entropy_amax(hists.hists[name])
    raise ValueError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")


def needs_histograms(method: str) -> bool:
    return method in ("entropy", "percentile")


def check_method(method: str, percentile: float | None = None) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")
    if percentile is not None and not 0 < float(percentile) <= 100:
        raise ValueError(f"percentile {percentile!r} is outside (0, 100]")

