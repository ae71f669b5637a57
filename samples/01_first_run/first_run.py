"""First run: the bundled model through ONNX Runtime with TrtPyExecutionProvider, next to the CPU provider.

Prints where each node ran (ORT's own record of the placement), the largest difference from the CPU provider,
whether engines ran on the GPU or on the numpy reference backend, and the median time of one run per provider.

    python samples/01_first_run/first_run.py [--model model.onnx] [--batch 8] [--fp16 | --strict-fp32] [--iters 50]
                                             [--check]

``--check`` exits with status 1 unless every node ran on TrtPyExecutionProvider and the outputs agree with the
CPU provider (the tests run the sample this way). On a GPU a float32 engine uses TF32 tensor cores by default (as
TensorRT and ORT's CUDA EP do), so it is held to the float16 tolerance; ``--strict-fp32`` (tf32_enable=0) holds
it to float32's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

import ep_trtpy  # registers TrtPyExecutionProvider with ONNX Runtime

HERE = os.path.dirname(os.path.abspath(__file__))


def make_session(model: str, providers: list) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")  # remember which EP runs what
    # enable_fallback=0: if our EP fails, raise instead of quietly running everything on the CPU
    return ort.InferenceSession(model, so, providers=providers, enable_fallback=0)


def placement(sess: ort.InferenceSession) -> list[tuple[str, str, str]]:
    """(node name, op type, EP) for every node, in ORT's order."""
    return [(n.name, n.op_type, sub.ep_name) for sub in sess.get_provider_graph_assignment_info()
            for n in sub.get_nodes()]


def median_ms(sess: ort.InferenceSession, feeds: dict, iters: int) -> float:
    sess.run(None, feeds)  # warm-up
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(HERE, "model.onnx"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--fp16", action="store_true", help="build the engine in float16 (fp16_enable=1)")
    p.add_argument("--strict-fp32", action="store_true", help="no TF32 tensor cores on the GPU (tf32_enable=0)")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--check", action="store_true", help="exit 1 unless all nodes ran on our EP and outputs agree")
    args = p.parse_args()

    ep = ep_trtpy.get_ep_name()
    if ep not in ort.get_available_providers():
        print(f"{ep} is not available in this onnxruntime ({ort.get_available_providers()}); is the plugin built?")
        return 2

    feeds = {"image": np.random.default_rng(0).standard_normal((args.batch, 3, 32, 32)).astype(np.float32)}
    options = {"fp16_enable": "1" if args.fp16 else "0", "tf32_enable": "0" if args.strict_fp32 else "1"}
    gpu = ep_trtpy.has_gpu()
    math = "fp16" if args.fp16 else ("tf32" if gpu and not args.strict_fp32 else "fp32")

    t0 = time.perf_counter()
    ours = make_session(args.model, [(ep, options), "CPUExecutionProvider"])
    build_s = time.perf_counter() - t0
    cpu = make_session(args.model, ["CPUExecutionProvider"])

    print(f"model: {args.model}   batch {args.batch}   math {math}")
    print(f"session with {ep}: created in {build_s * 1e3:.0f} ms\n")
    print(f"{'node':14s} {'op':18s} ran on")
    nodes = placement(ours)
    for name, op, where in nodes:
        print(f"{name:14s} {op:18s} {where}")
    on_ours = sum(1 for _, _, where in nodes if where == ep)
    print(f"\n{on_ours} of {len(nodes)} nodes on {ep}")

    ep_trtpy.reset_runtime_stats()
    (probs,) = ours.run(None, feeds)
    stats = {k: v for k, v in ep_trtpy.runtime_stats().items() if v}
    (ref,) = cpu.run(None, feeds)
    diff = float(np.max(np.abs(probs.astype(np.float64) - ref)))
    tol = 1e-5 if math == "fp32" else 2e-3  # probabilities are in [0, 1]; TF32 rounds as float16 does
    print(f"max |ours - CPU| = {diff:.3g}  (tolerance {tol:g});  same top-1 for "
          f"{int(np.sum(probs.argmax(1) == ref.argmax(1)))}/{args.batch} images")

    backend = "the GPU" if gpu else "the numpy reference backend (no usable CUDA device)"
    print(f"engines ran on {backend}; runtime counters for that run: {stats}")

    t_ours = median_ms(ours, feeds, args.iters)
    t_cpu = median_ms(cpu, feeds, args.iters)
    print(f"median time of one run: {ep} {t_ours:.3f} ms, CPUExecutionProvider {t_cpu:.3f} ms")

    if args.check:
        problems = []
        if on_ours != len(nodes):
            problems.append(f"only {on_ours}/{len(nodes)} nodes ran on {ep}")
        if not diff <= tol:
            problems.append(f"max difference {diff:.3g} exceeds {tol:g}")
        # gpu_engine_runs counts engine launches on the GPU; reference_runs runs on the numpy backend
        wanted = "gpu_engine" if gpu else "reference"
        ran = sum(v for k, v in stats.items() if wanted in k)
        if ran < 1:
            problems.append(f"the runtime counters do not show a {'GPU' if gpu else 'reference'} engine run")
        if problems:
            print("CHECK FAILED: " + "; ".join(problems))
            return 1
        print("CHECK OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
