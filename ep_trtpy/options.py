"""Every provider option and environment variable, typed, with defaults and documentation.

:class:`Options` is the only place options are declared (one field each, with its parser, documentation and
aliases): :data:`SPECS`, parsing, validation, the README's option table (``python -m ep_trtpy.options
--markdown``) and the CLI's flags (``ep_trtpy.cli._common.add_option_flags``) are generated from it.

Provider options reach the EP as strings (``providers=[("TrtPyExecutionProvider", {"fp16_enable": "1"})]``).
ORT's TensorRT EP spellings are accepted as aliases (``trt_fp16_enable``), so switching from that EP means
changing only the provider name. Unknown keys and bad values raise :class:`OptionError` listing what is valid.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ep_trtpy.profiles.spec import Profile, ProfileError, canonical, parse_profiles


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


def _name(text: str) -> str:
    return str(text).strip()


ACCURACY_METRICS = ("cosine", "top1")


def parse_accuracy_target(text: str) -> tuple[str, float] | None:
    """``cosine:0.999`` -> ("cosine", 0.999); "" -> None. ValueError names what is wrong."""
    t = str(text).strip()
    if not t:
        return None
    metric, sep, value = t.partition(":")
    metric = metric.strip().lower()
    if not sep or metric not in ACCURACY_METRICS:
        raise ValueError(f"expected METRIC:VALUE with METRIC one of {', '.join(ACCURACY_METRICS)} "
                         f"(e.g. cosine:0.999 or top1:0.99)")
    try:
        threshold = float(value)
    except ValueError:
        raise ValueError(f"{value.strip()!r} is not a number (e.g. cosine:0.999)") from None
    if not 0 < threshold <= 1:
        raise ValueError(f"the {metric} target {threshold:g} is outside (0, 1]")
    return metric, threshold


def _accuracy_target(text: str) -> str:
    parsed = parse_accuracy_target(text)
    return "" if parsed is None else f"{parsed[0]}:{parsed[1]:g}"


@dataclass(frozen=True)
class Spec:
    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    type_name: str
    aliases: tuple[str, ...] = ()
    affects_engine: bool = True  # part of the engine cache key
    secret: bool = False  # never shown (repr, to_dict, error messages)


def _default_cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ep_trtpy")


def _option(default: Any, parse: Callable[[str], Any], type_name: str, doc: str, *aliases: str,
            affects_engine: bool = True, secret: bool = False) -> Any:
    """An option's one declaration: the :class:`Options` field with its :class:`Spec` (named after the field).
    A `secret` option never shows in a repr, :meth:`Options.to_dict` or an error message."""
    spec = Spec("", parse, default, doc, type_name, aliases, affects_engine, secret)
    return field(default=default, metadata={"spec": spec}, repr=not secret)


@dataclass(frozen=True)
class Options:
    """Parsed provider options: one field per option, declared here once (:data:`SPECS` is derived from it)."""

    device_id: int = _option(0, _nonneg_int, "int", "CUDA device ordinal the engines run on.", "trt_device_id",
                             affects_engine=False)
    fp16_enable: bool = _option(
        False, _bool, "bool",
        "Build FP16 engines: float32 activations and weights run in float16 (LayerNorm, Softmax and reductions "
        "accumulate in float32). The model's inputs and outputs keep their types.", "trt_fp16_enable")
    bf16_enable: bool = _option(
        False, _bool, "bool",
        "Build BF16 engines: float32 activations and weights run in bfloat16, with the same float32 accumulation "
        "as fp16_enable (bfloat16 has float32's range, so nothing overflows, at 3 significant digits). The model's "
        "inputs and outputs keep their types. With fp16_enable also on, FP16 wins.", "trt_bf16_enable")
    tf32_enable: bool = _option(
        True, _bool, "bool",
        "Let float32 matrix multiplications and convolutions use TF32 tensor cores (inputs rounded to 10 mantissa "
        "bits, float32 accumulation), as TensorRT and ORT's CUDA EP do by default. Turn it off for strict float32 "
        "(results within 1e-4 of the CPU provider).")
    int8_enable: bool = _option(
        False, _bool, "bool",
        "Build INT8 engines: convolutions and matrix products run on int8 data with int32 accumulation, with scales "
        "from int8_calibration_table_name (a float model) or from the model's QuantizeLinear/DequantizeLinear "
        "pairs (a QDQ model, which needs no table and is quantized even without this option). Without either it "
        "is an error that says how to calibrate (ep-trtpy calibrate).", "trt_int8_enable")
    int8_calibration_table_name: str = _option(
        "", _name, "path",
        "Calibration table of a float model (ep-trtpy calibrate, or ep_trtpy.calibrate): a path, or a file name "
        "in engine_cache_path. A table made for another model (a changed weight or model file) is an error.",
        "trt_int8_calibration_table_name")
    int8_use_native_calibration_table: bool = _option(
        False, _bool, "bool",
        "Read int8_calibration_table_name as a TensorRT calibration cache ('TRT-<version>-EntropyCalibration2' and "
        "'tensor: <hex scale>' lines) instead of ep_trtpy's JSON table; such a cache cannot be checked against the "
        "model.", "trt_int8_use_native_calibration_table")
    fp8_enable: bool = _option(
        False, _bool, "bool",
        "Quantize to FP8 (E4M3, scale = amax / 448) instead of INT8, with the same calibration table or FP8 "
        "QuantizeLinear/DequantizeLinear pairs. Needs compute capability 8.9 or newer (an error on older GPUs); "
        "the reference backend emulates E4M3 rounding exactly.")
    int8_accuracy_target: str = _option(
        "", _accuracy_target, "str",
        "Accuracy the calibrated engine must keep against FP32, 'cosine:0.999' (outputs' cosine similarity) or "
        "'top1:0.99' (agreement of the argmax): the table must come from a calibration with this target (or a "
        "stricter one), whose accuracy guard fell back its most sensitive layers to float.")
    builder_optimization_level: int = _option(
        3, _level, "int",
        "How hard the builder searches for each layer's fastest tactic: 0 = library heuristics only, nothing "
        "timed; 1-4 = time the heuristics' top 2, 4, 8 or 16 candidates (3: the top 8); 5 = time every "
        "candidate.", "trt_builder_optimization_level")
    timing_cache_enable: bool = _option(
        False, _bool, "bool",
        "Keep every tactic timing in a timing cache file (timing_cache_path) and reuse it: a layer already timed "
        "on this GPU with these library versions is not timed again, by any engine or process.",
        "trt_timing_cache_enable", affects_engine=False)
    timing_cache_path: str = _option(
        "", _path, "path", "Folder of the timing cache files (created if missing). Default: the engine cache folder.",
        "trt_timing_cache_path", affects_engine=False)
    cuda_graph_enable: bool = _option(
        True, _bool, "bool",
        "Replay each engine's launch list as a CUDA graph (captured once per set of input/output addresses, after "
        "a first direct run): one launch per run instead of one per layer. Engines whose capture fails, or whose "
        "addresses keep changing, run layer by layer.", "trt_cuda_graph_enable", affects_engine=False)
    engine_cache_enable: bool = _option(
        False, _bool, "bool",
        "Save built engines to engine_cache_path and load them in later sessions instead of building.",
        "trt_engine_cache_enable", affects_engine=False)
    engine_cache_path: str = _option(
        "", _path, "path",
        "Folder of the engine cache (created if missing). Default: $XDG_CACHE_HOME/ep_trtpy or ~/.cache/ep_trtpy.",
        "trt_engine_cache_path", affects_engine=False)
    engine_cache_hmac_key: str = _option(
        "", str, "secret",
        "A shared secret for engine files from an untrusted or shared engine_cache_path: engines are written with "
        "an HMAC-SHA256 tag of this key, and a file without the tag of the same key is rejected and rebuilt (see "
        "Engine cache trust). Empty: files are checked for damage (SHA-256) but not for who wrote them.",
        affects_engine=False, secret=True)
    min_subgraph_size: int = _option(
        1, _pos_int, "int",
        "Smallest number of nodes a claimed subgraph may have; smaller clusters are left to the CPU provider.",
        "trt_min_subgraph_size", affects_engine=False)
    op_types_to_exclude: tuple[str, ...] = _option(
        (), _str_list, "list", "Comma-separated op types never claimed (e.g. 'Resize,Einsum'), spelled as in ONNX; an "
        "unknown name (a typo, 'conv') is a warning that names it and the op type it likely means.",
        "trt_op_types_to_exclude", affects_engine=False)
    dump_subgraphs: bool = _option(
        False, _bool, "bool",
        "Write each claimed subgraph as an ONNX model (<engine_cache_path>/subgraphs/) for debugging.",
        "trt_dump_subgraphs", affects_engine=False)
    detailed_build_log: bool = _option(
        False, _bool, "bool",
        "Log every build step at INFO level: passes, fusions, lowering, each layer's timed tactic candidates with "
        "their times and the winner, and (when stderr is not a terminal) build progress as log lines.",
        "trt_detailed_build_log", affects_engine=False)
    # Profiles are not in the engine key: they decide which shapes an engine is built for, and the chosen
    # profile's own ranges (Profile.engine_key_items) join the key with the shapes. Keying on the option text
    # would make adding a second profile, or changing profile_strict, rebuild every engine of the first.
    profile_min_shapes: str = _option(
        "", canonical, "shapes",
        "Smallest input shapes of each optimization profile, 'NAME:DIMxDIM,...' (e.g. 'input_ids:1x8,"
        "attention_mask:1x8'); a name given again starts the next profile. Given with profile_opt_shapes and "
        "profile_max_shapes or not at all (see Optimization profiles).", "trt_profile_min_shapes",
        affects_engine=False)
    profile_opt_shapes: str = _option(
        "", canonical, "shapes",
        "Shapes each optimization profile's engine is tuned for, in profile_min_shapes' syntax, between its min "
        "and max in every dimension.", "trt_profile_opt_shapes", affects_engine=False)
    profile_max_shapes: str = _option(
        "", canonical, "shapes",
        "Largest input shapes of each optimization profile (memory is planned for them), in profile_min_shapes' "
        "syntax.", "trt_profile_max_shapes", affects_engine=False)
    profile_strict: bool = _option(
        False, _bool, "bool",
        "With profiles given: input shapes outside every profile are an error naming the profiles, instead of a "
        "logged build of an engine for those shapes.", affects_engine=False)
    session: Mapping[str, str] = field(default_factory=dict)  # ep.* session entries (context_enable, ...)

    @functools.cached_property
    def profiles(self) -> tuple[Profile, ...]:
        """The optimization profiles of profile_min/opt/max_shapes, parsed once; () without them. A
        :class:`ProfileError` (a ValueError) when they disagree (:func:`parse` reports it as an OptionError)."""
        return parse_profiles(self.profile_min_shapes, self.profile_opt_shapes, self.profile_max_shapes)

    @property
    def cache_dir(self) -> str:
        return self.engine_cache_path or _default_cache_path()

    @property
    def timing_cache_dir(self) -> str:
        return self.timing_cache_path or self.cache_dir

    def engine_key_items(self) -> dict[str, Any]:
        """The options that change what an engine computes or how (part of the engine cache key)."""
        return {s.name: _jsonable(getattr(self, s.name)) for s in SPECS if s.affects_engine}

    @property
    def hmac_key(self) -> bytes:
        """engine_cache_hmac_key as the bytes HMAC takes (empty: no authentication)."""
        return self.engine_cache_hmac_key.encode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: ("<set>" if f.metadata["spec"].secret and getattr(self, f.name) else
                         _jsonable(getattr(self, f.name))) for f in fields(self) if f.name != "session"}


SPECS: tuple[Spec, ...] = tuple(replace(f.metadata["spec"], name=f.name) for f in fields(Options)
                                if "spec" in f.metadata)
"""Every provider option, in declaration order (parsing, aliases, documentation, engine key)."""

_BY_NAME: dict[str, Spec] = {}
for _s in SPECS:
    _BY_NAME[_s.name] = _s
    for _a in _s.aliases:
        _BY_NAME[_a] = _s

# Session-level keys ORT or we pass through alongside provider options; accepted, not validated as ours.
PASSTHROUGH_PREFIXES = ("ep.",)


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def valid_names() -> list[str]:
    return [s.name for s in SPECS]


def _nearest_option(key: str) -> str | None:
    """The option a mistyped key most likely means: the one option whose name contains it (``fp16`` ->
    ``fp16_enable``), else the closest spelling."""
    k = key.strip().lower()
    holding = {s.name for name, s in _BY_NAME.items() if k and k in name}
    if len(holding) == 1:
        return holding.pop()
    near = difflib.get_close_matches(k, list(_BY_NAME), n=1, cutoff=0.6)
    return _BY_NAME[near[0]].name if near else None


def parse(raw: Mapping[str, str], together: bool = True) -> Options:
    """Options from ORT's string map. Raises OptionError for unknown keys or bad values. ``together=False``
    checks each key and value on its own only, not what options must agree on (the optimization profiles):
    for a command line that sees its options one at a time."""
    values: dict[str, Any] = {}
    session: dict[str, str] = {}
    for key, text in raw.items():
        if key.startswith(PASSTHROUGH_PREFIXES):
            session[key] = str(text)
            continue
        spec = _BY_NAME.get(key)
        if spec is None:
            near = _nearest_option(str(key))
            hint = f" (did you mean '{near}'?)" if near else ""
            raise OptionError(f"unknown TrtPyExecutionProvider option '{key}'{hint}; valid options: "
                              f"{', '.join(valid_names())} (ORT TensorRT EP spellings with the 'trt_' prefix are "
                              f"accepted too)")
        if spec.name in values:
            raise OptionError(f"option '{spec.name}' given twice (as '{key}' and another spelling)")
        try:
            values[spec.name] = spec.parse(text)
        except (ValueError, TypeError) as e:
            shown = "(hidden)" if spec.secret else repr(text)
            raise OptionError(f"bad value {shown} for TrtPyExecutionProvider option '{key}': {e}") from None
    warn_unknown_op_types(values.get("op_types_to_exclude", ()))
    options = Options(**values, session=session)
    if not together:
        return options
    try:
        options.profiles  # noqa: B018 (parsed and checked now, at session creation; kept on the object)
    except ProfileError as e:
        raise OptionError(str(e)) from None
    return options


@functools.lru_cache(maxsize=1)
def _known_op_types() -> dict[str, str]:
    """Every op type op_types_to_exclude can name, lower-cased -> spelled: ONNX's (all domains onnx knows) and the
    keys of ep_trtpy's support rules (``ep_trtpy::Pointwise``, contrib ops)."""
    import onnx.defs

    from graph_partitioner.support import rules

    names = {s.name for s in onnx.defs.get_all_schemas_with_history()} | set(rules())
    names |= {k.rpartition("::")[2] for k in rules()}
    return {n.lower(): n for n in sorted(names)}


def unknown_op_types(names: Iterable[str]) -> list[str]:
    """The names in ``names`` that are no known op type, each as text with the correctly-cased op type when one
    matches case-insensitively (``"'conv' (did you mean 'Conv'?)"``) or a close one."""
    names = list(names)
    if not names:  # the usual case: no need to load the table of every op type (about 50 ms)
        return []
    known = _known_op_types()
    spelled = set(known.values())
    out = []
    for name in names:
        if name in spelled:
            continue
        hit = known.get(name.lower())
        if hit is None:
            near = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.8)
            hit = known[near[0]] if near else None
        out.append(f"'{name}'" + (f" (did you mean '{hit}'?)" if hit else ""))
    return out


_warned_op_types: set[tuple[str, ...]] = set()


def warn_unknown_op_types(names: Iterable[str]) -> list[str]:
    """Log (once per process for the same names) a warning naming the unknown op types in op_types_to_exclude;
    returns them (see :func:`unknown_op_types`)."""
    unknown = unknown_op_types(names)
    if unknown and tuple(unknown) not in _warned_op_types:
        _warned_op_types.add(tuple(unknown))
        logging.getLogger("ep_trtpy").warning(
            "op_types_to_exclude names unknown op types, which exclude nothing: %s (op types are case-sensitive "
            "ONNX names such as 'Conv', or keys such as 'ep_trtpy::Pointwise')", ", ".join(unknown))
    return unknown


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
