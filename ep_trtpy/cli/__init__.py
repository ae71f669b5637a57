"""``ep-trtpy``: the command line, in the spirit of trtexec and Polygraphy.

Each subcommand is a module in this package defining ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; this file discovers them, so adding a command means adding a file. Modules without ``NAME``
are the commands' helpers: ``harness`` (sessions, placement, comparison, feeds, timing; also used by the tests and
samples), ``conformance_runner`` (the ONNX backend node cases), ``_common`` and the ``_*_worker`` processes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

ORT_MODEL_ERRORS = ("InvalidGraph", "InvalidProtobuf", "NoSuchFile")
"""onnxruntime's exceptions that blame the model given, not us: exit status 2 like the other input mistakes."""


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
    from ep_trtpy._version import __version__
    from ep_trtpy.cli._errors import Parser

    parser = Parser(prog="ep-trtpy", description="TensorRT-class GPU execution provider for ONNX Runtime: "
                    "partition, build, run and inspect ONNX models.")
    parser.add_argument("--version", action="version", version=f"ep-trtpy {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _commands().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)  # type: ignore[attr-defined]
        mod.add_arguments(p)  # type: ignore[attr-defined]
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an internal error")
        p.set_defaults(_run=mod.run, _parser=p)  # type: ignore[attr-defined]
    return parser


def _one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name where that says more)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0] + (" ..." if len(lines) > 1 else "") if lines else ""
    if not isinstance(e, (ValueError, RuntimeError, OSError)) or not text:
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit status 0 (done), 1 (the command failed, or an internal error: one line, the traceback
    with --debug) or 2 (a mistake in the command line or its files: one line naming it, as argparse does)."""
    from ep_trtpy.cli._errors import EXIT_FAILURE, EXIT_USAGE, Unavailable, UsageError
    from ep_trtpy.devices import DeviceNotFoundError

    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if not getattr(args, "_run", None):
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        parser.print_help()
        return EXIT_USAGE
    prog = args._parser.prog
    if extras:
        args._parser.error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        return int(args._run(args) or 0)
    except (UsageError, DeviceNotFoundError) as e:  # a device_id that names no device is the user's option
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Unavailable as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as e:  # noqa: BLE001 - the one place internal errors become one line
        if args.debug:
            raise
        if type(e).__name__ in ORT_MODEL_ERRORS and type(e).__module__.startswith("onnxruntime"):
            print(f"{prog}: error: onnxruntime rejects the model: {_one_line(e)}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{prog}: error: {_one_line(e)} (internal error; rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
