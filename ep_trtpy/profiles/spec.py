"""Optimization profiles: what ``profile_min_shapes``/``profile_opt_shapes``/``profile_max_shapes`` say.

The syntax is the ORT TensorRT EP's (and trtexec's ``--minShapes``): comma-separated ``NAME:DIMxDIMx...`` items,
for example ``input_ids:1x8,attention_mask:1x8``. A name given again starts the next profile: the k-th occurrence
of a name belongs to profile k, so ``x:1x8,x:1x129`` in the three options gives two profiles for ``x``.

Differences from ORT, on purpose and only where ORT would reject or misread the text: whitespace around items and
dimensions is ignored, and the name ends at the *last* ``:`` (ORT cuts at the first), so TensorFlow-style names
such as ``input:0:1x128`` work. As in ORT, a shape has at least one dimension (a scalar has nothing to range
over: leave it out), and every dimension is a non-negative integer.

Pure Python, no GPU: the builder and the host call :func:`parse_profiles` once per session (through
``Options.profiles``) and :mod:`ep_trtpy.profiles.policy` per run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Shape = tuple[int, ...]
Range = tuple[Shape, Shape, Shape]  # (min, opt, max) of one input

OPTIONS = ("profile_min_shapes", "profile_opt_shapes", "profile_max_shapes")


class ProfileError(ValueError):
    """A profile option that does not parse or does not agree with the other two (one sentence naming both)."""


def format_shape(shape: Iterable[int]) -> str:
    """``(1, 128)`` -> ``1x128``; a scalar is ``()``."""
    text = "x".join(str(d) for d in shape)
    return text or "()"


def format_shapes(shapes: Mapping[str, Iterable[int]]) -> str:
    """``{"input_ids": (1, 500)}`` -> ``input_ids:1x500``, in the mapping's order."""
    return ",".join(f"{name}:{format_shape(shape)}" for name, shape in shapes.items())


@dataclass(frozen=True)
class Profile:
    """One optimization profile: for each input it names, the (min, opt, max) shapes.

    An engine built for a profile serves every shape between min and max in every dimension (kernels valid for
    the range, memory planned for max) and is tuned at opt. ``bucket`` marks a profile made by the bucketing
    policy (:func:`ep_trtpy.profiles.policy.bucket`) rather than given by the user; its opt is the first shape seen.
    """

    index: int
    ranges: Mapping[str, Range]
    bucket: bool = False

    def __hash__(self) -> int:
        return hash((self.index, self.key, self.bucket))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.ranges)

    @property
    def key(self) -> tuple[tuple[str, Shape, Shape], ...]:
        """What the engine serves: (name, min, max) per input, sorted by name. Shapes in the same profile (or the
        same bucket) have equal keys; opt is left out because it changes only how the engine is tuned."""
        return tuple(sorted((name, lo, hi) for name, (lo, _, hi) in self.ranges.items()))

    def engine_key_items(self) -> dict[str, list[list[int]]]:
        """The profile's part of an engine-cache key: min and max per input, and opt for a user's profile (a
        bucket's opt is whichever shape arrived first, so keying on it would miss the cache on every order)."""
        return {name: [list(lo), list(hi)] if self.bucket else [list(lo), list(opt), list(hi)]
                for name, (lo, opt, hi) in sorted(self.ranges.items())}

    def contains(self, shapes: Mapping[str, Iterable[int]]) -> bool:
        """True when every input this profile names is in ``shapes`` with the same rank and each dimension within
        [min, max]. Inputs the profile does not name are not checked."""
        for name, (lo, _, hi) in self.ranges.items():
            shape = shapes.get(name)
            if shape is None:
                return False
            shape = tuple(shape)
            if len(shape) != len(lo) or not all(a <= d <= b for a, d, b in zip(lo, shape, hi)):
                return False
        return True

    def min_shapes(self) -> dict[str, Shape]:
        return {name: r[0] for name, r in self.ranges.items()}

    def opt_shapes(self) -> dict[str, Shape]:
        return {name: r[1] for name, r in self.ranges.items()}

    def max_shapes(self) -> dict[str, Shape]:
        return {name: r[2] for name, r in self.ranges.items()}

    def opt(self, names: Iterable[str]) -> tuple[Shape, ...]:
        """The opt shapes of ``names``, in that order (a name the profile does not give is a KeyError)."""
        return tuple(self.ranges[name][1] for name in names)

    def describe(self) -> str:
        """``profile 0: input_ids 1x8..1x384 (opt 1x128), attention_mask 1x8..1x384 (opt 1x128)``."""
        parts = []
        for name, (lo, opt, hi) in self.ranges.items():
            if lo == hi:
                parts.append(f"{name} {format_shape(lo)}")
            else:
                parts.append(f"{name} {format_shape(lo)}..{format_shape(hi)} (opt {format_shape(opt)})")
        head = "bucket" if self.bucket else f"profile {self.index}"
        return f"{head}: {', '.join(parts)}"


def parse_shapes(text: str) -> list[tuple[str, Shape]]:
    """One profile option's text as (name, shape) items in the order given. ValueError names the bad item."""
    items = []
    for raw in str(text).split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, dims = item.rpartition(":")
        name, dims = name.strip(), dims.strip()
        if not sep:
            raise ValueError(f"item '{item}' has no ':' (write NAME:DIMxDIM, e.g. input_ids:1x128)")
        if not name:
            raise ValueError(f"item '{item}' has no input name before the ':'")
        if not dims:
            raise ValueError(f"input '{name}' has no dimensions in '{item}' (a scalar has nothing to range over: "
                             f"leave it out)")
        shape = []
        for dim in dims.split("x"):
            dim = dim.strip()
            if not dim.isdigit() or not dim.isascii():
                raise ValueError(f"input '{name}' has the dimension '{dim}' in '{item}', which is not a "
                                 f"non-negative integer")
            shape.append(int(dim))
        items.append((name, tuple(shape)))
    return items


def canonical(text: str) -> str:
    """One profile option's text, checked and written without spaces (what Options keeps)."""
    return ",".join(f"{name}:{format_shape(shape)}" for name, shape in parse_shapes(text))


def _by_profile(option: str, items: list[tuple[str, Shape]]) -> dict[str, list[Shape]]:
    """name -> its shapes, the k-th for profile k; every name must appear equally often."""
    grouped: dict[str, list[Shape]] = {}
    for name, shape in items:
        grouped.setdefault(name, []).append(shape)
    counts = {name: len(shapes) for name, shapes in grouped.items()}
    first = next(iter(counts), None)
    for name, n in counts.items():
        if n != counts[first]:
            raise ProfileError(f"{option}: input '{name}' has {_times(n)} but input '{first}' has "
                               f"{_times(counts[first])}; every input needs one shape per profile")
    return grouped


def _times(n: int) -> str:
    return f"{n} shape" if n == 1 else f"{n} shapes"


def _compare(option: str, name: str, k: int, shape: Shape, other_option: str, other: Shape, below: bool) -> None:
    """Raise when ``shape`` (of ``option``) is below (or above) ``other`` (of ``other_option``) in a dimension."""
    for axis, (d, o) in enumerate(zip(shape, other)):
        if (d < o) if below else (d > o):
            where = "below" if below else "above"
            raise ProfileError(f"{option}: input '{name}' of profile {k} is {format_shape(shape)}, {where} its "
                               f"{other_option} {format_shape(other)} in dimension {axis}")


def _same_inputs(option: str, table: dict[str, list[Shape]], lows: dict[str, list[Shape]]) -> None:
    """Raise unless ``option`` names the inputs of profile_min_shapes, each as many times."""
    for name in lows:
        if name not in table:
            raise ProfileError(f"{option} does not name input '{name}', which profile_min_shapes names (every "
                               f"input needs a min, an opt and a max shape)")
    for name, shapes in table.items():
        if name not in lows:
            raise ProfileError(f"{option}: input '{name}' is not in profile_min_shapes (which names "
                               f"{', '.join(lows)})")
        if len(shapes) != len(lows[name]):
            raise ProfileError(f"{option}: input '{name}' has {_times(len(shapes))} but its profile_min_shapes "
                               f"has {_times(len(lows[name]))}; every input needs one shape per profile")


def parse_profiles(min_text: str, opt_text: str, max_text: str) -> tuple[Profile, ...]:
    """The profiles the three options describe; () when all three are empty.

    Raises :class:`ProfileError`, one sentence naming the option, the input and the text, when the options are
    not given together, do not parse, name different inputs, give different numbers of profiles or ranks, or
    break min <= opt <= max in a dimension.
    """
    texts = dict(zip(OPTIONS, (str(min_text or ""), str(opt_text or ""), str(max_text or ""))))
    given = [o for o, t in texts.items() if t.strip()]
    if not given:
        return ()
    if len(given) != len(OPTIONS):
        missing = [o for o in OPTIONS if o not in given]
        raise ProfileError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: "
                           f"profile_min_shapes, profile_opt_shapes and profile_max_shapes go together "
                           f"(given: {', '.join(f'{o}={texts[o].strip()!r}' for o in given)})")
    grouped = {}
    for option, text in texts.items():
        try:
            items = parse_shapes(text)
        except ValueError as e:
            raise ProfileError(f"{option}: {e}") from None
        if not items:
            raise ProfileError(f"{option}: {text.strip()!r} names no input (write NAME:DIMxDIM, e.g. "
                               f"input_ids:1x128)")
        grouped[option] = _by_profile(option, items)
    lows, opts, highs = (grouped[o] for o in OPTIONS)
    _same_inputs("profile_opt_shapes", opts, lows)
    _same_inputs("profile_max_shapes", highs, lows)
    profiles = []
    for k in range(len(next(iter(lows.values())))):
        ranges = {}
        for name in lows:
            lo, opt, hi = lows[name][k], opts[name][k], highs[name][k]
            for option, shape in (("profile_opt_shapes", opt), ("profile_max_shapes", hi)):
                if len(shape) != len(lo):
                    raise ProfileError(f"{option}: input '{name}' of profile {k} is {format_shape(shape)} (rank "
                                       f"{len(shape)}), but its profile_min_shapes {format_shape(lo)} has rank "
                                       f"{len(lo)}")
            _compare("profile_opt_shapes", name, k, opt, "profile_min_shapes", lo, below=True)
            _compare("profile_opt_shapes", name, k, opt, "profile_max_shapes", hi, below=False)
            ranges[name] = (lo, opt, hi)
        profiles.append(Profile(k, ranges))
    return tuple(profiles)
