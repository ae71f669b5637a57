"""Where a value's error comes from, for ``ep-trtpy compare --mark-all`` (``_mark_all.py``): error a layer
introduces, or error its inputs bring from earlier layers.

A value compared with the reference run carries both: a layer fed slightly wrong inputs passes the error on, and
some layers amplify it (a softmax over large logits sharpens small differences) without computing anything
wrong. So when a value fails against the reference run, the layer that computes it (with the copies that only
cast or transpose its result) is evaluated once more on the numpy reference backend, as the optimized graph
holds it, twice:

* on the engine's own inputs, tapped from the same run as its output. ``introduced`` compares the engine's output
  with that: the error of the engine's arithmetic in this layer alone;
* on the reference run's values of the same inputs, in float32 (16-bit constants widened), the result rounded
  to the dtype the engine stores. ``as_built`` compares that with the reference run: the layer as the passes
  built it against the model's nodes (a wrong rewrite, a wrong reference, a weight or an output that 16 bits
  cannot hold).

``inherited`` compares the two evaluations (the first with the reference run where the second cannot be made):
the error the engine's inputs bring, as the layer passes it on. A layer is blamed when ``introduced`` or ``as_built`` fails the value's tolerance; when a
measure cannot be taken (an input the engine does not hold, or that the model does not name), the note says
why and the value's own comparison decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graph_partitioner.ir import BFLOAT16, FLOAT, FLOAT16, Graph, Node, Value, np_dtype

HALF = (FLOAT16, BFLOAT16)


def chain(v: Value, suffixes: Sequence[str]) -> list[Node]:
    """The nodes that compute `v`, in execution order: its producer and, where `v` is a converted copy that took
    over the name (a float32 cast or an NCHW transpose of ``<v>_fp16`` / ``<v>_nhwc``), the layer behind it."""
    copies = {v.name + s for s in suffixes}
    nodes: list[Node] = []
    node = v.producer
    while node is not None:
        nodes.append(node)
        src = [x for x in node.inputs if x is not None and x.const is None]
        if len(src) != 1 or src[0].name not in copies or src[0].producer is None:
            break
        node = src[0].producer
    return nodes[::-1]


def layer_graph(graph: Graph, nodes: list[Node], value: str) -> Graph:
    """The nodes alone, reading their outside inputs as graph inputs, with `value` as the only output."""
    g = graph.subgraph(nodes, name=f"layer of {value}")
    g.outputs = [g.values[value]]
    return g


def model_value(v: Value, ref: dict[str, np.ndarray], channels_last: set[str],
                suffixes: Sequence[str]) -> np.ndarray | None:
    """The reference run's value of the engine value `v`, in the engine's layout: its own, or that of the value a
    converted copy (``<v>_fp16``, ``<v>_nhwc``, ...) was made from; None when the model has no such value. A 4-D
    value is transposed to NHWC when only that shape fits `v`, or, where both fit, when a name on the way is held
    channels-last."""
    base, flagged = v.name, v.name in channels_last
    while base not in ref:
        cut = next((s for s in suffixes if base.endswith(s)), None)
        if cut is None:
            return None
        base = base[:-len(cut)]
        flagged |= cut == "_nhwc" or base in channels_last
    arr = np.asarray(ref[base])
    if arr.ndim != 4 or v.shape is None:
        return arr
    nhwc_shape = tuple(arr.shape[i] for i in (0, 2, 3, 1))
    fits_nchw, fits_nhwc = tuple(v.shape) == arr.shape, tuple(v.shape) == nhwc_shape
    if fits_nhwc and (flagged or not fits_nchw):
        return np.ascontiguousarray(arr.transpose(0, 2, 3, 1))
    return arr


def widened(g: Graph) -> Graph:
    """`g` with its 16-bit float inputs and constants in float32 (the evaluation from the reference's values)."""
    w = g.copy()
    for v in w.values.values():
        if v.dtype in HALF and (v in w.inputs or v.const is not None):
            v.dtype = FLOAT
            if v.const is not None:
                v.const = np.asarray(v.const).astype(np.float32)
    return w


def storage_dtype(g: Graph) -> np.dtype:
    """The narrowest float dtype among the layer's outputs: where the engine stores the result."""
    dts = [np_dtype(v.dtype) for n in g.nodes for v in n.outputs if v.dtype in (FLOAT, *HALF)]
    return min(dts, key=lambda d: d.itemsize) if dts else np.dtype(np.float32)


def attribute(rows: list[Any], graph: Graph, channels_last: set[str], suffixes: Sequence[str],
              held: Callable[[str], bool], run: Callable[[list[str]], dict[str, np.ndarray]],
              ref: dict[str, np.ndarray], fetch: Callable[[list[str]], None],
              compare: Callable[..., Any]) -> None:
    """Fill ``introduced``, ``as_built`` and ``inherited`` of the failing `rows` of one engine and decide their
    ``ok``. `held(name)`: the engine holds the value; `run(names)`: those values from one run of the engine;
    `fetch(names)`: add the reference run's values of model values to `ref`; `compare(ours, want, row,
    channels_last)`: a Measure."""
    layers: dict[str, Graph] = {}
    for row in rows:
        v = graph.values.get(row.value)
        nodes = chain(v, suffixes) if v is not None else []
        if nodes:
            layers[row.value] = layer_graph(graph, nodes, row.value)
    names = {i.name for g in layers.values() for i in g.inputs}
    missing = sorted(n for n in names if not held(n))
    tapped = sorted(names - set(missing)) + [r for r in layers if held(r)]
    ours = run(list(dict.fromkeys(tapped))) if tapped else {}
    fetch(sorted({_base(n, suffixes) for n in names} - set(ref)))
    for row in rows:
        g = layers.get(row.value)
        if g is None:
            row.note = _join(row.note, "the layer could not be isolated: its own error is not measured")
            continue
        _attribute_row(row, g, ours, ref, channels_last, suffixes, compare)


def _attribute_row(row: Any, g: Graph, ours: dict[str, np.ndarray], ref: dict[str, np.ndarray],
                   channels_last: set[str], suffixes: Sequence[str], compare: Callable[..., Any]) -> None:
    from ep_trtpy.ops.executor import run_graph
    from ep_trtpy.ops.registry import OpError

    want = ref[row.value]
    nhwc = row.layout == "NHWC"
    notes = []
    local = None
    absent = [i.name for i in g.inputs if i.name not in ours]
    if absent or row.value not in ours:
        notes.append(f"input '{(absent or [row.value])[0]}' is not held by the engine: introduced error not measured")
    else:
        try:
            local = _wide(run_graph(g, {i.name: ours[i.name] for i in g.inputs})[0])
        except OpError as e:
            notes.append(f"the layer's reference failed on the engine's inputs ({e})")
    exact = None
    feeds = {i.name: model_value(i, ref, channels_last, suffixes) for i in g.inputs}
    unnamed = [n for n, a in feeds.items() if a is None]
    if unnamed:
        notes.append(f"input '{unnamed[0]}' is no value of the model: the layer as built is not checked")
    else:
        w = widened(g)
        try:
            exact = np.asarray(run_graph(w, {n: _as_input(a, w.values[n]) for n, a in feeds.items()})[0])
            exact = _wide(exact.astype(storage_dtype(g)))
            row.as_built = compare(exact, want, row, nhwc)
        except OpError as e:
            notes.append(f"the layer's reference failed on the reference run's inputs ({e})")
    if local is not None:
        row.introduced = compare(ours[row.value], local, row, False)
        row.inherited = compare(local, want, row, nhwc) if exact is None else compare(local, exact, row, False)
    measured = [m for m in (row.introduced, row.as_built) if m is not None]
    if row.introduced is not None:  # the engine's own error is known: blame only what this layer adds
        row.ok = all(m.ok for m in measured)
    row.note = _join(row.note, *notes)


def _wide(a: np.ndarray) -> np.ndarray:
    """16-bit floats as float32 (the comparison's reference side must be a numpy float)."""
    a = np.asarray(a)
    return a.astype(np.float32) if a.dtype.itemsize == 2 and a.dtype.kind in "fV" else a


def _as_input(a: np.ndarray, v: Value) -> np.ndarray:
    """A reference value fed to the widened layer: float inputs in float32, others as they are."""
    return a.astype(np.float32) if v.dtype == FLOAT and a.dtype.kind == "f" else a


def _base(name: str, suffixes: Sequence[str]) -> str:
    while True:
        cut = next((s for s in suffixes if name.endswith(s)), None)
        if cut is None:
            return name
        name = name[:-len(cut)]


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
