"""A stand-in for ``ep_trtpy._kernels.Engine`` with the tuner interface of perf-design.md, for CPU tests.

Layers of the kernels in :data:`TUNABLE` have candidates ``<kernel>_alg<k>`` whose times depend on the layer's
parameters and ``k`` (so the winner is not always the first); ``set_tuning_level`` bounds how many are timed
(level 0: the first, untimed; 1-4: the top 2, 4, 8, 16; 5: all :data:`N_CANDIDATES`). A layer added with a
``tactic_name`` (or a tactic >= 0) uses it and times nothing; tunable layers get the UTF-8 bytes of their
tactic name as ``tactic_state`` (standing in for a serialized cuDNN plan). ``FakeEngine.tactics_timed`` counts every candidate
timed by any instance, like the native runtime counter.
"""

from __future__ import annotations

import math

TUNABLE = ("gemm", "conv")
N_CANDIDATES = 20
TOP_K = {1: 2, 2: 4, 3: 8, 4: 16, 5: N_CANDIDATES}


def candidate_ms(ints: list[int], k: int) -> float:
    """A made-up time: each layer has its own fastest candidate; candidate 5 always fails."""
    if k == 5:
        return math.inf
    return 0.01 + ((sum(ints) * 7 + k * 13) % 17) / 100


class FakeEngine:
    tactics_timed = 0

    def __init__(self, device: int = 0) -> None:
        self.device = device
        self.tensors: list[tuple] = []
        self.layers: list[dict] = []
        self.level = 3
        self.progress_calls: list[tuple[int, int, str]] = []
        self.finalized = False

    def add_tensor(self, name, dtype, shape, kind, index, offset, nbytes) -> int:
        self.tensors.append((name, dtype, tuple(shape), kind, index, offset, nbytes))
        return len(self.tensors) - 1

    def add_layer(self, kernel, inputs, outputs, ints, floats, tactic, workspace, name, tactic_name="",
                  tactic_state=b"") -> None:
        self.layers.append({"kernel": kernel, "ints": list(ints), "tactic": int(tactic), "tactic_name": tactic_name,
                            "tactic_state": bytes(tactic_state), "workspace": int(workspace), "name": name,
                            "timings": []})

    def set_weights(self, weights) -> None:
        self.weights = bytes(weights)

    def set_arena_bytes(self, n: int) -> None:
        self.arena = n

    def set_tuning_level(self, level: int) -> None:
        if not 0 <= level <= 5:
            raise ValueError(f"tuning level {level} is not in 0..5")
        self.level = level

    def finalize(self, progress=None) -> None:
        for i, lay in enumerate(self.layers):
            if progress is not None:
                progress(i, len(self.layers), f"{lay['name']} ({lay['kernel']})")
                self.progress_calls.append((i, len(self.layers), lay["name"]))
            if lay["kernel"] not in TUNABLE:
                lay["tactic"], lay["tactic_name"] = 0, ""
            elif lay["tactic_name"]:
                lay["tactic"] = int(lay["tactic_name"].rsplit("alg", 1)[1])
            elif lay["tactic"] >= 0:
                lay["tactic_name"] = f"{lay['kernel']}_alg{lay['tactic']}"
            elif self.level == 0:
                lay["tactic"], lay["tactic_name"] = 0, f"{lay['kernel']}_alg0"
            else:
                timed = [(f"{lay['kernel']}_alg{k}", candidate_ms(lay["ints"], k)) for k in range(TOP_K[self.level])]
                FakeEngine.tactics_timed += len(timed)
                best = min(range(len(timed)), key=lambda k: timed[k][1])
                lay["tactic"], lay["tactic_name"], lay["timings"] = best, timed[best][0], timed
            # like a serialized cuDNN plan: bytes that name the choice
            lay["tactic_state"] = lay["tactic_name"].encode() if lay["kernel"] in TUNABLE else b""
        self.finalized = True

    def tactics(self) -> list[int]:
        return [lay["tactic"] for lay in self.layers]

    def tactic_names(self) -> list[str]:
        return [lay["tactic_name"] for lay in self.layers]

    def tactic_states(self) -> list[bytes]:
        return [lay["tactic_state"] for lay in self.layers]

    def workspaces(self) -> list[int]:
        return [lay["workspace"] for lay in self.layers]

    def layer_timings(self) -> list[list[tuple[str, float]]]:
        return [list(lay["timings"]) for lay in self.layers]
