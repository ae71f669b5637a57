"""Layer signatures: what a tactic timing depends on, as a JSON object and its hash.

Two layers with equal signatures run the same kernel on equally shaped, typed and aligned data with the same
parameters, so the fastest tactic of one is the fastest of the other (on the same GPU and libraries: that part is
the timing cache file's environment). The signature holds

* ``kernel``, ``ints`` and ``floats`` of the layer (the parameter layout: geometry, layout, activation, math mode);
* per operand (inputs, then outputs; ``null`` for an absent optional input): ONNX dtype, shape and the alignment
  of its address in bytes (256 for a whole buffer; a view at a byte offset, such as Q inside a packed QKV tensor,
  is aligned to the largest power of two dividing its offset);
* ``level``, the builder optimization level the candidates were timed at (a level-5 search and a level-1 search
  may pick differently).

Names, tensor ids, tensor homes and weight values do not enter it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ep_trtpy.engine.plan import LayerSpec, Plan

MAX_ALIGN = 256


def _alignment(plan: Plan, tid: int) -> int:
    offset = 0
    t = plan.tensors[tid]
    while t.kind == "alias":
        offset += int(t.offset)
        t = plan.tensors[t.index]
    offset %= MAX_ALIGN
    return MAX_ALIGN if offset == 0 else offset & -offset


def _operand(plan: Plan, tid: int) -> list[Any] | None:
    if tid < 0:
        return None
    t = plan.tensors[tid]
    return [int(t.dtype), [int(d) for d in t.shape], _alignment(plan, tid)]


def layer_signature(plan: Plan, layer: LayerSpec, level: int) -> dict[str, Any]:
    """The signature of `layer` of `plan` at optimization level `level` (see the module docstring)."""
    return {"kernel": layer.kernel, "ints": [int(x) for x in layer.ints], "floats": [float(x) for x in layer.floats],
            "inputs": [_operand(plan, t) for t in layer.inputs], "outputs": [_operand(plan, t) for t in layer.outputs],
            "level": int(level)}


def signature_key(signature: dict[str, Any]) -> str:
    """The hash that keys a signature's entry: SHA-256 (hex, 32 digits) of its canonical JSON."""
    text = json.dumps(signature, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
