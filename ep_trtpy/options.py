"""Every provider option and environment variable, typed, with defaults and documentation.

This table is the only place options are declared: parsing, validation, the README's option table
(``python -m ep_trtpy.options --markdown``) and the CLI's flags are generated from it.

Provider options reach the EP as strings (``providers=[("TrtPyExecutionProvider", {"fp16_enable": "1"})]``).
ORT's TensorRT EP spellings are accepted as aliases (``trt_fp16_enable``), so switching from that EP means
changing only the provider name. Unknown keys and bad values raise :class:`OptionError` listing what is valid.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any


class OptionError(ValueError):
    """An unknown provider option or a bad value (the message lists the valid ones)."""


def _bool(text: str) -> bool:
    t = str(text).strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected 0/1 (or true/false)")


def _nonneg_int(text: str) -> int:
    v = int(str(text).strip())
    if v < 0:
        raise ValueError("expected a non-negative integer")
    return v


def _pos_int(text: str) -> int:
    v = int(str(text).strip())
    if v < 1:
        raise ValueError("expected an integer >= 1")
    return v


def _level(text: str) -> int:
    v = int(str(text).strip())
    if not 0 <= v <= 5:
        raise ValueError("expected an integer from 0 to 5")
    return v


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in str(text).split(",") if s.strip())


def _path(text: str) -> str:
    return os.path.abspath(os.path.expanduser(str(text))) if str(text).strip() else ""


@dataclass(frozen=True)
class Spec:
    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    type_name: str
    aliases: tuple[str, ...] = ()
    affects_engine: bool = True  # part of the engine cache key


def _default_cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ep_trtpy")


SPECS: tuple[Spec, ...] = (
    Spec("device_id", _nonneg_int, 0, "CUDA device ordinal the engines run on.", "int", ("trt_device_id",),
         affects_engine=False),
    Spec("fp16_enable", _bool, False,
         "Build FP16 engines: float32 activations and weights run in float16 (LayerNorm, Softmax and reductions "
         "accumulate in float32). The model's inputs and outputs keep their types.", "bool", ("trt_fp16_enable",)),
    Spec("bf16_enable", _bool, False,
         "Build BF16 engines: float32 activations and weights run in bfloat16, with the same float32 accumulation "
         "as fp16_enable (bfloat16 has float32's range, so nothing overflows, at 3 significant digits). The model's "
         "inputs and outputs keep their types. With fp16_enable also on, FP16 wins.", "bool", ("trt_bf16_enable",)),
    Spec("tf32_enable", _bool, True,
         "Let float32 matrix multiplications and convolutions use TF32 tensor cores (inputs rounded to 10 mantissa "
         "bits, float32 accumulation), as TensorRT and ORT's CUDA EP do by default. Turn it off for strict float32 "
         "(results within 1e-4 of the CPU provider).", "bool"),
    Spec("builder_optimization_level", _level, 3,
         "How hard the builder searches for each layer's fastest tactic: 0 = library heuristics only, nothing "
         "timed; 1-4 = time the heuristics' top 2, 4, 8 or 16 candidates (3: the top 8); 5 = time every "
         "candidate.", "int", ("trt_builder_optimization_level",)),
    Spec("timing_cache_enable", _bool, False,
         "Keep every tactic timing in a timing cache file (timing_cache_path) and reuse it: a layer already timed "
         "on this GPU with these library versions is not timed again, by any engine or process.", "bool",
         ("trt_timing_cache_enable",), affects_engine=False),
    Spec("timing_cache_path", _path, "",
         "Folder of the timing cache files (created if missing). Default: the engine cache folder.", "path",
         ("trt_timing_cache_path",), affects_engine=False),
    Spec("cuda_graph_enable", _bool, True,
         "Replay each engine's launch list as a CUDA graph (captured once per set of input/output addresses, after "
         "a first direct run): one launch per run instead of one per layer. Engines whose capture fails, or whose "
         "addresses keep changing, run layer by layer.", "bool", ("trt_cuda_graph_enable",), affects_engine=False),
    Spec("engine_cache_enable", _bool, False,
         "Save built engines to engine_cache_path and load them in later sessions instead of building.", "bool",
         ("trt_engine_cache_enable",), affects_engine=False),
    Spec("engine_cache_path", _path, "",
         "Folder of the engine cache (created if missing). Default: $XDG_CACHE_HOME/ep_trtpy or "
         "~/.cache/ep_trtpy.", "path", ("trt_engine_cache_path",), affects_engine=False),
    Spec("min_subgraph_size", _pos_int, 1,
         "Smallest number of nodes a claimed subgraph may have; smaller clusters are left to the CPU provider.",
         "int", ("trt_min_subgraph_size",), affects_engine=False),
    Spec("op_types_to_exclude", _str_list, (),
         "Comma-separated op types never claimed (e.g. 'Resize,Einsum').", "list", ("trt_op_types_to_exclude",),
         affects_engine=False),
    Spec("dump_subgraphs", _bool, False,
         "Write each claimed subgraph as an ONNX model (<engine_cache_path>/subgraphs/) for debugging.", "bool",
         ("trt_dump_subgraphs",), affects_engine=False),
    Spec("detailed_build_log", _bool, False,
         "Log every build step at INFO level: passes, fusions, lowering, each layer's timed tactic candidates with "
         "their times and the winner, and (when stderr is not a terminal) build progress as log lines.", "bool",
         ("trt_detailed_build_log",), affects_engine=False),
)

_BY_NAME: dict[str, Spec] = {}
for _s in SPECS:
    _BY_NAME[_s.name] = _s
    for _a in _s.aliases:
        _BY_NAME[_a] = _s

# Session-level keys ORT or we pass through alongside provider options; accepted, not validated as ours.
PASSTHROUGH_PREFIXES = ("ep.",)


@dataclass(frozen=True)
class Options:
    """Parsed provider options."""

    device_id: int = 0
    fp16_enable: bool = False
    bf16_enable: bool = False
    tf32_enable: bool = True
    builder_optimization_level: int = 3
    timing_cache_enable: bool = False
    timing_cache_path: str = ""
    cuda_graph_enable: bool = True
    engine_cache_enable: bool = False
    engine_cache_path: str = ""
    min_subgraph_size: int = 1
    op_types_to_exclude: tuple[str, ...] = ()
    dump_subgraphs: bool = False
    detailed_build_log: bool = False
    session: Mapping[str, str] = field(default_factory=dict)  # ep.* session entries (context_enable, ...)

    @property
    def cache_dir(self) -> str:
        return self.engine_cache_path or _default_cache_path()

    @property
    def timing_cache_dir(self) -> str:
        return self.timing_cache_path or self.cache_dir

    def engine_key_items(self) -> dict[str, Any]:
        """The options that change what an engine computes or how (part of the engine cache key)."""
        return {s.name: _jsonable(getattr(self, s.name)) for s in SPECS if s.affects_engine}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self) if f.name != "session"}


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def valid_names() -> list[str]:
    return [s.name for s in SPECS]


def parse(raw: Mapping[str, str]) -> Options:
    """Options from ORT's string map. Raises OptionError for unknown keys or bad values."""
    values: dict[str, Any] = {}
    session: dict[str, str] = {}
    for key, text in raw.items():
        if key.startswith(PASSTHROUGH_PREFIXES):
            session[key] = str(text)
            continue
        spec = _BY_NAME.get(key)
        if spec is None:
            raise OptionError(f"unknown TrtPyExecutionProvider option '{key}'; valid options: "
                              f"{', '.join(valid_names())} (ORT TensorRT EP spellings with the 'trt_' prefix are "
                              f"accepted too)")
        if spec.name in values:
            raise OptionError(f"option '{spec.name}' given twice (as '{key}' and another spelling)")
        try:
            values[spec.name] = spec.parse(text)
        except (ValueError, TypeError) as e:
            raise OptionError(f"bad value {text!r} for TrtPyExecutionProvider option '{key}': {e}") from None
    return Options(**values, session=session)


def markdown_table() -> str:
    """The README's option table."""
    rows = ["| option | type | default | ORT TensorRT EP alias | meaning |", "|---|---|---|---|---|"]
    for s in SPECS:
        default = ",".join(s.default) if isinstance(s.default, tuple) else s.default
        if isinstance(default, bool):
            default = int(default)
        rows.append(f"| `{s.name}` | {s.type_name} | `{default}` | {', '.join(f'`{a}`' for a in s.aliases)} "
                    f"| {s.doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    if "--markdown" in sys.argv:
        print(markdown_table())
    else:
        for s in SPECS:
            print(f"{s.name:24s} {s.type_name:6s} default={s.default!r}  {s.doc}")
