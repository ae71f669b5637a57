"""Which tuned engine a program's input shapes belong to: optimization profiles and power-of-two buckets.

A program (one fused subgraph) with dynamic inputs groups the shapes it sees into *families*. With
``profile_min_shapes`` ... the families are the profiles that name every dynamic input of the program (a fused
subgraph that starts inside the model takes inputs no profile names: it is bucketed instead, with a warning).
Without profiles, each power-of-two bucket of the dynamic dimensions is a family (ep_trtpy/profiles/policy.py).

A family has one tuned engine, at its ``opt`` shapes (the profile's opt, or the first shapes seen in a bucket);
the host builds it like any engine and makes the family's other shapes from it (ep_trtpy/builder/specialize.py).
Shapes outside every profile get an engine of their own (a warning, once per shape), or with ``profile_strict=1``
an error naming the profiles. The :class:`ConstMemo` of weight transforms lives here too: it is shared by every
build of the program.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from ep_trtpy.builder.weight_reuse import ConstMemo
from ep_trtpy.options import Options
from ep_trtpy.profiles import Profile, bucket, check_against_inputs, outside_warning, select, strict_error
from graph_partitioner.ir import Graph, is_static

log = logging.getLogger("ep_trtpy")

Shapes = tuple[tuple[int, ...], ...]  # one shape per program input, in input order


@dataclass
class Family:
    key: tuple[Any, ...]  # ("profile", index) or ("bucket", the bucket's key)
    opt: Shapes  # the shapes of the family's tuned engine
    base: Any = None  # the WeightBase of that engine (cuda), made once by the host


class Families:
    """The families of one program (thread-safe)."""

    def __init__(self, graph: Graph, options: Options, label: str) -> None:
        self.graph = graph
        self.options = options
        self.label = label
        self.memo = ConstMemo()
        self.profiles: tuple[Profile, ...] = ()
        self._families: dict[tuple[Any, ...], Family] = {}
        self._outside: set[Shapes] = set()
        self._lock = threading.Lock()
        if options.profiles:
            self._adopt_profiles(tuple(options.profiles))

    def _adopt_profiles(self, profiles: tuple[Profile, ...]) -> None:
        dynamic = [v.name for v in self.graph.inputs if not is_static(v.shape)]
        named = tuple(p for p in profiles if all(n in p.ranges for n in dynamic))
        if not named:
            log.warning("TrtPyExecutionProvider: the optimization profiles name none of the dynamic inputs %s of "
                        "fused subgraph '%s' (it starts inside the model); its shapes are bucketed instead",
                        ", ".join(dynamic), self.label)
            return
        problems = check_against_inputs(named, [(v.name, v.shape) for v in self.graph.inputs])
        if problems:
            raise ValueError(f"TrtPyExecutionProvider: fused subgraph '{self.label}': {problems[0]}")
        self.profiles = named

    def opt_shapes(self, profile: Profile) -> Shapes:
        """A profile's opt shapes in program-input order (inputs it does not name are static)."""
        opt = profile.opt_shapes()
        return tuple(tuple(opt[v.name]) if v.name in opt else tuple(v.shape)  # type: ignore[arg-type]
                     for v in self.graph.inputs)

    def family_of(self, shapes: Shapes) -> Family | None:
        """The family of these shapes, or None for an engine of exactly these shapes (outside every profile
        without profile_strict: logged once per shape). Raises ValueError with profile_strict=1."""
        named = {v.name: s for v, s in zip(self.graph.inputs, shapes)}
        if self.profiles:
            profile = select(self.profiles, named)
            if profile is None:
                if self.options.profile_strict:
                    raise ValueError(f"TrtPyExecutionProvider: {strict_error(self.profiles, named)}")
                with self._lock:
                    first = shapes not in self._outside
                    self._outside.add(shapes)
                if first:
                    log.warning("TrtPyExecutionProvider: fused subgraph '%s': %s", self.label,
                                outside_warning(self.profiles, named))
                return None
            key: tuple[Any, ...] = ("profile", profile.index)
            opt = self.opt_shapes(profile)
        else:
            b = bucket([(v.name, v.shape) for v in self.graph.inputs], named)
            key, opt = ("bucket", b.key), shapes  # the first shapes seen in a bucket are where it is tuned
        with self._lock:
            return self._families.setdefault(key, Family(key, opt))
