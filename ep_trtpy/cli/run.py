"""``ep-trtpy run``: one model through ORT with TrtPyExecutionProvider; output summaries and timing."""

from __future__ import annotations

import argparse
import time

from ep_trtpy.cli import _common, _errors, harness

NAME = "run"
HELP = ("Run MODEL.onnx (or --arch NAME) once through TrtPyExecutionProvider (+ CPU for what it does not claim); "
        "print each output's shape and statistics, where the nodes ran, and the timing.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    _common.add_model_arguments(p)
    p.add_argument("--provider", default="trtpy", choices=("trtpy", "cpu"), help="trtpy (default) or cpu")
    p.add_argument("--iters", type=_errors.count, default=10, help="timed runs after the first (0: only the first run)")
    p.add_argument("--save", metavar="FILE.npz", help="write the outputs to an .npz file")
    _common.add_option_flags(p)


@_common.reports_unavailable_ep(NAME)
def run(args: argparse.Namespace) -> int:
    import numpy as np

    options = _common.provider_options(args) if args.provider != "cpu" else None
    if args.save:
        _errors.output_file(args.save, "--save")
    model, label = _common.load_model(args)
    feeds = _common.make_feeds(args, model, args.batch)
    t0 = time.perf_counter()
    sess = harness.create_session(model, args.provider, ep_options=options)
    create_s = time.perf_counter() - t0
    print(f"model {label}; inputs: " + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in feeds.items()))
    print(_common.placement_summary(sess))
    t0 = time.perf_counter()
    outs = sess.run(None, feeds)
    first_s = time.perf_counter() - t0
    names = [o.name for o in sess.get_outputs()]
    for name, out in zip(names, outs):
        print("  " + _common.summarize(name, out))
    line = f"session creation {create_s * 1e3:.1f} ms, first run {first_s * 1e3:.1f} ms"
    if args.iters > 0:
        t = harness.time_calls(lambda: sess.run(None, feeds), args.iters, warmup=0)
        line += f", then median {t.median:.3f} ms / p99 {t.p99:.3f} ms over {len(t.samples_ms)} runs"
    print(line)
    if args.save:
        np.savez(args.save, **dict(zip(names, outs)))
        print(f"wrote {args.save}")
    return 0
