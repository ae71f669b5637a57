"""Engines for the other shapes of a family, made from the family's tuned engine.

A *family* is the set of input shapes that one tuned engine stands for: an optimization profile
(``profile_min_shapes`` ... ``profile_max_shapes``) or, without profiles, one power-of-two bucket of the dynamic
dimensions (ep_trtpy/profiles/). The family's engine is an ordinary build (pass pipeline, lowering, tactics timed
or taken from the timing cache, engine cache) at the profile's opt shapes, or at the first shapes seen in a
bucket. Every other shape of the family gets a *specialized* engine:

* the same pass pipeline for its shapes (so it computes exactly what a build for those shapes would), with the
  program's memo of weight transforms: no weight is cast, transposed or concatenated a second time;
* lowered against the family engine's weights (:class:`~ep_trtpy.builder.weight_reuse.WeightBase`): the device
  keeps one copy; only weights whose bytes differ for the new shape (a position-embedding slice, a mask
  constant) are uploaded;
* the family engine's tactics, layer by layer (``tactic_name``; a kernel whose named tactic does not fit the new
  shape falls back to its library's heuristic), and nothing is timed (tuning level 0);
* its own activation arena and CUDA graph; it is not written to the engine cache (it is cheap to make again and
  would repeat the weights on disk).

So a stream of lengths costs one tuned build per family and a pass-pipeline run per new shape, not a tuned build
per shape. What this is not: a launch list valid for a range of shapes (TensorRT's dynamic-shape kernels).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ep_trtpy.builder.build import BuildError, annotate, optimize_with_context, optimized_artifact
from ep_trtpy.engine.artifact import Device, EngineArtifact, InputShapes
from ep_trtpy.options import Options
from graph_partitioner.ir import Graph

log = logging.getLogger("ep_trtpy.builder")


def _hint_tactics(plan: Any, family_plan: Any) -> int:
    """Give each layer of `plan` the tactic name its namesake in `family_plan` chose (same kernel); returns how
    many layers got one. The tactic states (serialized library plans) are shape-specific and are not copied."""
    chosen = {(lay.name, lay.kernel): lay.tactic_name for lay in family_plan.layers if lay.tactic_name}
    n = 0
    for lay in plan.layers:
        name = chosen.get((lay.name, lay.kernel))
        if name and not lay.tactic_name:
            lay.tactic_name = name
            lay.meta["tactic_source"] = "family"
            n += 1
    return n


def weight_base(family: EngineArtifact) -> Any:
    """The WeightBase of a family engine's weights (what specializations share on the device)."""
    from ep_trtpy.builder.weight_reuse import WeightBase

    if family.plan is None:
        raise BuildError("the family engine has no plan to share weights with")
    return WeightBase(family.plan, family.weights, family.weight_sources)


def specialize(graph: Graph, input_shapes: InputShapes, options: Options, backend: str, device: Device,
               family: EngineArtifact, memo: Any = None, base: Any = None) -> EngineArtifact:
    """An engine artifact for `graph` at `input_shapes`, made from `family` (its tactics and, for the cuda
    backend, its device weights) without timing anything. `memo` is the program's ConstMemo; `base` the family's
    WeightBase (made from `family` when None)."""
    t0 = time.perf_counter()
    og, ctx = optimize_with_context(graph, input_shapes, options, backend=backend, device=device, memo=memo)
    art = optimized_artifact(og, ctx, backend, device)
    t_opt = time.perf_counter() - t0
    hinted = 0
    if backend == "cuda":
        from ep_trtpy import runtime
        from ep_trtpy.builder.lowering import lower

        if family.engine is None or family.plan is None:
            raise BuildError("the family engine has no native engine to share weights with")
        base = base if base is not None else weight_base(family)
        plan, tail = lower(og, options, base=base)
        annotate(plan, og, ctx)
        hinted = _hint_tactics(plan, family.plan)
        art.plan, art.weights = plan, bytes(tail)
        art.engine = runtime.build_engine(plan, tail, device.ordinal, tuning_level=0, base=family.engine)
        if hasattr(art.engine, "cuda_graph"):
            art.engine.cuda_graph = options.cuda_graph_enable
    art.build_seconds = time.perf_counter() - t0
    log.log(logging.INFO if options.detailed_build_log else logging.DEBUG,
            "specialized %s engine for '%s' (%s) from the family engine at %s in %.3f s (optimize %.3f s; %d of "
            "%d layers kept the family's tactic)", backend, graph.name,
            ", ".join(f"{n}{list(s)}" for n, s in zip(art.input_names, art.input_shapes)),
            ", ".join(f"{n}{list(s)}" for n, s in zip(family.input_names, family.input_shapes)),
            art.build_seconds, t_opt, hinted, len(art.plan.layers) if art.plan is not None else 0)
    return art
