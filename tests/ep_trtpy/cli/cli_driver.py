"""Runs many ``python -m ep_trtpy ARGS`` invocations in one process (the tests' subprocess), as the interpreter
would run each: ``runpy.run_module("ep_trtpy", run_name="__main__")`` with ``sys.argv`` set, stdout and stderr
captured at the file-descriptor level (so ONNX Runtime's native log lines are caught too).

    python cli_driver.py CASES.json RESULTS.json      # CASES: [[arg, ...], ...]

RESULTS: one {"code", "stdout", "stderr"} per case, in order. An exception escaping ``ep_trtpy``'s main is
printed as the interpreter would print it (a "Traceback") into that case's stderr, with code 1.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import tempfile
import traceback


def _run(argv: list[str]) -> dict[str, object]:
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.argv = ["ep_trtpy", *argv]
        code: object = 0
        try:
            runpy.run_module("ep_trtpy", run_name="__main__", alter_sys=True)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - what the interpreter would print for an uncaught exception
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(f.read().decode("utf-8", "replace"))
    for fd in saved:
        os.close(fd)
    return {"code": code, "stdout": texts[0], "stderr": texts[1]}


def main() -> int:
    cases_path, results_path = sys.argv[1:3]
    with open(cases_path) as f:
        cases = json.load(f)
    results = [_run([str(a) for a in argv]) for argv in cases]
    with open(results_path, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
