"""A stream of requests with random sequence lengths: how many engines a session builds, and how long it takes.

The serving case optimization profiles exist for: a BERT-style model gets requests of batch 1 whose sequence
lengths are drawn uniformly from [--min-len, --max-len]. Each row is one mode in a fresh session:

* ``profile``: our EP with one optimization profile covering the lengths (``profile_min_shapes`` =
  ``1x<min-len>``, opt ``1x<opt-len>``, max ``1x<max-len>`` on every input); its engine is built with the session;
* ``buckets``: our EP without profiles: the lengths fall into power-of-two buckets, one tuned engine each;
* ``cuda``: ORT's CUDA execution provider, with ``--ort-gpu-path DIR`` (an onnxruntime-gpu installed in DIR; it
  runs in a child process, since two onnxruntime packages cannot share one).

Every row reports the session's creation time, the whole stream's time (first request to last, every build it
triggered included), the median and 99th percentile of the requests, the median of a second pass over the same
lengths (all warm), and for our EP the tuned builds and specialized engines it made (runtime_stats). With
``--check`` every output of the first pass is compared with ORT's CPU provider (cosine similarity; the
precision's threshold) and the script exits with 1 on a mismatch or an error.

    python samples/04_profiles/stream.py [--model hf:bert-base|bert|FILE.onnx] [--export-dir DIR] [--requests 60]
        [--min-len 8] [--max-len 384] [--opt-len 128] [--seed 0] [--precision fp16|fp32|bf16]
        [--modes profile,buckets[,cuda]] [--ort-gpu-path DIR] [--check] [--ci] [--json OUT]

Inputs arrive from host memory (numpy), as a server's requests do, for every row alike. Without a GPU our EP
runs on the numpy reference backend (the tests run this script that way, with ``--ci``: the small generated
BERT and a few requests).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def lengths(args: argparse.Namespace) -> list[int]:
    rng = np.random.default_rng(args.seed)
    return [int(x) for x in rng.integers(args.min_len, args.max_len + 1, size=args.requests)]


def feeds_for(input_names: list[str], length: int, seed: int, vocab: int) -> dict[str, np.ndarray]:
    """Batch-1 feeds of this length: random token ids, a full attention mask, token types 0."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name in input_names:
        if "mask" in name:
            out[name] = np.ones((1, length), np.int64)
        elif "type" in name:
            out[name] = np.zeros((1, length), np.int64)
        else:
            out[name] = rng.integers(0, vocab, (1, length), dtype=np.int64)
    return out


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def run_stream(sess: Any, input_names: list[str], lens: list[int], vocab: int,
               reference: Any = None, threshold: float = 0.0) -> dict[str, Any]:
    """Run the stream once (first pass, outputs checked against `reference` when given), then again (warm)."""
    per: list[float] = []
    worst = 1.0
    t0 = time.perf_counter()
    for i, n in enumerate(lens):
        feeds = feeds_for(input_names, n, i, vocab)
        t = time.perf_counter()
        out = sess.run(None, feeds)
        per.append((time.perf_counter() - t) * 1e3)
        if reference is not None:
            ref = reference.run(None, feeds)
            for a, b in zip(out, ref):
                a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
                den = float(np.linalg.norm(a64) * np.linalg.norm(b64))
                cos = float(a64 @ b64) / den if den > 0 else float(np.array_equal(a64, b64))
                worst = min(worst, cos if np.isfinite(cos) else -1.0)
    total = time.perf_counter() - t0
    warm: list[float] = []
    for i, n in enumerate(lens):
        feeds = feeds_for(input_names, n, i, vocab)
        t = time.perf_counter()
        sess.run(None, feeds)
        warm.append((time.perf_counter() - t) * 1e3)
    row = {"stream_s": total, "p50_ms": percentile(per, 50), "p99_ms": percentile(per, 99),
           "warm_p50_ms": percentile(warm, 50), "warm_p99_ms": percentile(warm, 99)}
    if reference is not None:
        row["worst_cosine"] = worst
        row["check_ok"] = worst >= threshold
    return row


def model_and_vocab(args: argparse.Namespace) -> tuple[bytes, int]:
    """The ONNX model's bytes and its vocabulary size (for random token ids)."""
    import onnx

    if args.model == "bert":
        from ep_trtpy import models

        kw = {"max_position": max(args.max_len, 8)}
        proto = models.build("bert", ci=args.ci, **kw)
        vocab = 1000 if args.ci else 30522
        return proto.SerializeToString(), vocab
    if args.model.startswith("hf:"):
        from ep_trtpy.cli import _real_models

        exported = _real_models.export_in_subprocess(_real_models.source(args.model),
                                                     args.export_dir or tempfile.mkdtemp())
        with open(exported.onnx_path, "rb") as f:
            return f.read(), _real_models.BERT_VOCAB
    proto = onnx.load(args.model)
    return proto.SerializeToString(), 30522


def ours(args: argparse.Namespace, data: bytes, vocab: int, mode: str, lens: list[int]) -> dict[str, Any]:
    import onnx

    import ep_trtpy
    from ep_trtpy.cli import harness

    names = [i.name for i in onnx.load_from_string(data).graph.input]
    opts: dict[str, Any] = {"engine_cache_enable": "0", "timing_cache_enable": "1",
                            "timing_cache_path": args.cache_dir}
    if args.precision == "fp16":
        opts["fp16_enable"] = "1"
    elif args.precision == "bf16":
        opts["bf16_enable"] = "1"
    if mode == "profile":
        shape = lambda n: ",".join(f"{k}:1x{n}" for k in names)  # noqa: E731
        opts.update(profile_min_shapes=shape(args.min_len), profile_opt_shapes=shape(args.opt_len),
                    profile_max_shapes=shape(args.max_len))
    ep_trtpy.reset_runtime_stats()
    t = time.perf_counter()
    sess = harness.create_session(data, "trtpy", ep_options=opts)
    create = time.perf_counter() - t
    at_create = ep_trtpy.runtime_stats()
    reference = harness.create_session(data, "cpu") if args.check else None
    threshold = 0.999 if args.precision in ("fp16", "bf16") else 0.99999
    row = run_stream(sess, names, lens, vocab, reference, threshold)
    st = ep_trtpy.runtime_stats()
    row.update(mode=mode, create_s=create, builds_at_create=at_create.get("builds", 0),
               builds=st.get("builds", 0), specializations=st.get("specializations", 0),
               backend="cuda" if st.get("gpu_engine_runs", 0) else "reference")
    return row


def ort_cuda(args: argparse.Namespace, data: bytes, vocab: int, lens: list[int]) -> dict[str, Any]:
    """ORT's CUDA EP in a child process (this script with --worker)."""
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.onnx")
        with open(model, "wb") as f:
            f.write(data)
        out = os.path.join(tmp, "row.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", args.ort_gpu_path, "--model", model,
               "--json", out, "--vocab", str(vocab), "--lens", ",".join(map(str, lens)),
               "--precision", args.precision]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        if r.returncode != 0 or not os.path.exists(out):
            return {"mode": "cuda", "error": (r.stderr or r.stdout).strip().splitlines()[-1:]}
        with open(out) as f:
            return json.load(f)


def worker(args: argparse.Namespace) -> int:
    """The child process of the cuda row: only the onnxruntime-gpu in args.worker is imported."""
    sys.path.insert(0, args.worker)
    try:
        import torch  # noqa: F401  (loads the CUDA and cuDNN libraries onnxruntime-gpu links against)
    except ImportError:
        pass
    import onnx
    import onnxruntime as ort

    names = [i.name for i in onnx.load(args.model).graph.input]
    lens = [int(x) for x in args.lens.split(",")]
    t = time.perf_counter()
    sess = ort.InferenceSession(args.model, providers=[("CUDAExecutionProvider", {}), "CPUExecutionProvider"])
    create = time.perf_counter() - t
    if sess.get_providers()[0] != "CUDAExecutionProvider":
        raise SystemExit("onnxruntime-gpu did not create its CUDA execution provider")
    row = run_stream(sess, names, lens, args.vocab)
    row.update(mode="cuda", create_s=create, ort_version=ort.__version__, precision="fp32 (the model's own)")
    with open(args.json, "w") as f:
        json.dump(row, f)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="hf:bert-base")
    p.add_argument("--export-dir", default="")
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--min-len", type=int, default=8)
    p.add_argument("--max-len", type=int, default=384)
    p.add_argument("--opt-len", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=("fp16", "fp32", "bf16"), default="fp16")
    p.add_argument("--modes", default="profile,buckets")
    p.add_argument("--ort-gpu-path", default="")
    p.add_argument("--cache-dir", default="")
    p.add_argument("--check", action="store_true")
    p.add_argument("--ci", action="store_true", help="the small generated BERT (with --model bert)")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--json", default="")
    p.add_argument("--worker", default="", help=argparse.SUPPRESS)
    p.add_argument("--vocab", type=int, default=30522, help=argparse.SUPPRESS)
    p.add_argument("--lens", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    if not 1 <= args.min_len <= args.opt_len <= args.max_len:
        p.error(f"need 1 <= --min-len <= --opt-len <= --max-len, got {args.min_len}, {args.opt_len}, "
                f"{args.max_len}")
    args.cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="ep_trtpy_stream_")
    data, vocab = model_and_vocab(args)
    lens = lengths(args)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    rows = []
    for mode in modes:
        if mode == "cuda":
            if not args.ort_gpu_path:
                print("cuda row skipped: give --ort-gpu-path DIR (an onnxruntime-gpu installation)")
                continue
            rows.append(ort_cuda(args, data, vocab, lens))
        elif mode in ("profile", "buckets"):
            rows.append(ours(args, data, vocab, mode, lens))
        else:
            p.error(f"unknown mode '{mode}' (profile, buckets, cuda)")
    print(f"{args.requests} requests, batch 1, lengths {args.min_len}-{args.max_len} ({len(set(lens))} distinct), "
          f"{args.model}, {args.precision}")
    print(f"{'mode':8} {'create s':>9} {'stream s':>9} {'p50 ms':>8} {'p99 ms':>8} {'warm p50':>9} "
          f"{'builds':>7} {'special.':>8} {'check':>7}")
    failed = False
    for r in rows:
        if r.get("error"):
            print(f"{r['mode']:8} error: {r['error']}")
            failed = True
            continue
        check = "" if "check_ok" not in r else ("ok" if r["check_ok"] else "FAIL")
        failed |= check == "FAIL"
        print(f"{r['mode']:8} {r['create_s']:9.3f} {r['stream_s']:9.3f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
              f"{r['warm_p50_ms']:9.2f} {r.get('builds', '-')!s:>7} {r.get('specializations', '-')!s:>8} "
              f"{check:>7}")
    ref = next((r for r in rows if r["mode"] == "cuda" and not r.get("error")), None)
    if ref is not None:
        for r in rows:
            if r["mode"] != "cuda" and not r.get("error"):
                print(f"{r['mode']}: stream {r['stream_s'] / ref['stream_s']:.2f}x ORT CUDA's time, warm median "
                      f"{r['warm_p50_ms'] / ref['warm_p50_ms']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"lengths": lens, "rows": rows}, f, indent=1)
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
