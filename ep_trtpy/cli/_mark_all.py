"""The per-layer debugger behind ``ep-trtpy compare --mark-all``: every tensor our engines materialize, compared
with ORT's CPU provider, in execution order, naming the first layer whose error passes its tolerance (what
Polygraphy's ``--mark all`` does for TensorRT).

How it runs:

1. The model is partitioned as a session partitions it (``graph_partitioner.partition``, the provider options'
   ``min_subgraph_size`` and ``op_types_to_exclude``).
2. ORT's CPU provider runs the model with every engine input marked as a graph output: the engines' inputs.
3. Each claimed subgraph, in the order a session runs them, is built for the shapes of those inputs exactly as a
   session builds it (passes, fusions, precision, layout, lowering and tactics). Intermediate values inside a
   fused layer no longer exist; the values the engine materializes are the outputs of its layers that keep an
   ONNX value's name. Those are tapped (``ep_trtpy/builder/taps.py``): on the reference backend the optimized
   graph gets them as extra outputs, on the GPU the plan's tensors become extra engine outputs, with the same
   layers and tactics. Marking values before the build would change the engine being debugged (fusions stop at
   a marked value; a channels-last region that must hand out NCHW copies can fall back to NCHW). ORT's CPU
   provider runs once more with those values marked: the reference of each.
4. Each engine runs on the reference values of its inputs, so an error shows at the layer that makes it and does
   not spill into the next engine. Values the engine holds channels-last are transposed back to NCHW, and 16-bit
   values are widened to float32, before they are compared.
5. Inside an engine, error made early reaches later layers, and some (a softmax over large logits) amplify it
   without computing anything wrong. A value that fails its tolerance is therefore traced to its layer
   (``_mark_local.py``): the layer is evaluated on the reference backend from the engine's own inputs
   (``introduced``: the engine's error in this layer alone) and from the reference run's inputs (``as_built``:
   the layer as the passes built it against the model's nodes). The layer fails only when one of those fails
   the tolerance; otherwise the value passes and is counted as inheriting its error (``inherited``, ``total_ok``).

Nodes left to ORT's CPU provider are not compared (they run the reference's own kernels). The subgraphs are the
raw model's, as ``ep-trtpy build`` and ``profile`` see them; a session partitions the graph after ORT's basic
optimizations, which may differ slightly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import onnx

from ep_trtpy.builder.taps import read_taps, tap_graph, tap_plan
from ep_trtpy.cli import harness
from ep_trtpy.cli._mark_local import attribute, chain
from ep_trtpy.engine.artifact import CPU, Device, EngineArtifact
from ep_trtpy.options import Options
from graph_partitioner.ir import Graph, Node, Value

@dataclass(frozen=True)
class Tolerance:
    """What a float value must meet: its relative RMS error ``||ours - ref|| / ||ref||`` at most ``rms`` (the error
    spread over the tensor: a wrong scale, a wrong channel) and its largest error over its largest magnitude,
    ``max|ours - ref| / max|ref|``, at most ``max_rel`` (a few elements far off); NaN and infinities where the
    reference has them. Integer and bool values must be equal."""

    rms: float
    max_rel: float


TOLERANCES = {"fp32": Tolerance(1e-4, 1e-3), "tf32": Tolerance(4e-2, 2e-1), "fp16": Tolerance(4e-2, 2e-1),
              "bf16": Tolerance(1e-1, 5e-1)}
"""Per engine precision. Errors of 16-bit engines grow with depth; these hold, with a margin, for every value of
the generated ResNet-50, MobileNetV2, BERT-base and YOLO-style detector measured on the reference backend
(largest relative RMS error: FP16 2.1e-2 and BF16 1.5e-1 in the detector, whose BF16 output also fails ``compare``;
1.8e-2 or less in BF16 elsewhere; TF32 emulated 1.5e-2). ``tf32`` (a float32 engine on the GPU with tf32_enable)
rounds GEMM and convolution inputs to FP16's 10-bit significand, so it shares FP16's."""

FP16_MAX = 65504.0
SENTINEL = 1e30
"""A reference magnitude at or above this is a masking constant (float32's lowest is -3.4e38), not data."""
TO_NCHW = (0, 3, 1, 2)
SUFFIXES = ("_nhwc", "_fp16", "_bf16", "_fp32")
"""Suffixes the precision and layout passes give a value whose name a converted copy takes over."""


@dataclass
class Measure:
    """How one value compares with the reference."""

    ok: bool = False
    max_abs: float = 0.0
    max_rel: float = 0.0
    rms: float = 0.0
    cosine: float = 1.0
    bad: int = 0
    """Elements outside an elementwise tolerance (--rtol/--atol), or non-finite where the reference is not."""
    note: str = ""


@dataclass
class Row(Measure):
    """One materialized value compared with the reference (its Measure plus where it comes from). ``ok`` is the
    verdict on its layer: the value is within tolerance, or its layer adds no error beyond it (``total_ok`` False,
    ``introduced`` and ``as_built`` within tolerance: the error is inherited)."""

    value: str = ""
    engine: int = 0
    step: int = 0
    """Position of the producing layer in the engine's execution order."""
    layer: str = ""
    op: str = ""
    fused: list[str] = field(default_factory=list)
    """The model's nodes the producing layer implements."""
    node: str = ""
    """The model's node that produces the value."""
    shape: list[int] = field(default_factory=list)
    precision: str = ""
    layout: str = ""
    total_ok: bool = True
    """The value against the reference run (inherited and introduced error together)."""
    introduced: Measure | None = None
    """Only where ``total_ok`` is False: the engine's value against its layer evaluated on the reference backend
    from the engine's own inputs (the error this layer's arithmetic adds)."""
    as_built: Measure | None = None
    """Only where ``total_ok`` is False: the layer evaluated from the reference run's inputs (float32, the result in
    the engine's dtype) against the reference run (a wrong rewrite, or a value its dtype cannot hold)."""
    inherited: Measure | None = None
    """Only where ``total_ok`` is False: the layer evaluated from the engine's inputs against the reference run
    (the error the inputs bring, as this layer passes it on)."""


@dataclass
class Report:
    model: str
    backend: str
    precision: str
    elementwise: harness.Tolerance | None = None
    rows: list[Row] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    engines: int = 0
    cpu_nodes: int = 0

    @property
    def first_failure(self) -> Row | None:
        return next((r for r in self.rows if not r.ok), None)

    def verdict(self) -> str:
        bad = self.first_failure
        if not self.rows:
            return "nothing to compare: no claimed node materializes a value of the model"
        inherit = [r for r in self.rows if r.ok and not r.total_ok]
        carried = ""
        if inherit:
            worst = max(inherit, key=lambda r: r.rms)
            carried = (f"; {len(inherit)} value(s) inherit error beyond tolerance from earlier layers (largest rel "
                       f"rms {worst.rms:.3g} at '{worst.value}'), no layer there adds it")
        if bad is None:
            if inherit:
                return f"PASS: no layer of the {len(self.rows)} values adds error beyond tolerance{carried}"
            return f"PASS: all {len(self.rows)} values our engines materialize are within tolerance"
        fused = f", fused from {', '.join(bad.fused)}" if bad.fused != [bad.layer] else ""
        n_bad = sum(not r.ok for r in self.rows)
        t = TOLERANCES.get(bad.precision)
        limit = ("--rtol/--atol" if self.elementwise is not None else "exact" if t is None else
                 f"{bad.precision}: rms <= {t.rms:g}, max rel <= {t.max_rel:g}")
        return (f"FAIL: first failing layer '{bad.layer}' ({bad.op}{fused}) in engine {bad.engine}: value "
                f"'{bad.value}' rel rms {bad.rms:.3g}, max rel {bad.max_rel:.3g}, cosine {bad.cosine:.6f}"
                f"{origin(bad)} ({limit}{'; ' + bad.note if bad.note else ''}); {n_bad} of {len(self.rows)} "
                f"values fail{carried}")

    def to_dict(self) -> dict[str, Any]:
        bad = self.first_failure
        return {"schema": "ep_trtpy.mark_all/1", "model": self.model, "backend": self.backend,
                "precision": self.precision, "engines": self.engines, "cpu_nodes": self.cpu_nodes,
                "tolerances": {k: asdict(t) for k, t in TOLERANCES.items()},
                "elementwise": None if self.elementwise is None else asdict(self.elementwise),
                "first_failure": None if bad is None else {"layer": bad.layer, "op": bad.op, "value": bad.value,
                                                          "engine": bad.engine},
                "verdict": self.verdict(), "rows": [asdict(r) for r in self.rows], "skipped": self.skipped}


def origin(row: Row) -> str:
    """', introduced rel rms a, max rel b; as built ...; inherited ...' for a value that fails against the
    reference run ('' otherwise)."""
    parts = [f"{what} rel rms {m.rms:.3g}, max rel {m.max_rel:.3g}" for what, m in
             (("introduced", row.introduced), ("as built", row.as_built), ("inherited", row.inherited)) if m]
    return "".join(f"; {p}" for p in parts)


# ------------------------------------------------------------------------------------------- backends --
class ReferenceBackend:
    """Engines on the numpy reference backend (the optimized graph, run by ep_trtpy.ops)."""

    name = "reference"

    def build(self, sub: Graph, shapes: dict[str, tuple[int, ...]], options: Options) -> EngineArtifact:
        from ep_trtpy.builder.build import build

        return build(sub, shapes, options, "reference", CPU)

    def holds(self, art: EngineArtifact, name: str) -> bool:
        v = art.graph.values.get(name)
        return v is not None and v.const is None and (v.producer is not None or v in art.graph.inputs)

    def run(self, art: EngineArtifact, names: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ep_trtpy.ops.executor import run_graph

        g = tap_graph(art.graph, names)
        outs = run_graph(g, {n: feeds[n] for n in art.input_names})
        return dict(zip(names, outs[len(outs) - len(names):]))


class CudaBackend:
    """Engines on the GPU: the tapped plan keeps the built engine's layers and tactics."""

    name = "cuda"

    def __init__(self, device: Device | None = None) -> None:
        self.device = device

    def build(self, sub: Graph, shapes: dict[str, tuple[int, ...]], options: Options) -> EngineArtifact:
        from ep_trtpy.builder.build import build
        from ep_trtpy.cli.build import _device

        if self.device is None:
            self.device = _device("cuda")
        return build(sub, shapes, options, "cuda", self.device)

    def holds(self, art: EngineArtifact, name: str) -> bool:
        assert art.plan is not None
        return any(t.name == name for t in art.plan.tensors)

    def execute(self, plan: Any, weights: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Host copies of the outputs of `plan` run on `inputs` (engine input order)."""
        import cupy as cp

        from ep_trtpy.runtime import build_engine, run_engine

        assert self.device is not None
        engine = build_engine(plan, weights, self.device.ordinal, tuning_level=0)
        outs = run_engine(engine, [cp.asarray(x) for x in inputs])
        cp.cuda.get_current_stream().synchronize()
        return [cp.asnumpy(y) for y in outs]

    def run(self, art: EngineArtifact, names: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert art.plan is not None
        plan, taps = tap_plan(art.plan, names)
        inputs = [np.ascontiguousarray(feeds[n]) for n in art.input_names]
        outs = self.execute(plan, art.weights, inputs)
        return read_taps(taps, inputs, outs, art.weights)


# ---------------------------------------------------------------------------------------------- steps --
def _reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """ORT's CPU provider's value of every name (model outputs and `names` marked as graph outputs)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=n))
            have.add(n)
    sess = harness.create_session(m, "cpu")
    out_names = [o.name for o in sess.get_outputs()]
    return {**feeds, **dict(zip(out_names, sess.run(None, feeds)))}


def _compute_node(v: Value) -> Node | None:
    """The layer that computes `v`: its producer, or, where `v` is a converted copy that took over the name (a
    float32 cast or an NCHW transpose of ``<v>_fp16`` / ``<v>_nhwc``), the layer behind that copy."""
    nodes = chain(v, SUFFIXES)
    return nodes[0] if nodes else None


def engine_precision(options: Options, backend: str) -> str:
    if options.fp16_enable:
        return "fp16"
    if options.bf16_enable:
        return "bf16"
    return "tf32" if backend == "cuda" and options.tf32_enable else "fp32"


def value_precision(dtype: np.dtype, engine: str) -> str:
    if dtype.kind not in "fc":
        return "int"
    if dtype == np.float16 and engine in ("fp32", "tf32"):
        return "fp16"
    return engine


def compare_value(ours: np.ndarray, ref: np.ndarray, precision: str, channels_last: bool,
                  elementwise: harness.Tolerance | None = None) -> Measure:
    """Our value (engine dtype and layout) against the reference's: :data:`TOLERANCES` of the precision, or
    `elementwise` (``|ours - ref| <= atol (* max|ref|) + rtol * |ref|`` for every element) when given.

    In FP16 and BF16, a masking sentinel (a reference element of magnitude >= 1e30, such as float32's lowest,
    -3.4e38, that attention masks add) matches a saturated element of the same sign (float16's -65504 or -inf,
    bfloat16's -inf: the engine clamps or rounds it by design). In FP16, any other reference element beyond
    float16's range that came out saturated is an overflow: it fails, and the note says so."""
    a = np.asarray(ours)
    if channels_last and a.ndim == 4:
        a = a.transpose(TO_NCHW)
    if a.shape != ref.shape:
        return Measure(False, note=f"shape {list(a.shape)} != reference {list(ref.shape)}")
    if ref.dtype.kind not in "fc":
        c = harness.compare("", a, ref, harness.EXACT)
        return Measure(c.ok, c.max_abs, c.max_rel, 0.0, c.cosine, c.mismatched, c.note)
    a64, r64 = a.astype(np.float64), ref.astype(np.float64)
    note = ""
    if precision in ("fp16", "bf16"):
        saturated = np.abs(a64) >= (FP16_MAX if precision == "fp16" else SENTINEL)
        sentinel = (np.isfinite(r64) & (np.abs(r64) >= SENTINEL) & saturated & (np.sign(a64) == np.sign(r64)))
        a64 = np.where(sentinel, r64, a64)
    if precision == "fp16":
        beyond = np.isfinite(r64) & (np.abs(r64) > FP16_MAX) & ~sentinel
        overflow = int(np.count_nonzero(beyond & (~np.isfinite(a64) | (np.abs(a64) == FP16_MAX))))
        if overflow:
            note = f"overflow: {overflow} element(s) beyond float16's range, up to {np.abs(r64).max():.3g}"
    if elementwise is not None:
        c = harness.compare("", a64, r64, elementwise)
        m = _measure(a64, r64)
        m.ok, m.bad, m.note = c.ok, c.mismatched, "; ".join(x for x in (note, c.note) if x)
        return m
    m = _measure(a64, r64)
    t = TOLERANCES[precision]
    m.ok = m.bad == 0 and m.rms <= t.rms and m.max_rel <= t.max_rel
    if m.bad:
        note = "; ".join(x for x in (note, f"{m.bad} NaN/Inf where the reference has none, or the reverse") if x)
    m.note = note
    return m


def _measure(a: np.ndarray, r: np.ndarray) -> Measure:
    """Error statistics over the elements finite in both; ``bad`` counts elements whose NaN or infinity the other
    side does not have."""
    nan_a, nan_r = np.isnan(a), np.isnan(r)
    bad = int(np.count_nonzero((nan_a != nan_r) | ((np.isinf(a) | np.isinf(r)) & ~(a == r) & ~(nan_a | nan_r))))
    finite = np.isfinite(a) & np.isfinite(r)
    af, rf = a[finite], r[finite]
    if rf.size == 0:
        return Measure(bad == 0, bad=bad)
    diff = np.abs(af - rf)
    max_abs, scale = float(diff.max()), float(np.abs(rf).max())
    err, size = float(np.linalg.norm(af - rf)), float(np.linalg.norm(rf))
    na = float(np.linalg.norm(af))
    return Measure(False, max_abs, max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf")),
                   err / size if size > 0 else (0.0 if err == 0 else float("inf")),
                   float(np.dot(af, rf) / (na * size)) if na > 0 and size > 0 else (1.0 if na == size else 0.0),
                   bad)


def _layout(name: str, art: EngineArtifact) -> str:
    return "NHWC" if name in set(art.channels_last) else ""


def debug(model: onnx.ModelProto, feeds: dict[str, np.ndarray], options: Options, backend: Any,
          label: str = "", tol: harness.Tolerance | None = None) -> Report:
    """Compare every value the engines of `model` materialize with ORT's CPU provider (see the module docstring).
    `backend` is a :class:`ReferenceBackend` or :class:`CudaBackend`; `tol` replaces the per-precision
    tolerances."""
    from graph_partitioner import partition as partition_module
    from graph_partitioner.onnx_io import graph_from_onnx

    model = harness.prepare_model(model)
    graph = graph_from_onnx(model)
    result = partition_module.partition(graph, options.min_subgraph_size, options.op_types_to_exclude)
    precision = engine_precision(options, backend.name)
    report = Report(label, backend.name, precision, tol, engines=len(result.clusters))
    report.cpu_nodes = len(graph.nodes) - sum(len(c) for c in result.clusters)
    producer = {o: n.name for n in model.graph.node for o in n.output if o}
    clusters = execution_order(graph, result.clusters)
    subs = [graph.subgraph(c, name=f"engine{k}") for k, c in enumerate(clusters)]
    made = [{o.name for n in c for o in n.outputs} for c in clusters]
    inputs = [v.name for sub in subs for v in sub.inputs if v.name not in feeds]
    ref = _reference(model, feeds, list(dict.fromkeys(inputs))) if inputs else dict(feeds)
    built = []
    for k, (sub, names) in enumerate(zip(subs, made)):
        art = backend.build(sub, {v.name: tuple(ref[v.name].shape) for v in sub.inputs}, options)
        rows = _materialized(art, names, producer, k)
        built.append((art, rows))
        kept = {r.value for r in rows}
        report.skipped += [{"value": n, "engine": k, "reason": _why_not(art, n)} for n in sorted(names - kept)]
    values = [r.value for _, rows in built for r in rows]
    ref.update(_reference(model, feeds, values) if values else {})  # only what the engines materialize
    model_values = set(producer) | {i.name for i in model.graph.input}

    def fetch(names: list[str]) -> None:
        wanted = [n for n in names if n in model_values and n not in ref]
        if wanted:
            ref.update(_reference(model, feeds, wanted))

    for art, rows in built:
        if not rows:
            continue
        engine_feeds = {n: ref[n] for n in art.input_names}
        ours = backend.run(art, [r.value for r in rows], engine_feeds)
        for row in rows:
            want = ref[row.value]
            row.precision = value_precision(want.dtype, precision)
            c = compare_value(ours[row.value], want, row.precision, row.layout == "NHWC", tol)
            for f in fields(Measure):
                setattr(row, f.name, getattr(c, f.name))
            row.total_ok = row.ok
            row.shape = list(want.shape)
            report.rows.append(row)
        failing = [r for r in rows if not r.total_ok]
        if failing:
            attribute(failing, art.graph, set(art.channels_last), SUFFIXES, lambda n, a=art: backend.holds(a, n),
                      lambda names, a=art, f=engine_feeds: backend.run(a, names, f), ref, fetch,
                      lambda ours, want, row, nhwc: compare_value(ours, want, row.precision, nhwc, tol))
    return report


def execution_order(graph: Graph, clusters: list[list[Node]]) -> list[list[Node]]:
    """The clusters in the order a session runs them: a topological order of the graph in which each cluster is
    one node (ties broken by the model's node order)."""
    import heapq

    owner: dict[int, int] = {}
    for k, c in enumerate(clusters):
        for n in c:
            owner[id(n)] = k
    unit = {id(n): ("c", owner[id(n)]) if id(n) in owner else ("n", i) for i, n in enumerate(graph.nodes)}
    first = {}
    for i, n in enumerate(graph.nodes):
        first.setdefault(unit[id(n)], i)
    deps: dict[tuple[str, int], set[tuple[str, int]]] = {u: set() for u in first}
    for n in graph.nodes:
        for v in n.inputs:
            if v is not None and v.producer is not None and unit[id(v.producer)] != unit[id(n)]:
                deps[unit[id(n)]].add(unit[id(v.producer)])
    users: dict[tuple[str, int], list[tuple[str, int]]] = {u: [] for u in first}
    for u, ds in deps.items():
        for d in ds:
            users[d].append(u)
    waiting = {u: len(ds) for u, ds in deps.items()}
    ready = [(first[u], u) for u, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, u = heapq.heappop(ready)
        order.append(u)
        for x in users[u]:
            waiting[x] -= 1
            if waiting[x] == 0:
                heapq.heappush(ready, (first[x], x))
    return [clusters[k] for kind, k in order if kind == "c"]


def _materialized(art: EngineArtifact, names: set[str], producer: dict[str, str], engine: int) -> list[Row]:
    """A row for every value of `names` the engine holds in memory, in the order its layers run."""
    g = art.graph
    in_plan = None if art.plan is None else {t.name for t in art.plan.tensors}
    order = {id(n): i for i, n in enumerate(g.nodes)}
    rows = []
    for node in g.nodes:
        for v in node.outputs:
            if v.name not in names or not (v.consumers or g.is_graph_output(v)):
                continue
            if in_plan is not None and v.name not in in_plan:
                continue
            layer = _compute_node(v) or node
            rows.append(Row(value=v.name, engine=engine, step=order[id(layer)], layer=layer.name, op=layer.key,
                            fused=art.fusions.get(layer.name, [layer.name]), node=producer.get(v.name, ""),
                            layout=_layout(v.name, art)))
    rows.sort(key=lambda r: r.step)
    return rows


def _why_not(art: EngineArtifact, name: str) -> str:
    v = art.graph.values.get(name)
    if v is None:
        return "inside a fused layer (never materialized)"
    if v.const is not None:
        return "folded into a constant at build time"
    return "not read by any layer (dead)"
