"""Calibration methods against numpy references: min-max, percentile (numpy's exact percentile, within a bin),
entropy (a loop-by-loop reading of TensorRT's published algorithm, and histograms whose answer is known)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ep_trtpy.quantize import methods as m


def _entropy_by_loops(counts: list[int], levels: int = 128, first: int = 128) -> tuple[int, list[float]]:
    """TensorRT's entropy calibration written out with plain loops: (the best i, divergence per candidate)."""
    n = len(counts)
    divs = []
    for i in range(first, n):
        p = [float(c) for c in counts[:i]]
        p[i - 1] += float(sum(counts[i:]))
        if sum(p) == 0:
            divs.append(math.inf)
            continue
        step = i // levels
        groups = [list(range(j * step, (j + 1) * step)) for j in range(levels - 1)]
        groups.append(list(range((levels - 1) * step, i)))
        q = [0.0] * i
        for g in groups:
            total = sum(counts[b] for b in g)
            nonzero = [b for b in g if p[b] != 0]
            for b in nonzero:
                q[b] = total / len(nonzero)
        sp, sq = sum(p), sum(q)
        p = [v / sp for v in p]
        q = [v / sq for v in q] if sq > 0 else [0.0] * i
        if any(pv > 0 and qv <= 0 for pv, qv in zip(p, q)):
            q = [m.SMOOTHING if pv > 0 and qv <= 0 else qv for pv, qv in zip(p, q)]
            s = sum(q)
            q = [v / s for v in q]
        divs.append(sum(pv * math.log(pv / qv) for pv, qv in zip(p, q) if pv > 0))
    low = min(divs)
    best = next(k for k, d in enumerate(divs) if d <= low * (1 + m.TIE) + m.TIE) + first
    return best, divs


def test_minmax_is_the_largest_magnitude():
    r = m.RangeCollector()
    r.add("x", np.array([-3.0, 1.0]))
    r.add("x", np.array([2.5, np.nan, np.inf]))
    assert (r.lo["x"], r.hi["x"], r.amax("x")) == (-3.0, 2.5, 3.0)


@pytest.mark.parametrize("p", [50.0, 99.0, 99.99, 100.0])
def test_percentile_is_within_one_bin_of_numpys(p):
    rng = np.random.default_rng(0)
    x = rng.standard_t(3, size=200_000)
    top = float(np.abs(x).max())
    h = m.Histogram(top)
    h.add(x[:100_000])
    h.add(x[100_000:])
    got = m.percentile_amax(h, p)
    want = float(np.percentile(np.abs(x), p))
    assert want - h.width * 1e-9 <= got <= want + h.width * (1 + 1e-9)
    with pytest.raises(ValueError, match="percentile 0 is outside"):
        m.percentile_amax(h, 0)


def test_entropy_matches_the_loop_reading_of_tensorrts_algorithm():
    rng = np.random.default_rng(1)
    for counts in (np.bincount(np.minimum((np.abs(rng.laplace(size=20000)) * 200).astype(int), 2047),
                               minlength=2048),
                   rng.integers(0, 5, 700) * (rng.random(700) < 0.3)):  # sparse, with ties; fewer bins
        best, divs = _entropy_by_loops(counts.tolist())
        got = m.entropy_divergences(counts)
        assert np.allclose(got, divs, rtol=1e-9, atol=1e-12)
        h = m.Histogram(float(len(counts)), counts.astype(np.int64))
        assert m.entropy_amax(h) == pytest.approx(best + 0.5)


def test_entropy_of_mass_inside_the_first_128_bins_is_bin_128():
    """Every candidate from i = 128 represents such a histogram exactly (KL 0): the first one wins."""
    counts = np.zeros(2048, np.int64)
    counts[[3, 40, 127]] = [1000, 10, 1]
    h = m.Histogram(2.048, counts)
    assert m.entropy_amax(h) == pytest.approx(128.5 * 0.001)


def test_entropy_clips_a_far_outlier_where_minmax_does_not():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(size=100_000), [60.0]])
    h = m.Histogram(float(np.abs(x).max()))
    h.add(x)
    amax = m.entropy_amax(h)
    assert 2.0 < amax < 8.0  # a few sigma, not the outlier at 60
    assert m.minmax_amax(float(x.min()), float(x.max())) == 60.0


def test_entropy_of_a_uniform_histogram_keeps_nearly_the_whole_range():
    h = m.Histogram(1.0, np.full(2048, 10, np.int64))
    assert m.entropy_amax(h) > 0.9


def test_all_zero_tensors_get_amax_zero():
    h = m.Histogram(0.0)
    h.add(np.zeros(10))
    assert m.entropy_amax(h) == 0.0 and m.percentile_amax(h) == 0.0


def test_two_pass_collection_and_method_dispatch():
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=1000) * s for s in (1.0, 3.0)]
    r = m.RangeCollector()
    for x in xs:
        r.add("t", x)
    hists = m.HistogramCollector({"t": r.amax("t")})
    for x in xs:
        hists.add("t", x)
    assert int(hists.hists["t"].counts.sum()) == 2000
    assert m.amax_of("minmax", r, hists, "t") == r.amax("t")
    assert m.amax_of("percentile", r, hists, "t", 50.0) == m.percentile_amax(hists.hists["t"], 50.0)
    assert m.amax_of("entropy", r, hists, "t") == m.entropy_amax(hists.hists["t"])
    with pytest.raises(ValueError, match="unknown calibration method 'kl'"):
        m.check_method("kl")
