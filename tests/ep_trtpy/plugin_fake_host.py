"""A fake Python host for testing the ORT plugin shim in isolation from the real partitioner and builder.

It replaces the functions of :mod:`ep_trtpy._host` in-process (the shim looks them up on every callback), so a test
drives the real plugin library through a real ``onnxruntime.InferenceSession`` while controlling every answer:

* ``create_ep`` accepts the options in :attr:`FakeHost.valid_options` (plus ``ep.context_*`` session entries) and
  raises ``ValueError`` naming any other key;
* ``get_capability`` claims the nodes whose op type is in ``claim_ops`` and groups them into maximal connected
  clusters (union of direct producer->consumer edges between claimed nodes; test models are chains, so a cluster
  never contains a path through an unclaimed node);
* ``compile`` returns every fused-node input that is not a constant initializer as a runtime input;
* ``run_reference`` evaluates the fused subgraph with numpy (Add, Mul, Sub, Relu, Identity);
* ``get_engine`` delegates to an optional ``engine_factory(program, shapes)`` (GPU tests).

Every document, initializer list and call is recorded for the assertions.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NUMPY_OPS: dict[str, Callable[..., np.ndarray]] = {
    "Add": lambda a, b: a + b,
    "Mul": lambda a, b: a * b,
    "Sub": lambda a, b: a - b,
    "Relu": lambda a: np.maximum(a, 0),
    "Identity": lambda a: a.copy(),
}


@dataclass
class FakeProgram:
    """One compiled fused node: its document, its constant initializers by name, its runtime inputs."""

    program_id: int
    document: dict[str, Any]
    constants: dict[str, np.ndarray]
    runtime_inputs: list[int]
    device_id: int  # CUDA ordinal create_ep chose, -1 on the reference backend
    engines: list[Any] = field(default_factory=list)


class FakeHost:
    """Stands in for ep_trtpy._host. Install with :meth:`install` (monkeypatch undoes it after the test)."""

    def __init__(self, claim_ops: tuple[str, ...] = ("Add", "Mul", "Relu"),
                 valid_options: tuple[str, ...] = ("device_id", "fp16_enable", "note"),
                 engine_factory: Callable[[FakeProgram, list[tuple[int, ...]]], Any] | None = None) -> None:
        self.claim_ops = claim_ops
        self.valid_options = valid_options
        self.engine_factory = engine_factory
        self.calls: Counter[str] = Counter()
        self.eps: dict[int, dict[str, Any]] = {}
        self.programs: dict[int, FakeProgram] = {}
        self.released_eps: list[int] = []
        self.released_programs: list[int] = []
        self.capability_documents: list[tuple[dict[str, Any], list[Any]]] = []
        self.compile_documents: list[tuple[dict[str, Any], list[Any]]] = []
        self.options_seen: list[dict[str, str]] = []
        self.devices_seen: list[dict[str, Any]] = []
        self.fail_in: str | None = None  # name of a callback that raises RuntimeError
        self.reference_threads: list[int] = []  # threading.get_ident() of each run_reference call
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------------------------------------ install
    def install(self, monkeypatch: Any) -> FakeHost:
        from ep_trtpy import _host

        for name in ("create_ep", "release_ep", "get_capability", "compile", "get_engine", "run_reference",
                     "release_program"):
            monkeypatch.setattr(_host, name, getattr(self, name))
        return self

    def _maybe_fail(self, name: str) -> None:
        self.calls[name] += 1
        if self.fail_in == name:
            raise RuntimeError(f"fake host failure injected in {name}")

    # -------------------------------------------------------------------------------------------- callbacks
    def create_ep(self, options_json: str, device_json: str) -> tuple[int, int]:
        self._maybe_fail("create_ep")
        options = json.loads(options_json)
        devices = json.loads(device_json)
        self.options_seen.append(options)
        self.devices_seen.append(devices)
        unknown = sorted(k for k in options if k not in self.valid_options and not k.startswith("ep.context_"))
        if unknown:
            raise ValueError(f"unknown provider option(s) {unknown} for TrtPyExecutionProvider; valid options: "
                             f"{sorted(self.valid_options)}")
        if devices["backend"] == "reference":
            device_id = -1
        else:
            device_id = int(options.get("device_id", devices["devices"][0]["device_id"]))
        ep_id = next(self._ids)
        self.eps[ep_id] = {"options": options, "devices": devices, "device_id": device_id}
        return ep_id, device_id

    def release_ep(self, ep_id: int) -> None:
        self.calls["release_ep"] += 1
        self.released_eps.append(ep_id)
        self.eps.pop(ep_id, None)

    def get_capability(self, ep_id: int, graph_json: str, initializers: list[Any]) -> list[list[int]]:
        self._maybe_fail("get_capability")
        assert ep_id in self.eps, "get_capability for an unknown EP"
        doc = json.loads(graph_json)
        self.capability_documents.append((doc, initializers))
        return maximal_clusters(doc, self.claim_ops)

    def compile(self, ep_id: int, graph_json: str, initializers: list[Any]) -> tuple[int, list[int]]:
        self._maybe_fail("compile")
        assert ep_id in self.eps, "compile for an unknown EP"
        doc = json.loads(graph_json)
        self.compile_documents.append((doc, initializers))
        constants = dict(zip(doc["initializers"], initializers))
        runtime = [i for i, name in enumerate(doc["fused_node"]["inputs"]) if name not in constants]
        program_id = next(self._ids)
        self.programs[program_id] = FakeProgram(program_id, doc, constants, runtime, self.eps[ep_id]["device_id"])
        return program_id, runtime

    def get_engine(self, program_id: int, shapes: list[tuple[int, ...]]) -> Any:
        self._maybe_fail("get_engine")
        if self.engine_factory is None:
            raise RuntimeError("this fake host builds no engines")
        program = self.programs[program_id]
        engine = self.engine_factory(program, [tuple(s) for s in shapes])
        program.engines.append(engine)  # the host keeps engines alive until release_program
        return engine

    def run_reference(self, program_id: int, inputs: list[np.ndarray],
                      alloc: Callable[[int, tuple[int, ...]], np.ndarray]) -> None:
        self._maybe_fail("run_reference")
        self.reference_threads.append(threading.get_ident())
        program = self.programs[program_id]
        fused = program.document["fused_node"]
        env: dict[str, np.ndarray] = dict(program.constants)
        for index, array in zip(program.runtime_inputs, inputs, strict=True):
            env[fused["inputs"][index]] = np.array(array)  # copy: the view dies with the call
        for node in program.document["nodes"]:
            args = [env[name] for name in node["inputs"]]
            env[node["outputs"][0]] = NUMPY_OPS[node["op_type"]](*args)
        for j, name in enumerate(fused["outputs"]):
            out = alloc(j, env[name].shape)
            out[...] = env[name]

    def release_program(self, program_id: int) -> None:
        self.calls["release_program"] += 1
        self.released_programs.append(program_id)
        self.programs.pop(program_id, None)


def maximal_clusters(doc: dict[str, Any], claim_ops: tuple[str, ...]) -> list[list[int]]:
    """Connected components of claimed nodes, joined through direct producer -> consumer edges."""
    nodes = doc["nodes"]
    claimed = [i for i, n in enumerate(nodes) if n["op_type"] in claim_ops and n["domain"] == ""]
    parent = {i: i for i in claimed}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    producer = {out: i for i, n in enumerate(nodes) for out in n["outputs"] if out}
    for i in claimed:
        for name in nodes[i]["inputs"]:
            p = producer.get(name)
            if p is not None and p in parent:
                parent[find(i)] = find(p)
    groups: dict[int, list[int]] = {}
    for i in claimed:
        groups.setdefault(find(i), []).append(i)
    return [sorted(g) for g in groups.values()]
