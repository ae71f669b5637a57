"""Threads: one TrtPyExecutionProvider session run from many threads at once, every output checked, and the
process's host and device memory before and after.

Three phases, each started on all threads at the same moment (a barrier), in a fresh process:

1. sessions: ``--sessions`` threads create a session each on one engine cache folder and run it once; engines
   of the same shape are built once (one thread builds, the others wait and load its file);
2. shapes: one session, ``--threads`` threads run ``--shapes`` batch sizes it has not seen yet; each shape gets
   one engine (a tuned build per power-of-two bucket of the batch size, an engine specialized from it for the
   bucket's other sizes), the other threads that need it wait for it;
3. runs: one session, ``--threads`` threads x ``--runs`` runs, each run on its own input (``--pool`` distinct
   inputs, default one per run up to 16384, then reused in turn). Host RSS and the runtime's device memory are
   read after the first tenth of the runs and at the end.

Every output of a threaded run is checked for races against the same session's result for the same input
computed on one thread (phase 3: before the threads start; phases 1 and 2, which build while threads wait:
after them): bitwise, since an engine's kernels are deterministic (no atomics in ours, and cuBLASLt and cuDNN
repeat their results for a fixed plan). Before the threads start, a few inputs run twice on one thread; if their
results differ, the engine is not deterministic and the race check allows 16 units in the last place of the
output's dtype (relative to its largest magnitude) instead. Separately, every output is compared with ORT's CPU
provider by the precision's own criterion (the tolerances of ``compare --mark-all``: fp32, tf32 for float32 on a
GPU with tf32_enable, fp16): that accuracy line reports rounding of TF32 and FP16 engines (a random-weight
network's near-tied classes), not races, and does not fail ``--check``.

    python samples/03_threads/threads.py [--model sample|resnet50|mobilenetv2|bert|yolo|FILE.onnx] [--ci]
        [--threads 8] [--runs 1000] [--sessions 4] [--shapes 4] [--pool N] [--fp16] [--check]
        [--max-growth-mb 64] [--json OUT]

``--check`` exits with status 1 on any error or race (an output that differs from the single-threaded one), on a
phase that built more engines than it has shapes, or (with ``--max-growth-mb``) on RSS or device memory that grew
by more than that during the runs. Without a GPU the engines run on the numpy reference backend (the tests run this
script that way, with small numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

import ep_trtpy  # registers TrtPyExecutionProvider with ONNX Runtime
from ep_trtpy import models
from ep_trtpy.cli import _mark_all as mark
from ep_trtpy.cli import harness
from ep_trtpy.options import Options

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE_MODEL = os.path.join(HERE, "..", "01_first_run", "model.onnx")
DEFAULT_POOL = 16384
"""Distinct inputs of phase 3 unless --pool says otherwise (each with its CPU-provider reference)."""


def load(name: str, ci: bool) -> tuple[onnx.ModelProto, str]:
    """The model and the name of its batched input."""
    if name == "sample":
        model = onnx.load(SAMPLE_MODEL)
    elif name in models.names():
        model = models.build(name, ci=ci)
    else:
        model = onnx.load(name)
    return harness.prepare_model(model), model.graph.input[0].name


def feeds_for(model: onnx.ModelProto, batch: int, seed: int) -> dict[str, np.ndarray]:
    first = model.graph.input[0].name
    return harness.random_feeds(model, {first: _shape_with_batch(model, batch)}, seed=seed)


def _shape_with_batch(model: onnx.ModelProto, batch: int) -> tuple[int, ...]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple([batch] + [d.dim_value if d.dim_value > 0 else 1 for d in dims[1:]])


def rss_mb() -> float:
    """Resident set size of this process now (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_mb(device_id: int) -> tuple[float, float] | None:
    """(in use, reserved) MB of the runtime's device allocator, or None without a GPU."""
    if not ep_trtpy.has_gpu():
        return None
    from ep_trtpy import _kernels

    in_use, _peak, reserved = _kernels.device_memory_stats(device_id)
    return in_use / 2**20, reserved / 2**20


def on_threads(n: int, work: Callable[[int], None]) -> tuple[list[str], float]:
    """Run work(0..n-1) on n threads released together; (errors, seconds)."""
    barrier = threading.Barrier(n)
    errors: list[str] = []

    def run(k: int) -> None:
        barrier.wait()
        try:
            work(k)
        except Exception as e:  # noqa: BLE001  (reported, and counted by --check)
            errors.append(f"thread {k}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors, time.perf_counter() - t0


RACE_ULPS = 16
"""Allowed difference from the single-threaded result, in units in the last place of the output's dtype relative to
its largest magnitude, when repeated single-threaded runs show that the engine is not bitwise deterministic."""
PROBE_RUNS = 8
"""Inputs run twice on one thread before the threads start, to learn whether the engine repeats its bits."""


def differs(got: list[Any], base: list[Any], exact: bool) -> str:
    """'' when every output equals the single-threaded one (bitwise when `exact`, else within RACE_ULPS), otherwise
    a sentence naming the first output that differs."""
    for k, (a, b) in enumerate(zip(got, base)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"output {k}: {a.dtype}{list(a.shape)} where one thread gave {b.dtype}{list(b.shape)}"
        if b.size == 0:
            continue
        if b.dtype.kind == "O":
            n = int(np.count_nonzero(a.ravel() != b.ravel()))
        elif exact or b.dtype.kind not in "fc":
            bits_a = a.reshape(-1).view(np.uint8).reshape(a.size, -1)
            bits_b = b.reshape(-1).view(np.uint8).reshape(b.size, -1)
            n = int(np.count_nonzero((bits_a != bits_b).any(axis=1)))
        else:
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            finite = np.isfinite(b64)
            scale = float(np.abs(b64[finite]).max()) if finite.any() else 0.0
            with np.errstate(invalid="ignore"):
                near = np.abs(a64 - b64) <= RACE_ULPS * float(np.finfo(b.dtype).eps) * scale
            n = int(np.count_nonzero(~(near | (a64 == b64) | (np.isnan(a64) & np.isnan(b64)))))
        if n:
            how = "bits" if exact else f"by more than {RACE_ULPS} ulp of the largest magnitude"
            return f"output {k}: {n} of {b.size} elements differ from the single-threaded result ({how})"
    return ""


def single_threaded(sess: Any, feeds: list[dict[str, np.ndarray]]) -> tuple[list[list[Any]], bool]:
    """The session's result for each of `feeds` on this thread, and whether running the first PROBE_RUNS of them
    again gives the same bits (a deterministic engine)."""
    bases = [sess.run(None, f) for f in feeds]
    again = [sess.run(None, f) for f in feeds[:PROBE_RUNS]]
    return bases, all(not differs(a, b, exact=True) for a, b in zip(again, bases))


class Checker:
    """Every output against the same session's single-threaded result for the same input (races: these fail
    --check) and against ORT's CPU provider by the precision's criterion (accuracy: reported only). Thread-safe."""

    def __init__(self, data: bytes, precision: str) -> None:
        self.cpu = harness.create_session(data, "cpu")
        self.precision = precision
        self.lock = threading.Lock()
        self.checked = self.races = self.inaccurate = 0
        self.first_race = self.first_inaccurate = ""
        self.deterministic = True

    def reference(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.cpu.run(None, feeds)

    def accuracy(self, got: list[Any], want: list[Any]) -> str:
        """'' when every output meets the precision's criterion against the CPU provider, else what fails."""
        for k, (a, w) in enumerate(zip(got, want)):
            m = mark.compare_value(np.asarray(a), np.asarray(w), mark.value_precision(np.asarray(w).dtype,
                                                                                      self.precision), False)
            if not m.ok:
                return (f"output {k}: rel rms {m.rms:.3g}, max rel {m.max_rel:.3g}, cosine {m.cosine:.6f}"
                        f"{'; ' + m.note if m.note else ''}")
        return ""

    def check(self, got: list[Any], base: list[Any], want: list[Any], exact: bool, where: str) -> None:
        race, off = differs(got, base, exact), self.accuracy(got, want)
        with self.lock:
            self.checked += 1
            self.deterministic &= exact
            if race:
                self.races += 1
                self.first_race = self.first_race or f"{where}: {race}"
            if off:
                self.inaccurate += 1
                self.first_inaccurate = self.first_inaccurate or f"{where}: {off}"


def stats_delta(before: dict[str, int]) -> dict[str, int]:
    after = ep_trtpy.runtime_stats()
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def phase_sessions(data: bytes, model: onnx.ModelProto, args: argparse.Namespace, options: dict[str, Any],
                   checker: Checker, cache_dir: str) -> dict[str, Any]:
    feeds = feeds_for(model, 1, seed=args.seed)
    want = checker.reference(feeds)
    opts = dict(options, engine_cache_enable=True, engine_cache_path=cache_dir)
    before = ep_trtpy.runtime_stats()
    results: dict[int, tuple[Any, list[Any]]] = {}

    def work(k: int) -> None:
        sess = harness.create_session(data, "trtpy", ep_options=opts)
        results[k] = (sess, sess.run(None, feeds))

    files_before = set(_engine_files(cache_dir))
    errors, seconds = on_threads(args.sessions, work)
    d = stats_delta(before)
    if results:  # the threads are done: one session's result on one thread is the reference of all
        (bases,), exact = single_threaded(results[min(results)][0], [feeds])
        for k, (_, got) in sorted(results.items()):
            checker.check(got, bases, want, exact, f"session {k}")
    return {"sessions": args.sessions, "errors": errors, "seconds": seconds, "builds": d["builds"],
            "engine_cache_hits": d["engine_cache_hits"], "engines": len(set(_engine_files(cache_dir))),
            "new_engines": len(set(_engine_files(cache_dir)) - files_before)}


def _engine_files(folder: str) -> list[str]:
    return [f for f in os.listdir(folder) if f.startswith("TrtPy_") and f.endswith(".engine")]


def phase_shapes(data: bytes, model: onnx.ModelProto, args: argparse.Namespace, options: dict[str, Any],
                 checker: Checker) -> dict[str, Any]:
    sess = harness.create_session(data, "trtpy", ep_options=options)
    batches = [2 + k for k in range(args.shapes)]  # batch 1 is phase 1's: these are new to every session
    jobs = [(b, feeds_for(model, b, seed=args.seed + 100 + k)) for k, b in enumerate(batches)]
    wants = [checker.reference(f) for _, f in jobs]
    before = ep_trtpy.runtime_stats()
    results: dict[int, list[Any]] = {}

    def work(k: int) -> None:
        results[k] = sess.run(None, jobs[k % len(jobs)][1])

    errors, seconds = on_threads(args.threads, work)
    d = stats_delta(before)
    bases, exact = single_threaded(sess, [f for _, f in jobs])  # after the threads: they had to build the shapes
    for k, got in sorted(results.items()):
        j = k % len(jobs)
        checker.check(got, bases[j], wants[j], exact, f"thread {k} batch {jobs[j][0]}")
    return {"threads": args.threads, "shapes": len(batches), "errors": errors, "seconds": seconds,
            "builds": d["builds"], "specializations": d.get("specializations", 0)}


def phase_runs(data: bytes, model: onnx.ModelProto, args: argparse.Namespace, options: dict[str, Any],
               checker: Checker) -> dict[str, Any]:
    sess = harness.create_session(data, "trtpy", ep_options=options)
    total = args.threads * args.runs
    pool = min(total, args.pool or DEFAULT_POOL)
    inputs = [feeds_for(model, args.batch, seed=args.seed + 1000 + k) for k in range(pool)]
    wants = [checker.reference(f) for f in inputs]
    bases, exact = single_threaded(sess, inputs)  # builds the engine outside the measurement
    warm_at = max(1, args.runs // 10)
    marks: dict[str, Any] = {}
    marks_lock = threading.Lock()
    warm = threading.Barrier(args.threads)

    def mark(name: str) -> None:
        with marks_lock:
            if name not in marks:
                marks[name] = {"rss_mb": rss_mb(), "device_mb": device_mb(args.device_id)}

    run_errors: list[str] = []

    def work(t: int) -> None:
        for i in range(args.runs):
            if i == warm_at:  # every thread is warm: read the memory once, then go on
                warm.wait(timeout=600)
                mark("warm")
                warm.wait(timeout=600)
            k = (t * args.runs + i) % pool
            try:
                got = sess.run(None, inputs[k])
            except Exception as e:  # noqa: BLE001  counted; the thread goes on so that the others are not stuck
                with marks_lock:
                    run_errors.append(f"thread {t} run {i}: {type(e).__name__}: {e}")
                continue
            checker.check(got, bases[k], wants[k], exact, f"thread {t} run {i} input {k}")

    errors, seconds = on_threads(args.threads, work)
    mark("end")
    return {"threads": args.threads, "runs": args.runs, "distinct_inputs": pool, "errors": run_errors + errors,
            "seconds": seconds, "runs_per_s": total / seconds if seconds > 0 else 0.0, "memory": marks}


def growth(memory: dict[str, Any]) -> tuple[float, float]:
    """(RSS MB, device MB in use) added between the warm mark and the end."""
    warm, end = memory.get("warm"), memory.get("end")
    if not warm or not end:
        return 0.0, 0.0
    dev = 0.0
    if warm["device_mb"] is not None and end["device_mb"] is not None:
        dev = end["device_mb"][0] - warm["device_mb"][0]
    return end["rss_mb"] - warm["rss_mb"], dev


def _mem(m: dict[str, Any]) -> str:
    dev = m["device_mb"]
    gpu = "no GPU" if dev is None else f"device in use {dev[0]:.1f} MB (reserved {dev[1]:.1f} MB)"
    return f"RSS {m['rss_mb']:.1f} MB, {gpu}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="sample", help=f"sample, one of {', '.join(models.names())}, or an ONNX file")
    p.add_argument("--ci", action="store_true", help="reduced sizes for the generated architectures")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--runs", type=int, default=1000, help="runs per thread in phase 3")
    p.add_argument("--sessions", type=int, default=4, help="sessions created at once in phase 1 (0: skip)")
    p.add_argument("--shapes", type=int, default=4, help="first-seen batch sizes in phase 2 (0: skip)")
    p.add_argument("--pool", type=int, default=0,
                   help="distinct inputs in phase 3 (default: one per run, at most 16384)")
    p.add_argument("--batch", type=int, default=1, help="batch of phase 3's inputs")
    p.add_argument("--fp16", action="store_true")
    p.add_argument("--device-id", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="engine cache folder of phase 1 (default: a new temporary one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true")
    p.add_argument("--max-growth-mb", type=float, default=None, help="with --check: allowed RSS/device growth")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()

    model, _ = load(args.model, args.ci)
    data = model.SerializeToString()
    options: dict[str, Any] = {"fp16_enable": args.fp16}
    if ep_trtpy.has_gpu():
        options["device_id"] = args.device_id
    precision = mark.engine_precision(Options(fp16_enable=args.fp16), "cuda" if ep_trtpy.has_gpu() else "reference")
    checker = Checker(data, precision)
    backend = "GPU" if ep_trtpy.has_gpu() else "numpy reference backend"
    print(f"model {args.model}, {backend}, onnxruntime {__import__('onnxruntime').__version__}")
    out: dict[str, Any] = {"model": args.model, "backend": backend}
    problems: list[str] = []

    if args.sessions > 0:
        with tempfile.TemporaryDirectory(prefix="ep_trtpy_threads_") as tmp:
            r = out["sessions"] = phase_sessions(data, model, args, options, checker, args.cache_dir or tmp)
        print(f"sessions: {r['sessions']} created at once on one cache folder: builds {r['builds']}, engine cache "
              f"hits {r['engine_cache_hits']}, errors {len(r['errors'])} ({r['seconds']:.2f} s)")
        if r["builds"] > r["new_engines"]:  # each engine file (one per claimed subgraph at batch 1) built once
            problems.append(f"phase 1 built {r['builds']} engines for {r['new_engines']} engine files")
        per_shape = r["engines"]
        problems += r["errors"]
    else:
        per_shape = None
    if args.shapes > 0:
        r = out["shapes"] = phase_shapes(data, model, args, options, checker)
        engines = r["builds"] + r["specializations"]  # tuned builds (one per bucket) and engines specialized
        print(f"shapes: {r['threads']} threads, {r['shapes']} first-seen shapes at once: engines {engines} (tuned "
              f"{r['builds']}, specialized {r['specializations']}), errors {len(r['errors'])} ({r['seconds']:.2f} s)")
        if per_shape is not None and engines > r["shapes"] * per_shape:
            problems.append(f"phase 2 made {engines} engines for {r['shapes']} shapes of {per_shape} "
                            f"engine(s) each")
        problems += r["errors"]
    r = out["runs"] = phase_runs(data, model, args, options, checker)
    rss, dev = growth(r["memory"])
    print(f"runs: {r['threads']} threads x {r['runs']} runs, {r['distinct_inputs']} distinct inputs: "
          f"{r['seconds']:.2f} s ({r['runs_per_s']:.0f} runs/s), errors {len(r['errors'])}")
    if "warm" in r["memory"]:
        print(f"memory after the first tenth of the runs: {_mem(r['memory']['warm'])}")
        print(f"memory at the end:                       {_mem(r['memory']['end'])}  (growth: RSS {rss:+.1f} MB, "
              f"device {dev:+.1f} MB)")
    problems += r["errors"]
    print(f"outputs checked: {checker.checked}, differ from the single-threaded result: {checker.races} "
          f"({'bitwise' if checker.deterministic else f'within {RACE_ULPS} ulp: the engine is not deterministic'})")
    print(f"accuracy against ORT's CPU provider ({precision} criterion, not a race check): "
          f"{checker.checked - checker.inaccurate} of {checker.checked} outputs within"
          f"{', first outside: ' + checker.first_inaccurate if checker.inaccurate else ''}")
    if checker.races:
        problems.append(f"{checker.races} outputs differ from the single-threaded result, first: {checker.first_race}")
    if args.max_growth_mb is not None and max(rss, dev) > args.max_growth_mb:
        problems.append(f"memory grew by RSS {rss:+.1f} MB / device {dev:+.1f} MB during the runs")
    out.update(checked=checker.checked, races=checker.races, deterministic=checker.deterministic,
               precision=precision, inaccurate=checker.inaccurate, problems=problems)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    for line in problems[:10]:
        print("PROBLEM", line)
    if args.check:
        print("CHECK OK" if not problems else "CHECK FAILED")
        return 0 if not problems else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
