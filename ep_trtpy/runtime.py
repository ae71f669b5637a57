"""The native runtime's Python face: build an engine from a plan, run it on cupy arrays.

    plan, weights = ep_trtpy.builder.lowering.lower(graph)
    engine = build_engine(plan, weights, device=0)     # prepares every layer; tactics are written into `plan`
    outputs = run_engine(engine, [cupy_array, ...])     # enqueued on cupy's current stream

The engine (``ep_trtpy._kernels.Engine``, see cuda_kernels/include/tp/engine.h) executes the plan's launch list on
one device without Python. ``build_engine`` mirrors the plan into it one tensor and one layer at a time, uploads
the weights and calls ``finalize()``, which validates the tensor table, asks each kernel to prepare (descriptors,
library plans, tactic choice: the layer's ``tactic_name`` when set, else its ``tactic`` when >= 0, else timed
candidates, as many as the tuning level asks for) and allocates the arena and one shared workspace. The chosen
tactics, their names and the workspaces are then stored back into ``plan.layers`` so an engine file can replay
them. The tuner (ep_trtpy/tuner/) supplies the tuning level, the progress callback and cached tactics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ep_trtpy.engine.plan import Plan
from graph_partitioner.ir import dtype_name, np_dtype

__all__ = ["build_engine", "run_engine", "profile_engine"]


Progress = Callable[[int, int, str], None]


def build_engine(plan: Plan, weights: bytes, device: int = 0, tuning_level: int | None = None,
                 progress: Progress | None = None, base: Any = None) -> Any:
    """A finalized native engine for `plan` on CUDA device `device`.

    `tuning_level` (builder_optimization_level, 0-5; None: the runtime's default) bounds how many tactic
    candidates each layer times; `progress(layer_index, n_layers, text)` is called before each layer's prepare.

    Raises ValueError when the plan is malformed (tensor ids not dense, an engine input or output slot without a
    tensor) and RuntimeError with the runtime's sentence when the native side refuses (e.g. "layer 'conv_3'
    (conv): ...", no GPU). A plan with ``shared_weights_bytes`` reads its weights below that offset from
    `base`, a finalized engine of the same program (its own `weights` are the rest). On success, ``plan.layers[i].tactic``, ``.tactic_name`` and ``.workspace`` hold what the
    kernels chose, and ``.tactic_state`` the bytes that spare the next finalize its search or compilation (a
    serialized cuDNN plan; stored in the engine file).
    """
    from ep_trtpy import _kernels

    bound_in = {t.index for t in plan.tensors if t.kind == "input"}
    bound_out = {t.index for t in plan.tensors if t.kind == "output"}
    for kind, n, bound in (("input", plan.n_inputs, bound_in), ("output", plan.n_outputs, bound_out)):
        missing = sorted(set(range(n)) - bound)
        if missing:
            raise ValueError(f"plan has no tensor for engine {kind} slot(s) {missing}; every slot must be bound")

    engine = _kernels.Engine(int(device))
    for pos, t in enumerate(plan.tensors):
        if t.id != pos:
            raise ValueError(f"plan tensor '{t.name}' has id {t.id} at position {pos}; ids must be dense and ordered")
        tid = engine.add_tensor(t.name, int(t.dtype), [int(d) for d in t.shape], t.kind, int(t.index), int(t.offset),
                                int(t.nbytes))
        if tid != t.id:
            raise ValueError(f"engine assigned id {tid} to plan tensor '{t.name}' (id {t.id})")
    for i, layer in enumerate(plan.layers):
        engine.add_layer(layer.kernel, [int(x) for x in layer.inputs], [int(x) for x in layer.outputs],
                         [int(x) for x in layer.ints], [float(x) for x in layer.floats], int(layer.tactic),
                         int(layer.workspace), layer.name or f"layer{i}", tactic_name=layer.tactic_name,
                         tactic_state=layer.tactic_state)
    shared = int(getattr(plan, "shared_weights_bytes", 0))
    if shared and base is not None:  # a plan lowered against another engine's weights (builder/weight_reuse.py)
        engine.share_weights(base, shared)
    elif shared and len(weights) != shared + int(plan.weights_bytes):  # else the blob must be assembled whole
        raise ValueError(f"the plan reads {shared} bytes of shared weights, but neither a base engine nor an "
                         f"assembled blob of {shared} + {plan.weights_bytes} bytes was given ({len(weights)} bytes)")
    engine.set_weights(weights if isinstance(weights, (bytes, bytearray, memoryview)) else bytes(weights))
    engine.set_arena_bytes(int(plan.arena_bytes))
    if tuning_level is not None:
        engine.set_tuning_level(int(tuning_level))
    engine.finalize(progress=progress)
    for layer, tactic, workspace, name, state in zip(plan.layers, engine.tactics(), engine.workspaces(),
                                                     engine.tactic_names(), engine.tactic_states()):
        layer.tactic = int(tactic)
        layer.workspace = int(workspace)
        layer.tactic_name = str(name)
        layer.tactic_state = bytes(state)
    return engine


def _as_cupy_stream(stream: Any) -> Any:
    import cupy as cp

    if stream is None:
        return cp.cuda.get_current_stream()
    if isinstance(stream, int):
        return cp.cuda.ExternalStream(stream)
    if hasattr(stream, "ptr"):
        return stream
    raise TypeError(f"stream must be None, a cupy stream or a cudaStream_t as int, got {type(stream).__name__}")


def _prepare_io(engine: Any, inputs: Sequence[Any], cstream: Any) -> tuple[list[Any], list[Any]]:
    """Contiguous inputs checked against the engine's dtypes and shapes, and freshly allocated outputs."""
    import cupy as cp

    if len(inputs) != engine.num_inputs:
        raise ValueError(f"engine takes {engine.num_inputs} inputs, got {len(inputs)}")
    ins: list[Any] = []
    with cstream:
        for k, x in enumerate(inputs):
            dtype, shape = engine.io_info(False, k)
            if not isinstance(x, cp.ndarray):
                raise TypeError(f"input {k} must be a cupy.ndarray, got {type(x).__name__}")
            if x.dtype != np_dtype(dtype) or tuple(x.shape) != tuple(shape):
                raise ValueError(f"input {k} is {x.dtype}{list(x.shape)}, the engine expects "
                                 f"{dtype_name(dtype)}{list(shape)}")
            if x.size and x.device.id != engine.device:
                raise ValueError(f"input {k} lives on device {x.device.id}, the engine on device {engine.device}")
            ins.append(cp.ascontiguousarray(x))
        outs = []
        for k in range(engine.num_outputs):
            dtype, shape = engine.io_info(True, k)
            outs.append(cp.empty(tuple(shape), dtype=np_dtype(dtype)))
    return ins, outs


def run_engine(engine: Any, inputs: Sequence[Any], stream: Any = None) -> list[Any]:
    """Run `engine` on cupy `inputs` (engine input order) and return new cupy output arrays.

    `stream`: None for cupy's current stream, a cupy stream, or a cudaStream_t as int. The work is only enqueued:
    synchronize the stream (or use the outputs on it) before reading results on the host.
    """
    import cupy as cp

    with cp.cuda.Device(engine.device):
        cstream = _as_cupy_stream(stream)
        ins, outs = _prepare_io(engine, inputs, cstream)
        engine.run([int(x.data.ptr) for x in ins], [int(y.data.ptr) for y in outs], int(cstream.ptr))
    return outs


def profile_engine(engine: Any, inputs: Sequence[Any], iterations: int = 10, stream: Any = None) -> list[float]:
    """Mean device milliseconds per layer over `iterations` runs (after one warm-up run); synchronizes."""
    import cupy as cp

    with cp.cuda.Device(engine.device):
        cstream = _as_cupy_stream(stream)
        ins, outs = _prepare_io(engine, inputs, cstream)
        return list(engine.profile_layers([int(x.data.ptr) for x in ins], [int(y.data.ptr) for y in outs],
                                          int(cstream.ptr), int(iterations)))
