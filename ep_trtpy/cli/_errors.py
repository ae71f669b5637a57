"""How the command line answers a user's mistake: :class:`UsageError` (one sentence, exit status 2, as argparse
does), the parser that prints argparse's own errors on one line, and the checks of the paths commands read and
write.

Every message names the file, option or input at fault and says what would be valid. Anything else that goes
wrong is an internal error: ``ep_trtpy.cli.main`` prints one line and exits with status 1, and shows the
traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import difflib
import os
from typing import Any, NoReturn

EXIT_USAGE = 2
EXIT_FAILURE = 1


class UsageError(ValueError):
    """A mistake in the command line or in the files it names; the message is one sentence naming the value."""


class Unavailable(RuntimeError):
    """Something the command needs is missing on this machine (a GPU, the registered provider): one line, exit
    status 1."""


def closest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """``" (did you mean 'x'?)"`` for the choice nearest ``word`` (case-insensitive), else ``""``."""
    lowered = {c.lower(): c for c in choices}
    hit = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[hit[0]]}'?)" if hit else ""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), pointing at ``--help``; an unknown flag is
    answered with the nearest one."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            message = self.unrecognized(message.split(": ", 1)[1].split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def unrecognized(self, extras: list[str]) -> str:
        """'unrecognized arguments: --fp61; did you mean '--fp16'?'"""
        flags = [s for s in self._option_string_actions if s.startswith("--")]
        text = f"unrecognized arguments: {' '.join(extras)}"
        first = next((e.split("=", 1)[0] for e in extras if e.startswith("-")), None)
        return text + (closest(first, flags) if first else "")


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= {low}")
    return value


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1."""
    return _int_at_least(text, 1)


def count(text: str) -> int:
    """An argparse ``type``: an integer >= 0."""
    return _int_at_least(text, 0)


# -------------------------------------------------------------------------------------------- paths --
def input_file(path: str, what: str = "model file") -> str:
    """``path`` if it is a readable regular file; else a UsageError naming it (one wording for a missing file
    everywhere: "<what> '<path>' does not exist")."""
    if not os.path.lexists(path):
        raise UsageError(f"{what} '{path}' does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{what} '{path}' is a folder, not a file")
    if not os.path.exists(path):
        raise UsageError(f"{what} '{path}' is a broken symbolic link")
    if not os.path.isfile(path):
        raise UsageError(f"{what} '{path}' is not a regular file (a FIFO or a device?)")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{what} '{path}' is not readable (permission denied)")
    return path


def output_file(path: str, flag: str) -> str:
    """``path`` if a file can be written there: not a folder, and its folder exists."""
    if os.path.isdir(path):
        raise UsageError(f"{flag} '{path}' is a folder; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{flag} '{path}': folder '{parent}' does not exist")
    return path


def folder(path: str, flag: str, create: bool = True) -> str:
    """``path`` as a folder: created when missing (with ``create``); a file there is a UsageError."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} '{path}' is a file, not a folder")
    if create:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise UsageError(f"{flag} '{path}' cannot be created: {e.strerror or e}") from None
    return path


def read_onnx(path: str) -> Any:
    """The ONNX model in ``path`` (external data included); a missing file, a folder or a file that is not an ONNX
    model is a UsageError naming it."""
    import onnx

    input_file(path)
    try:
        model = onnx.load(path)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError, external data errors: all about the file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"model file '{path}' is not an ONNX model ({reason})") from None
    if not model.HasField("graph") or not model.graph.output or not model.opset_import:
        missing = "graph" if not model.HasField("graph") else "outputs" if not model.graph.output else "opset"
        raise UsageError(f"model file '{path}' is not an ONNX model (it has no {missing})")
    return model
