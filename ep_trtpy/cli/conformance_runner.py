"""ONNX backend node conformance for TrtPyExecutionProvider.

Runs the ONNX node test cases the ``onnx`` wheel defines (``onnx.backend.test.case.node.collect_testcases()``: each
case is a model, usually of one node, with input and expected output arrays) through ORT with our EP first and
the CPU provider second, records which EP ran each node, and classifies every case:

``passed``           our partitioner claims node(s) of the case, ORT assigned them to our EP, and every output
                     matches the expected data within the per-dtype tolerance.
``failed``           our support rules claim node(s) but: ORT did not assign a claimed node to our EP
                     (``not_assigned``: the rule "for every case whose op we claim, the provider must claim it"),
                     ORT assigned a node our rules refuse (``unexpected_assignment``), the session could not be
                     created or run (``session_error`` / ``run_error``), or an output is wrong (``wrong_output``).
``not_claimed``      our rules refuse every node (the reason for each node comes from
                     ``graph_partitioner.partition``) and the CPU fallback still produces what a CPU-only session
                     produces.
``fallback_failed``  not claimed, yet the session with our EP registered fails or differs from a CPU-only session
                     (registering our EP must never break a model it does not touch).
``excluded``         listed in :data:`EXCLUSIONS` (each with its reason).
``skipped``          ORT's CPU provider cannot run the case either (an opset newer than this onnxruntime, an
                     unimplemented op or type): nothing to compare with; the reason is recorded.

Errors are ``failed`` + ``fallback_failed``. Sessions are created with ORT's graph optimizations disabled so the
graph ORT hands to GetCapability is the case's graph node for node (ORT still turns Constant nodes into
initializers, so those never show in the placement; they are ignored).
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

from ep_trtpy.cli import harness

# case name -> reason. Only cases whose expected data cannot be the standard for a GPU kernel belong here.
EXCLUSIONS: dict[str, str] = {
    "test_resize_downsample_scales_linear_align_corners":
        "align_corners with an output extent of 1 divides by zero in the coordinate transform "
        "(x_in = x_out * (in - 1) / (out - 1)); the ONNX reference and ORT's CPU kernel resolve the 0/0 "
        "differently (ORT reads index 0), so the expected data is not a specification",
}

STATUSES = ("passed", "failed", "not_claimed", "fallback_failed", "excluded", "skipped")


@dataclass
class CaseResult:
    """The outcome of one backend test case."""

    name: str
    op: str
    status: str
    failure: str = ""
    """For failed / fallback_failed: not_assigned, unexpected_assignment, session_error, run_error, wrong_output."""
    detail: str = ""
    claimed: list[str] = field(default_factory=list)
    """Nodes our support rules claim."""
    assigned: list[str] = field(default_factory=list)
    """Nodes ORT assigned to our EP."""
    reasons: dict[str, str] = field(default_factory=dict)
    """Why each unclaimed node was refused (from the partitioner)."""
    seconds: float = 0.0

    @property
    def is_error(self) -> bool:
        return self.status in ("failed", "fallback_failed")


@dataclass
class Report:
    """All case results, with the per-op table."""

    results: list[CaseResult]
    ep_available: bool
    ort_version: str
    seconds: float = 0.0

    def errors(self) -> list[CaseResult]:
        return [r for r in self.results if r.is_error]

    def not_assigned(self) -> list[CaseResult]:
        return [r for r in self.results if r.failure == "not_assigned"]

    def counts(self) -> dict[str, int]:
        c = {s: 0 for s in STATUSES}
        for r in self.results:
            c[r.status] += 1
        return c

    def by_op(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for r in self.results:
            row = table.setdefault(r.op, {s: 0 for s in STATUSES})
            row[r.status] += 1
        return dict(sorted(table.items()))

    def table(self, only_interesting: bool = False) -> str:
        """Per-op counts and totals, as printed by ``ep-trtpy conformance``."""
        cols = ("passed", "failed", "not_claimed", "fallback_failed", "excluded", "skipped")
        heads = ("passed", "failed", "not claimed", "fallback failed", "excluded", "skipped")
        width = max([len("op")] + [len(op) for op in self.by_op()]) + 2
        lines = [f"{'op':{width}s}" + "".join(f"{h:>17s}" for h in heads)]
        for op, row in self.by_op().items():
            if only_interesting and not (row["passed"] or row["failed"] or row["fallback_failed"]):
                continue
            lines.append(f"{op:{width}s}" + "".join(f"{row[c]:17d}" for c in cols))
        tot = self.counts()
        lines.append(f"{'TOTAL':{width}s}" + "".join(f"{tot[c]:17d}" for c in cols))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"ort_version": self.ort_version, "ep_available": self.ep_available, "seconds": self.seconds,
                "counts": self.counts(), "by_op": self.by_op(), "exclusions": EXCLUSIONS,
                "cases": [asdict(r) for r in self.results]}

    def write_json(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=1, default=str)


# -------------------------------------------------------------------------------------------- cases --
def collect_cases() -> list[Any]:
    """The ONNX node test cases (onnx's own generators; a few emit numpy warnings while computing expected data)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return list(collect_testcases())


def _op_index() -> dict[str, str]:
    idx: dict[str, str] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        idx.setdefault(schema.name.lower(), schema.name)
    return idx


_OPS: dict[str, str] | None = None


def case_op(case: Any) -> str:
    """The op a case tests: the single node's op type, else the longest op name spelled by the case name's leading
    words (``test_layer_normalization_2d_axis0_expanded`` -> LayerNormalization)."""
    global _OPS
    nodes = [n for n in case.model.graph.node if n.op_type != "Constant"]
    if len(case.model.graph.node) == 1:
        return case.model.graph.node[0].op_type
    if _OPS is None:
        _OPS = _op_index()
    words = case.name[5:].split("_") if case.name.startswith("test_") else case.name.split("_")
    for k in range(len(words), 0, -1):
        op = _OPS.get("".join(words[:k]).lower())
        if op:
            return op
    return nodes[0].op_type if nodes else "Constant"


def _to_numpy(x: Any) -> Any:
    if isinstance(x, onnx.TensorProto):
        return onnx.numpy_helper.to_array(x)
    if isinstance(x, np.generic):
        return np.asarray(x)
    if isinstance(x, list):
        return [_to_numpy(v) for v in x]
    return x


def _feeds(model: onnx.ModelProto, inputs: Sequence[Any]) -> dict[str, Any]:
    inits = {t.name for t in model.graph.initializer}
    names = [vi.name for vi in model.graph.input if vi.name not in inits]
    return {n: _to_numpy(x) for n, x in zip(names, inputs)}


# -------------------------------------------------------------------------------------------- partition --
PartitionFn = Callable[[onnx.ModelProto], "tuple[list[str], dict[str, str]]"]


def partition_case(model: onnx.ModelProto) -> tuple[list[str], dict[str, str]]:
    """(claimed node names, {unclaimed node name: reason}) from ``graph_partitioner.partition`` on the case model
    (after ONNX shape inference, as ORT infers shapes before GetCapability)."""
    from graph_partitioner.onnx_io import graph_from_onnx
    from graph_partitioner.partition import partition

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is best effort; the partitioner copes with unknown shapes
        inferred = model
    result = partition(graph_from_onnx(inferred))
    claimed = [n.name for cluster in result.clusters for n in cluster]
    return claimed, dict(result.reasons)


# ------------------------------------------------------------------------------------------------ run --
def _run(sess: Any, feeds: Mapping[str, Any]) -> list[Any]:
    return sess.run(None, dict(feeds))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = text[-1] if text and len(text[-1]) > 20 else (text[0] if text else type(e).__name__)
    return f"{type(e).__name__}: {msg[:400]}"


def run_case(case: Any, partition_fn: PartitionFn = partition_case, ep_options: Mapping[str, Any] | None = None,
             provider: str = "trtpy", optimization: str = "disable", session_provider: str | None = None) -> CaseResult:
    """Classify one backend test case (see the module docstring). ``session_provider`` (default: ``provider``) is
    what the session is created with; the runner's self-test passes "cpu" to exercise the classification when our
    EP is not registered."""
    t0 = time.perf_counter()
    op = case_op(case)
    res = CaseResult(case.name, op, "skipped")
    if case.name in EXCLUSIONS:
        res.status, res.detail = "excluded", EXCLUSIONS[case.name]
        return res
    model = harness.prepare_model(case.model)
    inputs, expected = case.data_sets[0]
    feeds = _feeds(model, inputs)
    expected = [_to_numpy(e) for e in expected]
    out_names = [o.name for o in model.graph.output]
    def finish(status: str, failure: str = "", detail: str = "") -> CaseResult:
        res.status, res.failure, res.detail = status, failure, detail
        res.seconds = time.perf_counter() - t0
        return res

    try:
        claimed, reasons = partition_fn(model)
    except NotImplementedError:
        raise
    except Exception as e:  # noqa: BLE001 - a partitioner crash on a valid model is a failure of that case
        return finish("failed", "session_error", f"graph_partitioner.partition raised {_first_line(e)}")
    res.claimed, res.reasons = list(claimed), dict(reasons)

    cpu_cache: dict[str, Any] = {}

    def cpu_outputs() -> list[Any]:
        """Outputs of a CPU-only session (raises what ORT raises)."""
        if "out" not in cpu_cache:
            so = harness.session_options(record_assignment=False, optimization=optimization, log_severity=4)
            cpu_cache["out"] = _run(harness.create_session(model, "cpu", sess_options=so), feeds)
        return cpu_cache["out"]

    def cpu_cannot_run() -> str | None:
        try:
            cpu_outputs()
            return None
        except Exception as e:  # noqa: BLE001
            return _first_line(e)

    so = harness.session_options(record_assignment=True, optimization=optimization, log_severity=4)
    try:
        sess = harness.create_session(model, session_provider or provider, ep_options=ep_options, sess_options=so)
    except harness.EpUnavailableError:
        raise
    except Exception as e:  # noqa: BLE001
        why = cpu_cannot_run()
        if why is not None:
            return finish("skipped", "", f"ORT's CPU provider cannot run it either: {why}")
        return finish("failed" if claimed else "fallback_failed", "session_error",
                      f"session creation failed with our EP: {_first_line(e)}")

    placement = harness.node_assignment(sess)
    ours = harness.provider_name(provider)
    res.assigned = sorted(n for n, ep in placement.items() if ep == ours)
    removed = [n for n in claimed if n not in placement]
    if removed and len(removed) == len(claimed):
        # ORT took every claimed node away before partitioning (Constant nodes become initializers): nothing of
        # ours can run, so the case is judged like an unclaimed one
        claimed = []
        res.detail = f"claimed nodes {removed} were removed by ORT before partitioning"
    not_assigned = [n for n in claimed if n in placement and placement[n] != ours]
    # Nodes ORT made itself (inlined model-local or schema functions: empty or new names) exist only inside the
    # session, so the partition of the case model cannot speak for them; their numbers are still checked below.
    model_names = {n.name for n in model.graph.node}
    ort_made = [n for n in res.assigned if n not in model_names]
    unexpected = [n for n in res.assigned if n in model_names and n not in set(claimed)]
    try:
        got = _run(sess, feeds)
    except Exception as e:  # noqa: BLE001
        why = cpu_cannot_run()
        if why is not None:
            # ORT cannot run the case at all (e.g. its Python layer cannot take bfloat16 feeds): nothing to judge
            return finish("skipped", "", f"ORT's CPU provider cannot run it either: {why}")
        return finish("failed" if claimed else "fallback_failed", "run_error", f"run failed: {_first_line(e)}")

    if claimed or ort_made:
        if ort_made:
            res.detail = (res.detail + "; " if res.detail else "") + f"{len(ort_made)} ORT-made nodes ran on our EP"
        if not_assigned:
            return finish("failed", "not_assigned",
                          f"support rules claim {not_assigned} but ORT assigned them to "
                          f"{sorted({placement[n] for n in not_assigned})}")
        if unexpected:
            return finish("failed", "unexpected_assignment",
                          f"ORT assigned {unexpected} to {ours} although the support rules refuse them")
        cmp = harness.compare_outputs(out_names, got, expected, _case_tol(case, expected))
        bad = [c.line() for c in cmp if not c.ok]
        if bad:
            return finish("failed", "wrong_output", "; ".join(bad))
        return finish("passed")

    if unexpected:
        return finish("fallback_failed", "unexpected_assignment",
                      f"ORT assigned {unexpected} to {ours} although the support rules refuse them")
    why = cpu_cannot_run()
    if why is not None:  # ORT ran it with our EP registered but not alone: our registration changed something
        return finish("fallback_failed", "run_error", f"runs with our EP registered, but not CPU-only: {why}")
    # ORT may inline a function differently once another EP is registered (NLLLoss, SoftmaxCrossEntropyLoss):
    # the CPU numbers then differ by float32 rounding.
    cmp = harness.compare_outputs(out_names, got, cpu_outputs(), harness.Tolerance(1e-5, 1e-6))
    bad = [c.line() for c in cmp if not c.ok]
    if bad:
        return finish("fallback_failed", "wrong_output", "differs from a CPU-only session: " + "; ".join(bad))
    return finish("not_claimed", "", res.detail)


def _case_tol(case: Any, expected: Sequence[Any]) -> harness.Tolerance | None:
    """The per-dtype tolerance, widened to the case's own rtol/atol (None: per-output dtype defaults)."""
    dts = {np.asarray(e).dtype for e in expected if isinstance(e, np.ndarray)}
    if len(dts) == 1:
        return harness.tolerance_for(dts.pop()).widen(case.rtol, case.atol)
    return None


def select_cases(cases: Iterable[Any], ops: Iterable[str] | None = None,
                 names: Iterable[str] | None = None) -> list[Any]:
    """Cases whose op (see :func:`case_op`) is in ``ops`` and/or whose name matches a regex in ``names``."""
    ops_set = {o.strip() for o in ops or () if o.strip()}
    pats = [re.compile(p) for p in names or ()]
    out = []
    for c in cases:
        if ops_set and case_op(c) not in ops_set:
            continue
        if pats and not any(p.search(c.name) for p in pats):
            continue
        out.append(c)
    return out


def run(cases: Iterable[Any] | None = None, ops: Iterable[str] | None = None, names: Iterable[str] | None = None,
        partition_fn: PartitionFn = partition_case, ep_options: Mapping[str, Any] | None = None,
        provider: str = "trtpy", require_ep: bool = True, optimization: str = "disable",
        progress: Callable[[CaseResult], None] | None = None, session_provider: str | None = None) -> Report:
    """Run the conformance suite (all node cases, or those of ``ops`` / matching ``names``).

    With ``require_ep=False`` and our EP not registered, or with ``session_provider="cpu"``, cases are still
    classified but sessions run on the CPU provider alone (so every claimed case fails as not assigned); this is for
    testing the runner itself.

    Our EP runs float32 strict (``tf32_enable=0``) unless ``ep_options`` says otherwise: the cases check ONNX's
    float32 semantics to 1e-3, which TF32 math misses by design on float32 Gemm/MatMul/Conv cases.
    """
    import onnxruntime as ort

    t0 = time.perf_counter()
    ep_options = {"tf32_enable": "0", **(ep_options or {})} if provider == "trtpy" else ep_options
    available = harness.ep_registered(harness.provider_name(provider))
    if require_ep and not available:
        raise harness.EpUnavailableError(
            f"{harness.provider_name(provider)} is not registered with onnxruntime {ort.__version__}; "
            f"conformance needs it (available: {', '.join(ort.get_available_providers())})")
    if session_provider is None:
        session_provider = provider if available else "cpu"
    selected = select_cases(cases if cases is not None else collect_cases(), ops, names)
    results = []
    for case in selected:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            r = run_case(case, partition_fn, ep_options, provider, optimization, session_provider)
        results.append(r)
        if progress:
            progress(r)
    return Report(results, available, ort.__version__, time.perf_counter() - t0)
