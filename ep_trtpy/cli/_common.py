"""Argument and input handling shared by the commands (not a command itself): model and input arguments, and the
provider-option flags generated from ep_trtpy.options."""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from ep_trtpy.cli import _real_models, harness
from ep_trtpy.cli._errors import UsageError, closest, folder, input_file, positive_int, read_onnx
from ep_trtpy.options import SPECS, OptionError, Options, Spec, parse


class _OptionFlag(argparse.Action):
    """Stores the text of a provider option given on the command line in ``args.provider_options``."""

    def __init__(self, option_strings: list[str], dest: str, spec: Spec, **kw: Any) -> None:
        self.spec = spec
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if self.nargs == 0:
            text = "0" if str(option_string).startswith("--no-") else "1"
        else:
            text = str(values)
            try:
                self.spec.parse(text)
            except (ValueError, TypeError) as e:
                parser.error(f"{option_string} {text!r}: {e}")
        namespace.provider_options = {**namespace.provider_options, self.spec.name: text}


def option_flag(name: str) -> str:
    """The command-line flag of a provider option: ``fp16_enable`` -> ``--fp16``, ``builder_optimization_level``
    -> ``--builder-optimization-level``."""
    return "--" + name.removesuffix("_enable").replace("_", "-")


PRECISION_OPTIONS = ("fp16_enable", "bf16_enable", "tf32_enable")
"""The options ``--precision`` sets in bench and profile (fp32, fp32-strict, fp16, bf16)."""


def add_option_flags(p: argparse.ArgumentParser, exclude: Sequence[str] = ()) -> None:
    """A flag for every provider option that shapes the engine (``Spec.affects_engine``), generated from
    ep_trtpy.options.SPECS: ``--x`` / ``--no-x`` for a boolean ``x_enable``, ``--name VALUE`` (checked by the
    option's parser) for the others; plus ``--option KEY=VALUE`` for any provider option. Only what is given lands
    in ``args.provider_options``; :func:`provider_options` adds the ``--option`` entries."""
    group = p.add_argument_group("engine options (ep_trtpy.options; unset: the option's default)")
    p.set_defaults(provider_options={})
    for spec in SPECS:
        if not spec.affects_engine or spec.name in exclude:
            continue
        default = int(spec.default) if isinstance(spec.default, bool) else spec.default
        help_text = f"{spec.doc} (option {spec.name}, default {default})"
        flag = option_flag(spec.name)
        if spec.type_name == "bool":
            group.add_argument(flag, "--no-" + flag[2:], action=_OptionFlag, spec=spec, nargs=0, help=help_text)
        else:
            group.add_argument(flag, action=_OptionFlag, spec=spec, metavar=spec.type_name.upper(), help=help_text)
    group.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                       help="any other TrtPyExecutionProvider option (repeatable)")


def _key_value(item: str) -> str:
    """``--option KEY=VALUE``, checked as the EP will check it (a known key, a value its parser takes)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{item!r} is not KEY=VALUE (e.g. --option fp16_enable=1)")
    try:
        parse({key.strip(): value.strip()}, together=False)  # the profile options agree or not once all are read
    except OptionError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return item


def option_type(name: str) -> Any:
    """An argparse ``type`` parsing a value as provider option ``name`` does (a bad value is argparse's error)."""
    spec = next(s for s in SPECS if s.name == name)

    def parse_value(text: str) -> Any:
        try:
            return spec.parse(text)
        except (ValueError, TypeError) as e:
            raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None

    parse_value.__name__ = spec.type_name
    return parse_value


def parse_options(raw: dict[str, str]) -> Options:
    """ep_trtpy.options.parse, a bad key or value being a UsageError."""
    try:
        return parse(raw)
    except OptionError as e:
        raise UsageError(str(e)) from None


def provider_options(args: argparse.Namespace) -> dict[str, str]:
    """The provider options of the command line (see :func:`add_option_flags`), as ORT takes them; checked
    together (a key given twice under two spellings, a cache folder that is a file are UsageErrors)."""
    opts = dict(args.provider_options)
    for item in args.option:
        key, _, value = item.partition("=")
        opts[key.strip()] = value.strip()
    parsed = parse_options(opts)
    for name in ("engine_cache_path", "timing_cache_path"):
        path = getattr(parsed, name)
        if path:
            folder(path, f"option {name}", create=False)
    return opts


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    """--model SOURCE (a real model definition, exported with torch) and what its export needs."""
    p.add_argument("--model", dest="source", metavar="SOURCE",
                   help=f"an ONNX file, or a real model definition exported with torch (which must be installed): "
                        f"{', '.join(_real_models.SOURCES)} (seeded random weights)")
    p.add_argument("--export-dir", help="with --model SOURCE: keep the export here and reuse it next time "
                                        "(default: a temporary folder)")
    p.add_argument("--attn-implementation", help="with --model hf:...: HF's attention code, sdpa or eager "
                                                 "(default: transformers' default)")
    p.add_argument("--torch-python", help="Python with torch for --model SOURCE exports and the torch runners "
                                          "(default: this one)")


def add_model_arguments(p: argparse.ArgumentParser, batch_list: bool = False) -> None:
    """MODEL.onnx, --model SOURCE or --arch NAME, plus the input options."""
    p.add_argument("model", nargs="?", help="ONNX model file")
    add_source_arguments(p)
    p.add_argument("--arch", help="a generated architecture instead of a file (python -m ep_trtpy.models --list)")
    p.add_argument("--ci", action="store_true", help="with --arch: the reduced size used by the tests")
    p.add_argument("--sequence", type=int, help="with --arch bert: sequence length of the inputs (default 128)")
    if batch_list:
        p.add_argument("--batch", default="1", help="comma-separated batch sizes (default 1)")
    else:
        p.add_argument("--batch", type=positive_int, default=1,
                       help="batch size for dynamic first dimensions (default 1)")
    p.add_argument("--shapes", help="input shapes NAME:D0xD1x...,... (for dynamic dimensions; overrides --batch)")
    p.add_argument("--feeds", help="inputs from an .npz file (names as the model's inputs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")


@dataclass
class Loaded:
    """A model to run, with where it came from."""

    model: onnx.ModelProto
    label: str
    exported: _real_models.Exported | None = None
    """Set for --model SOURCE: the export (ONNX file, weights for the torch runners, exporter used)."""


_EXPORT_DIRS: list[str] = []


def export_dir(args: argparse.Namespace) -> str:
    """--export-dir, else one temporary folder for this process (removed at exit)."""
    if getattr(args, "export_dir", None):
        return str(args.export_dir)
    if not _EXPORT_DIRS:
        _EXPORT_DIRS.append(tempfile.mkdtemp(prefix="ep_trtpy_export_"))
        atexit.register(shutil.rmtree, _EXPORT_DIRS[0], True)
    return _EXPORT_DIRS[0]


def real_source(args: argparse.Namespace) -> _real_models.Source | None:
    """The real model --model names, if it names one."""
    text = getattr(args, "source", None)
    if not text or not _real_models.is_source(text):
        return None
    try:
        return _real_models.source(text)
    except ValueError:
        known = list(_real_models.SOURCES)
        raise UsageError(f"--model '{text}' is no known model source{closest(text, known)}; known: "
                         f"{', '.join(known)}, or an ONNX file") from None


def check_model_arguments(args: argparse.Namespace) -> None:
    """Exactly one of MODEL.onnx, --model SOURCE, --arch NAME, each valid (a readable file, a known source or
    architecture), checked before anything is loaded or exported."""
    from ep_trtpy import models

    given = [x for x in (args.model, getattr(args, "source", None), args.arch) if x]
    if len(given) != 1:
        raise UsageError("give exactly one of MODEL.onnx, --model SOURCE or --arch NAME"
                         + (f" (got {', '.join(repr(g) for g in given)})" if given else ""))
    if args.arch:
        archs = models.names()
        if args.arch not in archs:
            raise UsageError(f"--arch '{args.arch}' is no generated architecture{closest(args.arch, archs)}; "
                             f"available: {', '.join(archs)}")
    elif real_source(args) is None:
        input_file(given[0])


def load(args: argparse.Namespace) -> Loaded:
    """The model of MODEL.onnx, --model SOURCE (exported in a torch subprocess) or --arch NAME."""
    check_model_arguments(args)
    if args.arch:
        from ep_trtpy import models

        return Loaded(models.build(args.arch, ci=args.ci), args.arch + (" (ci size)" if args.ci else ""))
    src = real_source(args)
    if src is not None:
        exported = _real_models.export_in_subprocess(src, export_dir(args), python=args.torch_python,
                                                     attn_implementation=args.attn_implementation)
        return Loaded(onnx.load(exported.onnx_path), src.label, exported)
    path = args.model or args.source
    return Loaded(read_onnx(path), os.path.basename(path))


def load_model(args: argparse.Namespace) -> tuple[onnx.ModelProto, str]:
    """(model, label) of :func:`load`."""
    loaded = load(args)
    return loaded.model, loaded.label


def _dims(vi: Any) -> list[int | str] | None:
    """An input's dimensions (an int, or the name of a dynamic one: its dim_param, else '?'); None: no shape."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    return [int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]


def _dims_text(dims: Sequence[int | str] | None) -> str:
    return "[unknown rank]" if dims is None else "[" + ", ".join(str(d) for d in dims) + "]"


def _is_batch(i: int, d: int | str) -> bool:
    return i == 0 or "batch" in str(d).lower()


def input_shapes(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]], batch: int = 1,
                 notes: list[str] | None = None,
                 batch_flags: str = "--batch or --shapes") -> dict[str, tuple[int, ...]]:
    """The concrete shape of every model input: ``shapes`` (from --shapes; each name must be an input, with the
    input's rank and static dimensions), else the input's own dimensions with a dynamic batch dimension (the first,
    or one named like batch) set to ``batch`` (a line in ``notes`` says so). Any other dynamic dimension without
    --shapes is a UsageError listing the inputs and their dynamic dimensions."""
    inits = {t.name for t in model.graph.initializer}
    inputs = {vi.name: _dims(vi) for vi in model.graph.input if vi.name not in inits}
    listing = ", ".join(f"{n} {_dims_text(d)}" for n, d in inputs.items()) or "none"
    for name, shape in shapes.items():
        if name not in inputs:
            raise UsageError(f"--shapes names '{name}', which is not an input of the model"
                             f"{closest(name, list(inputs))}; inputs: {listing}")
        dims = inputs[name]
        if dims is None:
            continue
        if len(shape) != len(dims):
            raise UsageError(f"--shapes {name}:{'x'.join(map(str, shape))} has {len(shape)} dimensions; input "
                             f"'{name}' has {len(dims)}: {_dims_text(dims)}")
        fixed = [(i, d, s) for i, (d, s) in enumerate(zip(dims, shape)) if isinstance(d, int) and d > 0 and d != s]
        if fixed:
            i, d, got = fixed[0]
            raise UsageError(f"--shapes {name}:{'x'.join(map(str, shape))} sets dimension {i} to {got}; the model "
                             f"fixes it to {d} ({name} {_dims_text(dims)})")
    out: dict[str, tuple[int, ...]] = {}
    unresolved: dict[str, list[str]] = {}
    defaulted: list[str] = []
    for name, dims in inputs.items():
        if name in shapes:
            out[name] = tuple(int(d) for d in shapes[name])
            continue
        if dims is None:
            unresolved[name] = ["its rank"]
            continue
        dynamic = [i for i, d in enumerate(dims) if not (isinstance(d, int) and d > 0)]
        others = [i for i in dynamic if not _is_batch(i, dims[i])]
        if others:
            unresolved[name] = [str(dims[i]) if dims[i] != "?" else f"dim {i}" for i in others]
            continue
        if dynamic:
            defaulted.append(f"{name} {_dims_text(dims)}")
        out[name] = tuple(int(batch) if i in dynamic else int(d) for i, d in enumerate(dims))
    if unresolved:
        listing = "; ".join(f"{n} {_dims_text(inputs[n])} ({', '.join(w)})" for n, w in unresolved.items())
        examples = []
        for n in unresolved:
            dims = inputs[n]
            if dims is None:
                examples.append(f"{n}:D0xD1x...")
                continue
            examples.append(n + ":" + "x".join(
                str(d) if isinstance(d, int) and d > 0 else str(batch) if _is_batch(i, d) else
                (str(d) if d != "?" else f"D{i}") for i, d in enumerate(dims)))
        raise UsageError(f"dynamic dimensions without --shapes: {listing}; give them with --shapes "
                         f"{','.join(examples)} (numbers in place of the names)")
    if defaulted and notes is not None:
        notes.append(f"note: dynamic batch dimension set to {batch} for {', '.join(defaulted)} ({batch_flags} sets it)")
    return out


def read_feeds(path: str, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The inputs in an .npz file (--feeds): every model input must be there; other arrays are ignored (a note
    says which)."""
    input_file(path, "--feeds file")
    try:
        with np.load(path, allow_pickle=False) as data:
            feeds = {k: data[k] for k in data.files}
    except Exception as e:  # noqa: BLE001 - zipfile, pickle and format errors: all about the file
        reason = str(e).split(". ")[0].rstrip(".") or type(e).__name__
        raise UsageError(f"--feeds file '{path}' is not an .npz file of arrays ({reason})") from None
    names = [vi.name for vi in model.graph.input if vi.name not in {t.name for t in model.graph.initializer}]
    missing = [n for n in names if n not in feeds]
    if missing:
        raise UsageError(f"--feeds file '{path}' lacks inputs {', '.join(missing)} (it holds "
                         f"{', '.join(feeds) or 'nothing'})")
    extra = [k for k in feeds if k not in names]
    if extra:
        print(f"note: --feeds file '{path}' also holds {', '.join(extra)}, which are not inputs of the model: "
              f"ignored", file=sys.stderr)
    return {k: feeds[k] for k in names}


def make_feeds(args: argparse.Namespace, model: onnx.ModelProto, batch: int,
               notes: list[str] | None = None) -> dict[str, np.ndarray]:
    """Inputs: --feeds file, else the architecture's or real model's own feeds, else seeded random inputs of the
    shapes :func:`input_shapes` gives (a dynamic dimension other than batch needs --shapes). Notes (a defaulted
    batch dimension) go to stderr unless ``notes`` collects them."""
    if args.feeds:
        return read_feeds(args.feeds, model)
    shapes = harness.parse_shapes(args.shapes)
    if args.arch and not shapes:
        from ep_trtpy import models

        extra: dict[str, Any] = {"sequence": args.sequence} if args.sequence else {}
        return models.make_feeds(args.arch, batch=batch, seed=args.seed, ci=args.ci, **extra)
    src = real_source(args)
    if src is not None and not shapes:
        return _real_models.make_inputs(src, batch, seed=args.seed, sequence=args.sequence or _real_models.SEQUENCE)
    said: list[str] = []
    full = input_shapes(model, shapes, batch, said)
    if notes is not None:
        notes.extend(said)
    else:
        for line in said:
            print(line, file=sys.stderr)
    return harness.random_feeds(model, full, seed=args.seed, batch=batch)


def batches(args: argparse.Namespace) -> list[int]:
    try:
        out = [int(b) for b in str(args.batch).split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--batch must be comma-separated integers, got {args.batch!r}") from None
    if not out or min(out) < 1:
        raise UsageError(f"--batch must list batch sizes >= 1, got {args.batch!r}")
    return out


def summarize(name: str, x: Any) -> str:
    """One line describing an output tensor."""
    a = np.asarray(x)
    head = f"{name}: {a.dtype}{list(a.shape)}"
    if a.size == 0:
        return head + " (empty)"
    if a.dtype.kind in "fc":
        f = a.astype(np.float64)
        finite = np.isfinite(f)
        bad = int(a.size - np.count_nonzero(finite))
        v = f[finite] if bad else f
        stats = (f" min={v.min():.4g} max={v.max():.4g} mean={v.mean():.4g} std={v.std():.4g}" if v.size else "")
        return head + stats + (f" non-finite={bad}" if bad else "")
    if a.dtype.kind in "iub":
        return head + f" min={a.min()} max={a.max()} first={a.ravel()[:6].tolist()}"
    return head


def placement_summary(sess: Any) -> str:
    """'N of M nodes on TrtPyExecutionProvider; elsewhere: Op x k (EP), ...'."""
    by_op = harness.assignment_by_op(sess)
    total = sum(sum(v.values()) for v in by_op.values())
    ours = sum(v.get(harness.EP_NAME, 0) for v in by_op.values())
    others = [f"{op} x{n} ({ep})" for op, per in sorted(by_op.items()) for ep, n in per.items()
              if ep != harness.EP_NAME]
    line = f"{ours} of {total} nodes on {harness.EP_NAME}"
    return line + (f"; elsewhere: {', '.join(others)}" if others else "")


def reports_unavailable_ep(command: str) -> Any:
    """Decorator for a command's ``run``: an unavailable provider is a one-line error and exit status 1."""
    import functools
    import sys

    def deco(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(args: argparse.Namespace) -> int:
            try:
                return fn(args)
            except harness.EpUnavailableError as e:
                print(f"ep-trtpy {command}: error: {e}", file=sys.stderr)
                return 1

        return wrapper

    return deco
