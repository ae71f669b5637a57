"""The real model definitions that ``ep-trtpy bench`` and ``profile`` measure: torchvision's ``resnet50`` and
``mobilenet_v2`` and HuggingFace's ``BertModel`` (bert-base), named by a source string such as
``torchvision:resnet50`` or ``hf:bert-base``.

Each is built with seeded random weights (the GPU machine has no network, so no pretrained weights): torch's own
initialisation under ``torch.manual_seed(seed)``; the CNNs' BatchNormalization statistics are then measured on
one seeded batch of random images (train mode, cumulative average), so activations stay of order one through the
network as with trained weights (with the initial statistics MobileNetV2's logits are ~1e-9, under float16's
range). The module is handed as is to the PyTorch runners, and exported to ONNX (opset 17, dynamic batch and
sequence axes) for the ONNX runners:

* the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) when it works, else the torch.export-based
  exporter (``dynamo=True``); :func:`export` says which ran and why;
* the weights the export saw are also written as a state dict, so the PyTorch runners load the very same weights.

Inputs (:func:`make_inputs`, numpy, seeded): ImageNet-normalised random images [batch, 3, 224, 224] for the CNNs;
for BERT ``input_ids`` uniform in [0, vocab), ``attention_mask`` ones then zeros (every other row's last quarter
padded, like the generated ``bert``), ``token_type_ids`` zeros; all three are exported inputs.

This file needs no ep_trtpy: the CLI imports it as ``ep_trtpy.cli._real_models`` (names, inputs, the export
subprocess), the PyTorch worker loads it by path, and the export runs it as a script
(``python _real_models.py export ...``) so torch is never imported into the process that hosts our EP. torch,
torchvision and transformers are imported only inside the functions that need them.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # run as a script: this folder's inspect.py and profile.py must not shadow the stdlib
    sys.path[:] = [q for q in sys.path if os.path.abspath(q or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402 (after the path fix above)
import importlib.util  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

IMAGE_SIZE = 224
SEQUENCE = 128
BERT_VOCAB = 30522
"""BertConfig()'s vocab_size (bert-base-uncased)."""
OPSET = 17
CALIBRATION_BATCH = 8
"""Random images the CNNs' BatchNormalization statistics are measured on."""


@dataclass(frozen=True)
class Source:
    """One real model: how to build it and what its ONNX export's inputs and outputs are called."""

    name: str
    label: str
    packages: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def slug(self) -> str:
        """A file-name-safe form of the name."""
        return self.name.replace(":", "_").replace("-", "_")


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("torchvision:resnet50", "ResNet-50 (torchvision)", ("torch", "torchvision"), ("input",), ("logits",)),
    Source("torchvision:mobilenet_v2", "MobileNetV2 (torchvision)", ("torch", "torchvision"), ("input",),
           ("logits",)),
    Source("hf:bert-base", "BERT-base s128 (HF BertModel)", ("torch", "transformers"),
           ("input_ids", "attention_mask", "token_type_ids"), ("last_hidden_state", "pooler_output")),
)}
SCHEMES = ("torchvision", "hf")


def is_source(text: str) -> bool:
    """Whether ``text`` names a real model (``scheme:name``) rather than a file."""
    return text.partition(":")[0] in SCHEMES and not os.path.exists(text)


def source(text: str) -> Source:
    """The :class:`Source` named ``text``."""
    try:
        return SOURCES[text.strip()]
    except KeyError:
        raise ValueError(f"unknown model source '{text}'; known: {', '.join(SOURCES)}") from None


def missing(src: Source) -> str | None:
    """Why ``src`` cannot be built here (a package that is not installed), or None."""
    absent = [p for p in src.packages if importlib.util.find_spec(p) is None]
    if absent:
        return f"{' and '.join(absent)} {'is' if len(absent) == 1 else 'are'} not installed (needed by {src.name})"
    return None


def make_inputs(src: Source, batch: int, seed: int = 0, sequence: int = SEQUENCE) -> dict[str, np.ndarray]:
    """Seeded inputs of ``src`` at this batch size (see the module docstring)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    rng = np.random.default_rng(seed)
    if src.name.startswith("torchvision:"):
        return {"input": rng.standard_normal((batch, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)}
    mask = np.ones((batch, sequence), np.int64)
    mask[1::2, sequence - sequence // 4:] = 0
    return {"input_ids": rng.integers(0, BERT_VOCAB, (batch, sequence), dtype=np.int64), "attention_mask": mask,
            "token_type_ids": np.zeros((batch, sequence), np.int64)}


# ------------------------------------------------------------------------------------------ torch side --
def _calibrate_batchnorm(module: Any, seed: int) -> None:
    """Measure every BatchNorm's running statistics on one seeded batch of random images."""
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch gives exactly its statistics
    images = torch.from_numpy(make_inputs(SOURCES["torchvision:resnet50"], CALIBRATION_BATCH, seed + 1)["input"])
    module.train()
    with torch.no_grad():
        module(images)
    module.eval()


def build_module(src: Source, seed: int = 0, attn_implementation: str | None = None) -> Any:
    """The eval-mode torch module of ``src`` on the CPU, with seeded weights. BERT is wrapped so that it takes
    (input_ids, attention_mask, token_type_ids) and returns (last_hidden_state, pooler_output);
    ``attn_implementation`` picks HF's attention code ("sdpa", "eager"; None: transformers' default)."""
    import torch

    torch.manual_seed(seed)
    if src.name.startswith("torchvision:"):
        import torchvision

        module = getattr(torchvision.models, src.name.partition(":")[2])(weights=None)
        _calibrate_batchnorm(module, seed)
        return module.eval()
    from transformers import BertConfig, BertModel

    config = BertConfig(attn_implementation=attn_implementation) if attn_implementation else BertConfig()

    class BertForBench(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel(config)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> tuple[Any, Any]:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            return_dict=False)
            return out[0], out[1]

    return BertForBench().eval()


def _dynamic_axes(src: Source) -> dict[str, dict[int, str]]:
    if src.name.startswith("torchvision:"):
        return {"input": {0: "batch"}, "logits": {0: "batch"}}
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in src.inputs}
    axes.update(last_hidden_state={0: "batch", 1: "sequence"}, pooler_output={0: "batch"})
    return axes


def _dynamo_shapes(src: Source) -> Any:
    from torch.export import Dim

    batch = Dim("batch", min=1, max=1024)
    if src.name.startswith("torchvision:"):
        return {"x": {0: batch}}
    seq = Dim("sequence", min=2, max=512)
    return {n: {0: batch, 1: seq} for n in src.inputs}


EXPORTERS = ("auto", "torchscript", "dynamo")


def export(src: Source, onnx_path: str, state_path: str | None = None, seed: int = 0, opset: int = OPSET,
           attn_implementation: str | None = None, exporter: str = "auto") -> dict[str, Any]:
    """Export ``src`` to ``onnx_path`` (and its weights to ``state_path``); returns what ran, for the report.
    ``exporter``: "auto" (TorchScript, else dynamo), or one of them only."""
    import warnings

    import torch

    module = build_module(src, seed, attn_implementation)
    example = tuple(torch.from_numpy(v) for v in make_inputs(src, 2, seed).values())
    info: dict[str, Any] = {"source": src.name, "seed": seed, "opset": opset, "torch": torch.__version__}
    if hasattr(module, "bert"):
        info["attn_implementation"] = module.bert.config._attn_implementation
    for pkg in ("torchvision", "transformers"):
        if pkg in src.packages:
            info[pkg] = __import__(pkg).__version__
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got '{exporter}'")
    t0 = time.perf_counter()
    try:
        if exporter == "dynamo":
            raise RuntimeError("the dynamo exporter was asked for")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, onnx_path, dynamo=False, opset_version=opset,
                              input_names=list(src.inputs), output_names=list(src.outputs),
                              dynamic_axes=_dynamic_axes(src))
        info["exporter"] = "torchscript"
    except Exception as e:  # noqa: BLE001 - any failure of the legacy exporter: try the dynamo one, say why
        if exporter == "torchscript":
            raise
        if exporter == "auto":
            info["torchscript_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e) else ''}"
        program = torch.onnx.export(module, example, dynamo=True, opset_version=opset,
                                    input_names=list(src.inputs), output_names=list(src.outputs),
                                    dynamic_shapes=_dynamo_shapes(src))
        program.save(onnx_path)
        info["exporter"] = "dynamo"
    info["export_s"] = time.perf_counter() - t0
    import onnx

    info["onnx_opset"] = next((o.version for o in onnx.load(onnx_path, load_external_data=False).opset_import
                               if o.domain in ("", "ai.onnx")), None)
    if state_path:
        torch.save(module.state_dict(), state_path)
    return info


def load_module(src: Source, state_path: str, attn_implementation: str | None = None) -> Any:
    """The module of ``src`` with the weights :func:`export` saved (for the PyTorch runners)."""
    import torch

    module = build_module(src, 0, attn_implementation)
    module.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
    return module.eval()


# ----------------------------------------------------------------------------------------- CLI side --
@dataclass
class Exported:
    """An export on disk: the ONNX file, the weights for the PyTorch runners and what produced them."""

    source: Source
    onnx_path: str
    state_path: str
    info: dict[str, Any]


def export_in_subprocess(src: Source, out_dir: str, python: str | None = None, seed: int = 0,
                         attn_implementation: str | None = None, timeout: float = 1800) -> Exported:
    """Run :func:`export` in ``python`` (default: this interpreter) so torch stays out of this process. An export
    already in ``out_dir`` from the same source, seed and attention implementation is reused."""
    why = missing(src) if python in (None, sys.executable) else None
    if why:
        raise RuntimeError(why)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, src.slug + (f"_{attn_implementation}" if attn_implementation else ""))
    paths = {"onnx": stem + ".onnx", "state": stem + ".pt", "info": stem + ".json"}
    if all(os.path.exists(p) for p in paths.values()):
        with open(paths["info"]) as f:
            info = json.load(f)
        if info.get("seed") == seed and info.get("opset") == OPSET:
            info["reused"] = True
            return Exported(src, paths["onnx"], paths["state"], info)
    cmd = [python or sys.executable, os.path.abspath(__file__), "export", "--source", src.name, "--onnx",
           paths["onnx"], "--state", paths["state"], "--info", paths["info"], "--seed", str(seed)]
    if attn_implementation:
        cmd += ["--attn-implementation", attn_implementation]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_script_env())
    if proc.returncode != 0 or not os.path.exists(paths["info"]):
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"export of {src.name} failed (exit {proc.returncode}): {tail[0][:400]}")
    with open(paths["info"]) as f:
        return Exported(src, paths["onnx"], paths["state"], json.load(f))


def _script_env() -> dict[str, str]:
    """The environment of a script run from this folder: without PYTHONPATH entries pointing at it."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    if "PYTHONPATH" in env:
        keep = [p for p in env["PYTHONPATH"].split(os.pathsep) if p and os.path.abspath(p) != here]
        env["PYTHONPATH"] = os.pathsep.join(keep)
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="_real_models.py")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="export a real model to ONNX and save its weights")
    e.add_argument("--source", required=True)
    e.add_argument("--onnx", required=True)
    e.add_argument("--state")
    e.add_argument("--info", required=True)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--attn-implementation")
    e.add_argument("--exporter", default="auto", choices=EXPORTERS)
    args = p.parse_args(argv)
    info = export(source(args.source), args.onnx, args.state, args.seed,
                  attn_implementation=args.attn_implementation, exporter=args.exporter)
    with open(args.info, "w") as f:
        json.dump(info, f, indent=1)
    print(f"exported {args.source} with the {info['exporter']} exporter in {info['export_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
