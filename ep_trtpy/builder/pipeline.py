"""The optimization pipeline: which passes run, in which order, and how often.

A pass is a module in :mod:`ep_trtpy.builder.passes` that defines ``NAME`` and ``run(graph, ctx) -> bool``; it
rewrites the graph in place and returns whether it changed anything. :data:`PIPELINE` below is the one list that
decides the order; a stage marked ``repeat`` runs its passes again and again until none of them changes the
graph (a fixed point, bounded by :data:`MAX_ROUNDS`).

Every pass run is timed; the timings go to the log (INFO when ``detailed_build_log`` is on, DEBUG otherwise)
and to ``ctx.records``. A dump hook (``ctx.dump(label, graph)``) sees the graph after every pass that changed it.

Passes report patterns that *almost* matched through :meth:`PassContext.refuse` (a sentence naming the value),
and record which original nodes a fused node came from through :meth:`PassContext.record_fusion`, so that
``ep-trtpy inspect`` can show the fusions of every layer.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from ep_trtpy.options import Options
from graph_partitioner.ir import BFLOAT16, FLOAT16, Graph, Node

if TYPE_CHECKING:
    from ep_trtpy.builder.weight_reuse import ConstMemo

log = logging.getLogger("ep_trtpy.builder")
T = TypeVar("T")

DEFAULT_FOLD_LIMIT = 1 << 20
"""Constant folding keeps results up to this many elements (larger ones stay nodes unless they are no bigger
than the constants they came from)."""

MAX_ROUNDS = 8


@dataclass(frozen=True)
class Stage:
    """A named group of passes; with ``repeat`` the group runs until no pass changes the graph."""

    name: str
    passes: tuple[str, ...]
    repeat: bool = False


PIPELINE: tuple[Stage, ...] = (
    Stage("bind", ("infer_shapes",)),
    Stage("quantize_explicit", ("fold_qdq",)),
    Stage("simplify", ("fold_constants", "merge_duplicates", "eliminate_identities", "eliminate_dead_nodes"),
          repeat=True),
    Stage("canonicalize", ("fold_batchnorm", "rewrite_einsum")),
    Stage("quantize_calibrated", ("quantize_calibrated", "fold_qdq")),
    Stage("simplify_again", ("fold_constants", "merge_duplicates", "eliminate_identities", "eliminate_dead_nodes"),
          repeat=True),
    Stage("fuse_patterns", ("fuse_layernorm", "fuse_gelu", "fuse_attention")),
    Stage("fuse_linear", ("fuse_conv", "fuse_matmul", "merge_qkv", "fold_transposes", "fuse_add_layernorm")),
    Stage("pointwise", ("canonicalize_pointwise",)),
    Stage("precision", ("reduce_precision",)),
    Stage("layout", ("layout_nhwc",)),
    Stage("fuse_elementwise", ("fuse_cast_transpose", "fuse_pointwise", "eliminate_dead_nodes")),
)
"""The optimization pipeline, in order. Lowering, tactic selection and the memory plan follow in build.py."""


@dataclass
class PassRecord:
    stage: str
    name: str
    seconds: float
    changed: bool
    nodes_after: int

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "pass": self.name, "seconds": round(self.seconds, 6), "changed": self.changed,
                "nodes_after": self.nodes_after}


@dataclass
class PassContext:
    """What every pass may consult and report to."""

    options: Options = field(default_factory=Options)
    backend: str = "reference"  # what the engine runs on: "cuda" or "reference"
    device_cc: tuple[int, int] = (0, 0)  # the GPU's compute capability (cuda)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    fold_limit: int = DEFAULT_FOLD_LIMIT
    dump: Callable[[str, Graph], None] | None = None
    fusions: dict[str, list[str]] = field(default_factory=dict)  # node name -> original node names
    channels_last: set[str] = field(default_factory=set)  # values layout_nhwc keeps in NHWC (their NCHW shape permuted)
    refusals: list[str] = field(default_factory=list)
    records: list[PassRecord] = field(default_factory=list)
    current_pass: str = ""
    memo: ConstMemo | None = None  # weight transforms shared by the builds of one program (weight_reuse.py)

    @property
    def detailed(self) -> bool:
        return self.options.detailed_build_log

    @property
    def fp16(self) -> bool:
        return self.options.fp16_enable

    @property
    def bf16(self) -> bool:
        return self.options.bf16_enable

    @property
    def reduced_precision(self) -> int | None:
        """The 16-bit type float32 compute runs in: FLOAT16 (fp16_enable wins), BFLOAT16, or None (float32)."""
        return FLOAT16 if self.fp16 else BFLOAT16 if self.bf16 else None

    def runs(self, key: str) -> bool:
        """Whether the engine's backend can run op `key` (the reference backend runs every op it knows; the cuda
        backend refuses the ops whose lowering says so, see ep_trtpy/builder/lowering/quantize.py)."""
        if self.backend != "cuda":
            return True
        from ep_trtpy.builder.lowering.quantize import gpu_refusals

        return key not in gpu_refusals()

    @property
    def tf32(self) -> bool:
        """Whether float32 convolutions and matrix products may run on TF32 tensor cores (``tf32_enable``)."""
        return self.options.tf32_enable

    def derived(self, key: tuple, compute: Callable[[], T]) -> T:
        """compute(), or with a memo the result an earlier build of the program derived under the same key (the
        transform's name, its input arrays, its parameters; see ep_trtpy/builder/weight_reuse.py)."""
        return compute() if self.memo is None else self.memo.get(key, compute)

    def interned(self, array: Any) -> Any:
        """`array`, or with a memo the equal array an earlier build interned (small computed constants)."""
        return array if self.memo is None else self.memo.intern(array)

    def info(self, msg: str, *args: Any) -> None:
        """A build-log line: INFO with detailed_build_log, else DEBUG."""
        log.log(logging.INFO if self.detailed else logging.DEBUG, msg, *args)

    def refuse(self, message: str) -> None:
        """A pattern almost matched but was not rewritten; `message` names the value and the reason."""
        text = f"{self.current_pass}: {message}" if self.current_pass else message
        self.refusals.append(text)
        self.info("%s", text)

    def origin(self, name: str) -> list[str]:
        """The original nodes a node stands for (itself if it was not made by a fusion)."""
        return list(self.fusions.get(name, [name]))

    def record_fusion(self, new_name: str, old: Iterable[Node | str]) -> None:
        """Remember that node `new_name` implements the original nodes behind `old`."""
        names: list[str] = []
        for n in old:
            for o in self.origin(n if isinstance(n, str) else n.name):
                if o not in names:
                    names.append(o)
        self.fusions[new_name] = names


def load_pass(name: str) -> ModuleType:
    mod = importlib.import_module(f"ep_trtpy.builder.passes.{name}")
    if getattr(mod, "NAME", None) != name or not callable(getattr(mod, "run", None)):
        raise ValueError(f"pass module ep_trtpy.builder.passes.{name} must define NAME = {name!r} and run(graph, ctx)")
    return mod


def run_pass(name: str, graph: Graph, ctx: PassContext, stage: str = "") -> bool:
    """Run one pass with timing, logging and the dump hook; returns whether it changed the graph."""
    mod = load_pass(name)
    ctx.current_pass = name
    t0 = time.perf_counter()
    try:
        changed = bool(mod.run(graph, ctx))
    finally:
        ctx.current_pass = ""
    dt = time.perf_counter() - t0
    ctx.records.append(PassRecord(stage, name, dt, changed, len(graph.nodes)))
    ctx.info("pass %-24s %8.2f ms  %s  (%d nodes)", name, dt * 1e3, "changed" if changed else "no change",
             len(graph.nodes))
    if changed and ctx.dump is not None:
        ctx.dump(f"{len(ctx.records):03d}_{name}", graph)
    return changed


def run_pipeline(graph: Graph, ctx: PassContext, pipeline: Iterable[Stage] = PIPELINE) -> Graph:
    """Run every stage of `pipeline` over `graph` in place; returns the graph."""
    t0 = time.perf_counter()
    for stage in pipeline:
        for _round in range(MAX_ROUNDS if stage.repeat else 1):
            changed = False
            for name in stage.passes:
                changed |= run_pass(name, graph, ctx, stage.name)
            if not changed:
                break
        else:
            if stage.repeat:
                log.debug("stage %s did not reach a fixed point in %d rounds", stage.name, MAX_ROUNDS)
    ctx.info("optimized graph '%s' in %.1f ms: %d nodes", graph.name, (time.perf_counter() - t0) * 1e3,
             len(graph.nodes))
    return graph


def pass_names(pipeline: Iterable[Stage] = PIPELINE) -> list[str]:
    """Every distinct pass in the pipeline, in first-use order."""
    out: list[str] = []
    for st in pipeline:
        for p in st.passes:
            if p not in out:
                out.append(p)
    return out
