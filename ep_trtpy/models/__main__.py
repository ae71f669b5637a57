"""``python -m ep_trtpy.models NAME -o FILE.onnx [--ci] [--seed N] [--KNOB VALUE ...]``

Writes a generated architecture as an ONNX file (checked with ``onnx.checker``); ``--feeds FILE.npz`` also writes
seeded inputs for ``--batch``. ``--list`` prints the architectures with their knobs and defaults. Knob flags are
generated from each builder's signature (``--blocks 1,1,1,1``, ``--form decomposed``, ``--token-type-ids 1``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import onnx

from ep_trtpy import models


def _parse_value(text: str, default: Any) -> Any:
    if isinstance(default, bool):
        t = text.strip().lower()
        if t not in ("0", "1", "true", "false", "yes", "no"):
            raise ValueError(f"expected 0/1 or true/false, got {text!r}")
        return t in ("1", "true", "yes")
    if isinstance(default, tuple):
        return tuple(int(p) for p in text.split(",") if p.strip())
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if default is None:  # optional int knobs (bert intermediate, mobilenet repeats)
        return int(text)
    return text


def _knob_flags() -> dict[str, Any]:
    """Every knob of every architecture with an example default (for the argparse flags)."""
    flags: dict[str, Any] = {}
    for arch in models.ARCHS.values():
        for k, v in {**arch.defaults, **arch.feed_defaults}.items():
            flags.setdefault(k, v)
    return flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ep_trtpy.models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help=f"architecture: {', '.join(models.names())}")
    p.add_argument("-o", "--output", help="ONNX file to write")
    p.add_argument("--ci", action="store_true", help="the reduced size used by tests")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=1, help="batch of the --feeds inputs")
    p.add_argument("--feeds", help="also write seeded inputs (.npz)")
    p.add_argument("--list", action="store_true", help="list architectures and knobs")
    for knob, default in _knob_flags().items():
        p.add_argument("--" + knob.replace("_", "-"), dest=f"knob_{knob}", metavar="VALUE",
                       help=f"knob '{knob}' (e.g. {default!r})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list or not args.name:
        for arch in models.ARCHS.values():
            print(f"{arch.name}: {arch.description}")
            for k, v in arch.knobs().items():
                ci = arch.knobs(ci=True)[k]
                print(f"    --{k.replace('_', '-'):16s} default {v!r}" + (f"  (--ci: {ci!r})" if ci != v else ""))
        return 0 if args.list else 2
    try:
        arch = models.ARCHS[args.name]
    except KeyError:
        print(f"unknown architecture '{args.name}'; available: {', '.join(models.names())}", file=sys.stderr)
        return 2
    base = arch.knobs(args.ci)
    overrides: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key.startswith("knob_") and value is not None:
            knob = key[5:]
            if knob not in base:
                print(f"architecture '{args.name}' has no knob '--{knob.replace('_', '-')}'; its knobs: "
                      f"{', '.join(sorted(base))}", file=sys.stderr)
                return 2
            default = arch.defaults.get(knob, arch.feed_defaults.get(knob))
            try:
                overrides[knob] = _parse_value(value, default if default is not None else base[knob])
            except ValueError as e:
                print(f"bad value for --{knob.replace('_', '-')}: {e}", file=sys.stderr)
                return 2
    if not args.output:
        print("-o/--output FILE.onnx is required", file=sys.stderr)
        return 2
    model = models.build(args.name, ci=args.ci, seed=args.seed, **overrides)
    onnx.checker.check_model(model)
    onnx.save(model, args.output)
    print(f"wrote {args.output}: {args.name}, {len(model.graph.node)} nodes, "
          f"{sum(int(np.prod(t.dims)) for t in model.graph.initializer) / 1e6:.2f} M parameters")
    if args.feeds:
        feeds = models.make_feeds(args.name, args.batch, args.seed, args.ci, **overrides)
        np.savez(args.feeds, **feeds)
        print(f"wrote {args.feeds}: " + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in feeds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
