"""Run the generated architectures (ResNet-50, MobileNetV2, BERT-base, a YOLO-style detector) through
TrtPyExecutionProvider and ORT's CPU provider and compare them.

For each model it prints how many nodes ORT placed on our EP, the largest error relative to the output's scale
(max |ours - cpu| / max |cpu|), the cosine similarity, top-1 agreement for classifiers, and the median latency of
each provider.

    python samples/02_architectures/run_architectures.py [--model resnet50,mobilenetv2,bert,yolo|all]
                                                        [--batch 1] [--fp16 | --strict-fp32] [--ci] [--iters 10]
                                                        [--check]

``--ci`` uses the reduced sizes the tests use (seconds on the CPU reference backend); ``--check`` exits with status
1 unless every node ran on our EP and every output is within the network tolerance. Engines with float16 data
(``--fp16``) or TF32 math (float32 engines on a GPU, by default, as in TensorRT and ORT's CUDA EP) are judged as
TensorRT users judge them: cosine >= 0.999 and the same top-1; ``--strict-fp32`` (tf32_enable=0) holds float32
engines to float32's tolerance. (On the H200, 2026-12-03, the reduced detector ``yolo`` with TF32 gave cosine
0.99893: its box outputs amplify the rounding; it passes in strict FP32 and in FP16.)
"""

from __future__ import annotations

import argparse
import sys
import time

import ep_trtpy
from ep_trtpy import models
from ep_trtpy.cli import harness


def run_one(name: str, batch: int, options: dict, ci: bool, iters: int, seed: int) -> dict:
    model = models.build(name, ci=ci, seed=seed)
    feeds = models.make_feeds(name, batch=batch, seed=seed + 1, ci=ci)
    data = harness.prepare_model(model).SerializeToString()

    t0 = time.perf_counter()
    ours = harness.create_session(data, "trtpy", ep_options=options)
    build_s = time.perf_counter() - t0
    cpu = harness.create_session(data, "cpu")
    placement = harness.node_assignment(ours)
    elsewhere = sorted(n for n, ep in placement.items() if ep != harness.EP_NAME)

    names = [o.name for o in ours.get_outputs()]
    got = ours.run(None, feeds)
    ref = cpu.run(None, feeds)
    math = harness.engine_math(options, ep_trtpy.has_gpu())
    comparisons = harness.compare_outputs(names, got, ref, network=True, low_precision=math != "fp32")
    row = {
        "model": name, "batch": batch, "math": math, "nodes": len(placement),
        "nodes_on_ep": len(placement) - len(elsewhere), "not_on_ep": elsewhere, "build_s": build_s,
        "comparisons": comparisons,
    }
    if iters > 0:
        row["ours_ms"] = harness.time_calls(lambda: ours.run(None, feeds), iters, warmup=1).median
        row["cpu_ms"] = harness.time_calls(lambda: cpu.run(None, feeds), iters, warmup=1).median
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="all", help=f"some of {', '.join(models.names())} (comma-separated), or all")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--fp16", action="store_true", help="build the engines in float16")
    p.add_argument("--strict-fp32", action="store_true", help="no TF32 tensor cores on the GPU (tf32_enable=0)")
    p.add_argument("--ci", action="store_true", help="reduced model sizes (as the tests run it)")
    p.add_argument("--iters", type=int, default=10, help="timed runs per provider (0: no timing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true", help="exit 1 unless all nodes ran on our EP and outputs agree")
    args = p.parse_args()

    if not harness.ep_registered():
        print(f"{harness.EP_NAME} is not available in this onnxruntime; is the plugin built?")
        return 2
    names = models.names() if args.model == "all" else [n.strip() for n in args.model.split(",") if n.strip()]
    unknown = [n for n in names if n not in models.names()]
    if unknown or not names:
        print(f"unknown model {', '.join(unknown) or repr(args.model)}; choose from {', '.join(models.names())}")
        return 2
    options = {"fp16_enable": "1" if args.fp16 else "0", "tf32_enable": "0" if args.strict_fp32 else "1"}
    gpu = ep_trtpy.has_gpu()
    backend = "GPU" if gpu else "numpy reference backend"
    print(f"{harness.EP_NAME} on the {backend}; batch {args.batch}; math {harness.engine_math(options, gpu)}; "
          f"{'reduced (--ci)' if args.ci else 'full'} sizes\n")
    header = (f"{'model':12s} {'on EP':>9s} {'max rel err':>12s} {'cosine':>10s} {'top-1':>6s} {'build s':>8s} "
              f"{'ours ms':>9s} {'cpu ms':>9s}  verdict")
    print(header)
    failures = []
    for name in names:
        row = run_one(name, args.batch, options, args.ci, args.iters, args.seed)
        worst = max(row["comparisons"], key=lambda c: c.max_rel)
        top1 = next((c.top1 for c in row["comparisons"] if c.top1 is not None), None)
        ok = all(c.ok for c in row["comparisons"]) and not row["not_on_ep"]
        print(f"{name:12s} {row['nodes_on_ep']:>4d}/{row['nodes']:<4d} {worst.max_rel:12.3g} "
              f"{min(c.cosine for c in row['comparisons']):10.6f} {'-' if top1 is None else f'{top1:.2f}':>6s} "
              f"{row['build_s']:8.2f} {row.get('ours_ms', float('nan')):9.3f} {row.get('cpu_ms', float('nan')):9.3f}"
              f"  {'ok' if ok else 'MISMATCH' if not all(c.ok for c in row['comparisons']) else 'PARTIAL'}")
        for c in row["comparisons"]:
            if not c.ok:
                print("    " + c.line())
        if row["not_on_ep"]:
            shown = ", ".join(row["not_on_ep"][:8]) + (" ..." if len(row["not_on_ep"]) > 8 else "")
            print(f"    not on {harness.EP_NAME}: {shown}")
        if not ok:
            failures.append(name)
    if args.check:
        if failures:
            print(f"\nCHECK FAILED: {', '.join(failures)}")
            return 1
        print("\nCHECK OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
