"""Guards of the tree's shape (DESIGN.md §3 and §8): source files stay under 600 lines, and no import runs
against the layering.

Layering, lowest first; a module imports only from its own layer or lower ones (imports inside functions count):

    graph_partitioner          the IR, support rules, partitioning: nothing of ep_trtpy
    ep_trtpy._version, options, profiles, _sync, devices, _kernels (native)
    ep_trtpy.engine            engine data, file format, cache: the IR only (graph_partitioner.ir / onnx_io)
    ep_trtpy.quantize          quantized arithmetic, calibration methods, the calibration table
    ep_trtpy.ops, runtime, models
    ep_trtpy.tuner
    ep_trtpy.builder
    ep_trtpy.epcontext         EPContext nodes: writing their attributes, loading and checking their engines
    ep_trtpy.calibration       calibrate(): activations through ORT, the table, the accuracy guard, its report
    ep_trtpy._host             the shim's Python side
    ep_trtpy                   the package face (register, runtime_stats)
    ep_trtpy.cli, __main__

and the native runtime (cuda_kernels/runtime, kernels, include) includes neither Python, pybind11 nor ORT headers
(those belong to cuda_kernels/bindings and cuda_kernels/shim).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600
SOURCE_SUFFIXES = {".py", ".cpp", ".h", ".cu", ".cuh"}

LAYERS: tuple[tuple[str, ...], ...] = (
    ("graph_partitioner",),
    ("ep_trtpy._version", "ep_trtpy.options", "ep_trtpy.profiles", "ep_trtpy._sync", "ep_trtpy.devices",
     "ep_trtpy._kernels"),
    ("ep_trtpy.engine",),
    ("ep_trtpy.quantize",),
    ("ep_trtpy.ops", "ep_trtpy.runtime", "ep_trtpy.models"),
    ("ep_trtpy.tuner",),
    ("ep_trtpy.builder",),
    ("ep_trtpy.epcontext",),
    ("ep_trtpy.calibration",),
    ("ep_trtpy._host",),
    ("ep_trtpy",),
    ("ep_trtpy.cli", "ep_trtpy.__main__"),
)
LAYER_OF = {unit: k for k, units in enumerate(LAYERS) for unit in units}
ENGINE_MAY_IMPORT = ("ep_trtpy.engine", "graph_partitioner.ir", "graph_partitioner.onnx_io")
NATIVE_RUNTIME = ("cuda_kernels/runtime", "cuda_kernels/kernels", "cuda_kernels/include")
FOREIGN_HEADER = re.compile(
    r'^\s*#\s*include\s*[<"](Python\.h|pybind11/[^>"]*|onnxruntime[^>"]*|(?:tp/)?ort_abi\.h)[>"]', re.M)


def _sources(*folders: str, suffixes: set[str] = SOURCE_SUFFIXES) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*")
                  if p.suffix in suffixes and p.is_file() and "__pycache__" not in p.parts)


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    """Every module `path` imports, anywhere in it; ``from pkg import name`` counts as ``pkg.name``."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out += [f"{base}.{a.name}" for a in node.names]
    return out


def _unit(module: str) -> str | None:
    """The layer unit of a module of ours (None: not ours); ``ep_trtpy.X`` that is no unit is the package face."""
    parts = module.split(".")
    if parts[0] == "graph_partitioner":
        return "graph_partitioner"
    if parts[0] != "ep_trtpy":
        return None
    return f"ep_trtpy.{parts[1]}" if len(parts) > 1 and f"ep_trtpy.{parts[1]}" in LAYER_OF else "ep_trtpy"


def import_graph() -> dict[str, set[str]]:
    """unit -> the units it imports (the closing note of issue 9 prints this)."""
    graph: dict[str, set[str]] = {}
    for path in _sources("ep_trtpy", "graph_partitioner", suffixes={".py"}):
        src = _unit(_module(path))
        assert src is not None
        graph.setdefault(src, set()).update(u for u in map(_unit, _imports(path)) if u is not None and u != src)
    return graph


def test_source_files_stay_under_the_line_budget() -> None:
    over = [f"{p.relative_to(ROOT)}: {n} lines" for p in _sources("ep_trtpy", "graph_partitioner", "cuda_kernels")
            if (n := len(p.read_text(errors="replace").splitlines())) > MAX_LINES]
    assert over == [], f"split these by concern (limit {MAX_LINES} lines)"


def test_every_unit_has_a_layer() -> None:
    units = {".".join(_module(p).split(".")[:2]) for p in _sources("ep_trtpy", suffixes={".py"})}
    missing = sorted(u for u in units if u not in LAYER_OF)
    assert missing == [], "add these to LAYERS (tests/test_layering.py) in the layer they belong to"


def test_no_import_runs_against_the_layering() -> None:
    against = [f"{src} (layer {LAYER_OF[src]}) imports {dst} (layer {LAYER_OF[dst]})"
               for src, dsts in sorted(import_graph().items()) for dst in sorted(dsts)
               if LAYER_OF[dst] > LAYER_OF[src]]
    assert against == []


def test_graph_partitioner_imports_nothing_of_ep_trtpy() -> None:
    bad = [f"{p.relative_to(ROOT)}: {m}" for p in _sources("graph_partitioner", suffixes={".py"})
           for m in _imports(p) if m.split(".")[0] == "ep_trtpy"]
    assert bad == []


def test_the_engine_package_imports_only_the_ir() -> None:
    bad = [f"{p.relative_to(ROOT)}: {m}" for p in _sources("ep_trtpy/engine", suffixes={".py"})
           for m in _imports(p) if _unit(m) is not None
           and not any(m == ok or m.startswith(ok + ".") for ok in ENGINE_MAY_IMPORT)]
    assert bad == []


def test_the_native_runtime_includes_no_python_pybind11_or_ort_header() -> None:
    bad = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}" for p in _sources(*NATIVE_RUNTIME)
           for m in FOREIGN_HEADER.finditer(p.read_text(errors="replace"))]
    assert bad == []
