"""Which engine serves a run: profile selection, the bucketing policy without profiles, and the sentences the host
logs or raises when shapes and profiles disagree.

Declared input shapes (what a fused subgraph says about its inputs) hold an int for a static dimension and a
str (a symbolic name), None or a negative int for a dynamic one. Run shapes are tuples of ints.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from ep_trtpy.profiles.spec import Profile, Shape, format_shape, format_shapes

Dim = int | str | None
Declared = Sequence[tuple[str, Sequence[Dim]]]  # (input name, declared shape), in subgraph-input order


def is_dynamic(dim: Dim) -> bool:
    return not isinstance(dim, int) or dim < 0


def _format_declared(shape: Sequence[Dim]) -> str:
    return "x".join("?" if d is None else str(d) for d in shape) or "()"


def select(profiles: Iterable[Profile], shapes: Mapping[str, Iterable[int]]) -> Profile | None:
    """The first profile that contains ``shapes`` (see :meth:`Profile.contains`), or None."""
    return next((p for p in profiles if p.contains(shapes)), None)


def check_against_inputs(profiles: Iterable[Profile], inputs: Declared) -> list[str]:
    """Sentences for what makes a profile unusable for a subgraph with these declared inputs: a rank that differs
    from the profile's, or a static dimension outside the profile's [min, max]. Inputs a profile does not name are
    not a problem here (a fused subgraph may take intermediate tensors; see :func:`unnamed_inputs`). The caller
    decides whether to log or raise."""
    problems = []
    declared = dict(inputs)
    for profile in profiles:
        for name, (lo, _, hi) in profile.ranges.items():
            shape = declared.get(name)
            if shape is None:
                continue
            span = f"{format_shape(lo)}..{format_shape(hi)}"
            if len(shape) != len(lo):
                problems.append(f"profile {profile.index} gives input '{name}' rank {len(lo)} ({span}), but the "
                                f"subgraph's input '{name}' has rank {len(shape)} ({_format_declared(shape)})")
                continue
            for axis, (d, a, b) in enumerate(zip(shape, lo, hi)):
                if not is_dynamic(d) and not a <= d <= b:
                    problems.append(f"profile {profile.index} gives dimension {axis} of input '{name}' the range "
                                    f"{a}..{b}, which excludes its static size {d} ({_format_declared(shape)})")
    return problems


def unknown_names(profiles: Sequence[Profile], model_inputs: Iterable[str]) -> list[str]:
    """Sentences for the names the profiles give that are no input of the model (a typo, or a model exported
    with other names), with the nearest input name when one is close; the caller decides to log or raise."""
    known = list(model_inputs)
    names = profiles[0].names if profiles else ()
    out = []
    for name in names:
        if name in known:
            continue
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        out.append(f"profile_min_shapes names input '{name}', which the model does not have{hint}; its inputs "
                   f"are {', '.join(known) or 'none'}")
    return out


def unnamed_inputs(profiles: Iterable[Profile], inputs: Declared) -> list[str]:
    """The inputs with a dynamic dimension that some profile does not name, in subgraph-input order: their
    ranges must come from elsewhere (the bucketing policy), or no profile can serve the subgraph alone."""
    profiles = list(profiles)
    return [name for name, shape in inputs
            if any(is_dynamic(d) for d in shape) and any(name not in p.ranges for p in profiles)]


def _bucket_range(value: int) -> tuple[int, int]:
    """The power-of-two bucket of one dimension: (min, max) with max the smallest power of two >= value."""
    if value <= 1:
        return value, value
    hi = 1 << (value - 1).bit_length()
    return hi // 2 + 1, hi


def bucket(inputs: Declared, shapes: Mapping[str, Iterable[int]]) -> Profile:
    """The profile the bucketing policy gives a run with ``shapes`` of a subgraph without user profiles.

    Policy: a dimension that is dynamic in the declared shape, seen with value v, is served by the bucket
    (max/2, max] with max the smallest power of two >= v (0 and 1 are buckets of their own: 2 -> 2..2,
    3 -> 3..4, 100 -> 65..128, 384 -> 257..512); opt is v itself, so the first shape seen in a bucket is where the
    engine's tactics are tuned. Static dimensions are fixed (min = opt = max). Shapes in the same buckets get
    profiles with equal :attr:`Profile.key`, which the host uses to find the engine.

    Why: with one engine per shape a stream of sequence lengths 8..384 builds an engine for every distinct length
    (55 of 60 requests in issue 8's measurement); with buckets it builds at most 7 (5..8, 9..16, ..., 257..512),
    each serving every length in its bucket; the price is memory planned for the bucket's max (at most twice the
    length seen) and tactics tuned for the first length rather than each one.
    """
    ranges = {}
    for name, declared in inputs:
        if name not in shapes:
            raise KeyError(f"no run shape for input '{name}' (shapes given for: {', '.join(shapes) or 'none'})")
        shape: Shape = tuple(int(d) for d in shapes[name])
        if declared is None:  # unknown rank: every dimension is dynamic
            declared = (None,) * len(shape)
        if len(shape) != len(declared):
            raise ValueError(f"input '{name}' is {format_shape(shape)} at run time but declared with rank "
                             f"{len(declared)} ({_format_declared(declared)})")
        lo, hi = [], []
        for d, v in zip(declared, shape):
            a, b = _bucket_range(v) if is_dynamic(d) else (v, v)
            lo.append(a)
            hi.append(b)
        ranges[name] = (tuple(lo), shape, tuple(hi))
    return Profile(-1, ranges, bucket=True)


def _outside(profiles: Sequence[Profile], shapes: Mapping[str, Iterable[int]]) -> str:
    described = "; ".join(p.describe() for p in profiles)
    return f"input shapes {format_shapes(shapes)} are outside every optimization profile ({described})"


def strict_error(profiles: Sequence[Profile], shapes: Mapping[str, Iterable[int]]) -> str:
    """The one-sentence error of profile_strict=1 for shapes no profile contains, naming the shapes and every
    profile."""
    return (f"{_outside(profiles, shapes)}; widen profile_min_shapes/profile_max_shapes to cover them or set "
            f"profile_strict=0 to build an engine for them")


def outside_warning(profiles: Sequence[Profile], shapes: Mapping[str, Iterable[int]]) -> str:
    """The log line of profile_strict=0 when shapes outside every profile get an engine of their own."""
    return f"{_outside(profiles, shapes)}; building an engine for them (profile_strict=1 makes this an error)"
