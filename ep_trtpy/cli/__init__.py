"""``ep-trtpy``: the command line, in the spirit of trtexec and Polygraphy.

Each subcommand is a module in this package defining ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; this file discovers them, so adding a command means adding a file. Modules without ``NAME``
are the commands' helpers: ``harness`` (sessions, placement, comparison, feeds, timing; also used by the tests and
samples), ``conformance_runner`` (the ONNX backend node cases), ``_common`` and the ``_*_worker`` processes.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def _commands() -> dict[str, object]:
    import ep_trtpy.cli as pkg

    cmds = {}
    for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if m.name.startswith("_"):
            continue
        mod = importlib.import_module(f"ep_trtpy.cli.{m.name}")
        if hasattr(mod, "NAME"):
            cmds[mod.NAME] = mod
    return cmds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ep-trtpy", description="TensorRT-class GPU execution provider for "
                                     "ONNX Runtime: partition, build, run and inspect ONNX models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _commands().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)  # type: ignore[attr-defined]
        mod.add_arguments(p)  # type: ignore[attr-defined]
        p.set_defaults(_run=mod.run)  # type: ignore[attr-defined]
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (FileNotFoundError, ValueError) as e:
        print(f"ep-trtpy {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
