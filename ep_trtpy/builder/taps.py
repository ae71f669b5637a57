"""Taps: read chosen intermediate tensors of a built engine without changing what the engine computes.

The per-layer debugger (``ep-trtpy compare --mark-all``) compares what an engine materializes, layer by layer,
with ORT's CPU provider. Marking values as graph outputs before the build would change the engine (fusions stop at
a marked value, a channels-last region that must hand out NCHW copies may fall back to NCHW), so taps are added
after the passes, to what was built:

    graph = tap_graph(art.graph, names)            # reference backend: the optimized graph, more outputs
    plan, taps = tap_plan(art.plan, names)         # cuda: the same layers, tactics and workspaces; the tapped
    outputs = run(plan, weights, inputs)           #   activations become extra engine outputs (re-planned arena)
    values = read_taps(taps, inputs, outputs, weights)

A tap of a view (Reshape, Squeeze, a slice of a Concat) reads the bytes of the tensor it views at its offset, on
the host. Values keep the engine's dtype (float16 in an FP16 engine) and layout (NHWC inside a channels-last
region): the caller converts them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ep_trtpy.builder.memory_plan import plan_memory
from ep_trtpy.engine.plan import Plan, TensorSpec
from graph_partitioner.ir import Graph, np_dtype


class TapError(ValueError):
    """A tap names a value the engine does not hold (the message names it)."""


def tap_graph(graph: Graph, names: Iterable[str]) -> Graph:
    """A copy of the optimized `graph` whose outputs are its own followed by the values `names` (in that order).
    No pass runs again: the nodes are those of the engine."""
    g = graph.copy()
    for name in names:
        v = g.values.get(name)
        if v is None or (v.producer is None and v.const is None and v not in g.inputs):
            raise TapError(f"value '{name}' is not computed by graph '{graph.name}'")
        g.outputs.append(v)
    return g


@dataclass(frozen=True)
class Tap:
    """Where a tapped value lives after a run: ``home`` is 'output', 'input' or 'weight', ``index`` the engine
    output or input slot (unused for weights), and the value is ``shape``/``dtype`` at byte ``offset`` there."""

    name: str
    home: str
    index: int
    offset: int
    dtype: int
    shape: tuple[int, ...]


def _base(plan: Plan, t: TensorSpec) -> tuple[TensorSpec, int]:
    """The tensor `t` views (itself when it is no view) and the byte offset of `t` in it."""
    offset = 0
    while t.kind == "alias":
        offset += t.offset
        t = plan.tensors[t.index]
    return t, offset


def tap_plan(plan: Plan, names: Sequence[str]) -> tuple[Plan, list[Tap]]:
    """A copy of `plan` in which the tensors of `names` can be read after a run: activations become extra engine
    outputs (slots after the plan's own), so nothing reuses their memory; everything else (layers, parameters,
    tactics, tactic states, workspaces) is the plan's. The arena is planned again for the remaining activations."""
    out = copy.deepcopy(plan)
    by_name: dict[str, TensorSpec] = {}
    for t in out.tensors:
        by_name.setdefault(t.name, t)
    taps: list[Tap] = []
    for name in names:
        t = by_name.get(name)
        if t is None:
            raise TapError(f"value '{name}' has no tensor in the engine plan (fused away, or never computed)")
        base, offset = _base(out, t)
        if base.kind == "activation":
            base.kind, base.index, base.offset = "output", out.n_outputs, 0
            out.n_outputs += 1
        home = {"output": "output", "input": "input", "weight": "weight"}[base.kind]
        index = base.index if home != "weight" else -1
        offset += base.offset if home == "weight" else 0
        taps.append(Tap(name, home, index, offset, t.dtype, tuple(t.shape)))
    plan_memory(out)
    return out, taps


def read_taps(taps: Sequence[Tap], inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray],
              weights: bytes) -> dict[str, np.ndarray]:
    """The tapped values, by name, from the host copies of a run's inputs and outputs (engine slot order) and the
    weights blob."""
    values: dict[str, np.ndarray] = {}
    for tap in taps:
        if tap.home == "weight":
            raw = memoryview(weights)
        else:
            src = (outputs if tap.home == "output" else inputs)[tap.index]
            raw = memoryview(np.ascontiguousarray(src).reshape(-1).view(np.uint8))
        dt = np_dtype(tap.dtype)
        count = int(np.prod(tap.shape, dtype=np.int64))
        end = tap.offset + count * dt.itemsize
        if end > len(raw):
            raise TapError(f"tap '{tap.name}' reaches byte {end} of a {tap.home} of {len(raw)} bytes")
        values[tap.name] = np.frombuffer(raw[tap.offset:end], dtype=dt).reshape(tap.shape).copy()
    return values
