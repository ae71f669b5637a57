"""``ep-trtpy conformance``: the ONNX backend node cases through TrtPyExecutionProvider (the runner is
conformance_runner.py)."""

from __future__ import annotations

import argparse
import sys

from ep_trtpy.cli import _common, _errors

NAME = "conformance"
HELP = ("Run the ONNX backend node test cases with TrtPyExecutionProvider first and the CPU provider second; print "
        "passed / failed / not claimed per op and totals (exit 1 on any failure).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ops", help="comma-separated op types to run (default: all)")
    p.add_argument("--cases", help="comma-separated regular expressions on case names")
    p.add_argument("--json", metavar="FILE", help="write every case's result as JSON")
    p.add_argument("--ort-optimizations", action="store_true",
                   help="keep ORT's graph optimizations on (default off: the EP then sees each case's graph as is)")
    p.add_argument("--all-ops", action="store_true", help="print every op in the table, not only claimed ones")
    p.add_argument("-v", "--verbose", action="store_true", help="print each failure and each refusal reason")
    _common.add_option_flags(p)


def _check_selection(ops: list[str] | None, names: list[str] | None) -> None:
    """--ops names ONNX op types (correctly cased), --cases valid regular expressions."""
    import re

    import onnx.defs

    known = {s.name for s in onnx.defs.get_all_schemas_with_history()}
    for op in ops or ():
        if op not in known:
            hint = _errors.closest(op, sorted(known))
            raise _errors.UsageError(f"--ops names '{op}', which is no ONNX op type{hint}")
    for pattern in names or ():
        try:
            re.compile(pattern)
        except re.error as e:
            raise _errors.UsageError(f"--cases '{pattern}' is not a regular expression ({e})") from None


def run(args: argparse.Namespace) -> int:
    from ep_trtpy.cli import conformance_runner, harness

    ops = [o.strip() for o in (args.ops or "").split(",") if o.strip()] or None
    names = [n.strip() for n in (args.cases or "").split(",") if n.strip()] or None
    _check_selection(ops, names)
    options = _common.provider_options(args) or None
    if args.json:
        _errors.output_file(args.json, "--json")

    def progress(r: conformance_runner.CaseResult) -> None:
        if r.is_error or args.verbose:
            line = f"{r.status:16s} {r.name}"
            if r.failure:
                line += f" [{r.failure}]"
            if r.detail:
                line += f": {r.detail}"
            if args.verbose and r.reasons and r.status == "not_claimed":
                line += " | " + "; ".join(f"{n}: {why}" for n, why in r.reasons.items())
            print(line, flush=True)

    try:
        report = conformance_runner.run(ops=ops, names=names, ep_options=options,
                                        optimization="default" if args.ort_optimizations else "disable",
                                        progress=progress)
    except harness.EpUnavailableError as e:
        print(f"ep-trtpy conformance: error: {e}", file=sys.stderr)
        return 1
    except NotImplementedError as e:
        print(f"ep-trtpy conformance: error: the partitioner is not implemented in this build ({e!r})",
              file=sys.stderr)
        return 1
    if not report.results and (ops or names):
        raise _errors.UsageError(f"no ONNX backend node case matches --ops {args.ops or '(all)'} --cases "
                                 f"{args.cases or '(all)'}")
    print()
    print(report.table(only_interesting=not args.all_ops))
    counts = report.counts()
    print(f"\n{len(report.results)} cases in {report.seconds:.1f} s on onnxruntime {report.ort_version}: "
          f"{counts['passed']} passed, {counts['failed']} failed ({len(report.not_assigned())} claimed by the support "
          f"rules but not assigned by ORT), {counts['not_claimed']} not claimed (CPU fallback ok), "
          f"{counts['fallback_failed']} broken fallbacks, {counts['excluded']} excluded, {counts['skipped']} skipped "
          f"(ORT's CPU provider cannot run them)")
    slow = sorted(report.results, key=lambda r: r.seconds, reverse=True)[:5]
    print("slowest cases: " + ", ".join(f"{r.name} {r.seconds:.2f} s" for r in slow))
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}")
    return 1 if report.errors() else 0


if __name__ == "__main__":
    from ep_trtpy.cli import main

    sys.exit(main([NAME, *sys.argv[1:]]))
