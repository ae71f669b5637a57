"""Run one native kernel layer on the GPU from a hand-written tensor table (no lowering): the GPU tests of the
kernels whose lowerings are written elsewhere ("conv" in NHWC, "pool_nhwc", "attention", "layernorm" with a
residual, "gather_elements"), so that the kernel is checked against its documented parameter layout alone.

    outs, engine = run_layer("attention", [Input(q), View(0, 0, (n,)), ...], [(FLOAT16, (2, 8, 64))],
                             ints=[...], floats=[...], tuning_level=3)

Inputs may be engine inputs (``Input``), weights (``Weight``: uploaded in the weights blob) or views of an earlier
tensor at a byte offset (``View``). Outputs are poisoned with NaN-producing bytes before the run, so an element
the kernel never writes cannot pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graph_partitioner.ir import elem_type, np_dtype


@dataclass
class Input:
    array: np.ndarray


@dataclass
class Weight:
    array: np.ndarray


@dataclass
class View:
    base: int  # index into the spec list (an earlier tensor)
    offset_bytes: int
    shape: tuple[int, ...]
    dtype: int | None = None  # the base's dtype when None


def run_layer(kernel: str, specs: Sequence[Any], outputs: Sequence[tuple[int, Sequence[int]]], ints: Sequence[int],
              floats: Sequence[float] = (), tactic_name: str = "", tuning_level: int = 3, runs: int = 2,
              poison: int = 0xFF, tactic_state: bytes = b"") -> tuple[list[np.ndarray], Any]:
    """Build an engine with one layer whose inputs are `specs` (in order; View entries are not engine inputs)
    and outputs `outputs`, run it `runs` times and return the host outputs of the last run and the engine."""
    import cupy as cp

    from ep_trtpy import _kernels

    eng = _kernels.Engine(0)
    eng.set_tuning_level(int(tuning_level))
    weights = bytearray()
    ids: list[int] = []
    dtypes: list[int] = []
    feeds: list[np.ndarray] = []
    for k, s in enumerate(specs):
        if isinstance(s, Input):
            dt = elem_type(s.array.dtype)
            tid = eng.add_tensor(f"in{k}", dt, list(s.array.shape), "input", len(feeds), 0, int(s.array.nbytes))
            feeds.append(np.ascontiguousarray(s.array))
        elif isinstance(s, Weight):
            dt = elem_type(s.array.dtype)
            weights.extend(b"\0" * ((-len(weights)) % 256))
            off = len(weights)
            weights.extend(np.ascontiguousarray(s.array).tobytes())
            tid = eng.add_tensor(f"w{k}", dt, list(s.array.shape), "weight", -1, off, int(s.array.nbytes))
        elif isinstance(s, View):
            dt = dtypes[s.base] if s.dtype is None else s.dtype
            nbytes = int(np.prod(s.shape)) * np_dtype(dt).itemsize
            tid = eng.add_tensor(f"view{k}", dt, list(s.shape), "alias", ids[s.base], s.offset_bytes, nbytes)
        elif s is None:
            tid, dt = -1, 0
        else:
            raise TypeError(f"spec {k}: {type(s).__name__}")
        ids.append(tid)
        dtypes.append(dt)
    out_ids = []
    for k, (dt, shape) in enumerate(outputs):
        nbytes = int(np.prod(shape)) * np_dtype(dt).itemsize
        out_ids.append(eng.add_tensor(f"out{k}", dt, list(shape), "output", k, 0, nbytes))
    layer_inputs = [tid for tid, s in zip(ids, specs) if _is_operand(s, specs)]
    eng.add_layer(kernel, layer_inputs, out_ids, [int(v) for v in ints], [float(v) for v in floats], -1, 0, kernel,
                  tactic_name, tactic_state)
    eng.set_weights(bytes(weights) if weights else b"\0")
    eng.set_arena_bytes(0)
    eng.finalize()
    with cp.cuda.Device(0):
        ins = [cp.asarray(a) for a in feeds]
        outs = [cp.empty(tuple(shape), dtype=np_dtype(dt)) for dt, shape in outputs]
        stream = cp.cuda.get_current_stream()
        for _ in range(runs):
            for o in outs:
                o.view(np.uint8)[...] = poison
            eng.run([int(x.data.ptr) for x in ins], [int(y.data.ptr) for y in outs], int(stream.ptr))
        stream.synchronize()
        return [cp.asnumpy(o) for o in outs], eng


def _is_operand(spec: Any, specs: Sequence[Any]) -> bool:
    """Every spec is a layer operand except tensors that only serve as the base of a View."""
    if isinstance(spec, View) or spec is None:
        return True
    k = next(i for i, s in enumerate(specs) if s is spec)
    return not any(isinstance(s, View) and s.base == k for s in specs)
