"""Memory plan: pack every activation tensor of a plan into one arena by lifetime.

A tensor lives from the first layer that touches it to the last (a view keeps the tensor it views alive for as
long as the view is used). Tensors are placed largest first at the lowest offset that does not overlap any
already placed tensor whose lifetime intersects (greedy best fit, as TensorRT-style planners do); offsets are
256-byte aligned. The arena size is the highest end offset. Peak memory can therefore be read from the plan.
"""

from __future__ import annotations

from ep_trtpy.engine.plan import Plan

ALIGN = 256


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def lifetimes(plan: Plan) -> dict[int, tuple[int, int]]:
    """tensor id -> (first layer, last layer) for activations, following views to their base tensor."""
    def base(tid: int) -> int:
        t = plan.tensors[tid]
        while t.kind == "alias":
            t = plan.tensors[t.index]
        return t.id

    life: dict[int, tuple[int, int]] = {}
    for i, layer in enumerate(plan.layers):
        for tid in list(layer.inputs) + list(layer.outputs):
            if tid < 0:
                continue
            b = base(tid)
            if plan.tensors[b].kind != "activation":
                continue
            first, last = life.get(b, (i, i))
            life[b] = (min(first, i), max(last, i))
    return life


def plan_memory(plan: Plan) -> None:
    """Assign arena offsets to activations in place and set plan.arena_bytes."""
    life = lifetimes(plan)
    order = sorted(life, key=lambda t: (-plan.tensors[t].nbytes, life[t][0]))
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    top = 0
    for tid in order:
        size = _align(max(plan.tensors[tid].nbytes, 1))
        first, last = life[tid]
        busy = sorted((o, e) for (o, e, f, la) in placed if not (la < first or f > last))
        offset = 0
        best = None
        for o, e in busy:
            if o - offset >= size and (best is None or o - offset < best[1]):
                best = (offset, o - offset)
            offset = max(offset, e)
        chosen = best[0] if best is not None else offset
        plan.tensors[tid].offset = chosen
        placed.append((chosen, chosen + size, first, last))
        top = max(top, chosen + size)
    # activations no layer touches (should not happen) get no space
    plan.arena_bytes = top
