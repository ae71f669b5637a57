"""Models, context-model writers and a fresh-process loader for the EPContext tests."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ep_trtpy.cli import harness


def _save(graph: onnx.GraphProto, path: Path) -> str:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def three_output_model(path: Path) -> str:
    """x [2, 5] -> Relu, Sigmoid, Tanh (one claimed subgraph with three outputs) -> CumSum on the CPU for each.
    ORT lists the outputs of the loaded EPContext node in another order than the writer's fused node."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((5, 5)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Relu", ["h"], ["a"], name="relu"), helper.make_node("Sigmoid", ["h"], ["b"], name="sig"),
             helper.make_node("Tanh", ["h"], ["c"], name="tanh"),
             helper.make_node("CumSum", ["c", "axis"], ["cc"], name="cum_c"),
             helper.make_node("CumSum", ["a", "axis"], ["ca"], name="cum_a")]
    g = helper.make_graph(nodes, "three_outputs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 5]) for n in ("cc", "b", "ca")],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(1, np.int64), "axis")])
    return _save(g, path)


def cpu_shape_model(path: Path) -> str:
    """Dynamic [B, S] inputs; the positions come from CumSum(mask), which the EP does not claim, so the claimed
    Gather/MatMul subgraph sees an input whose shape only ORT's CPU provider computes (as in a RoBERTa export)."""
    rng = np.random.default_rng(6)
    table = rng.standard_normal((40, 8)).astype(np.float32)
    w = rng.standard_normal((8, 3)).astype(np.float32)
    nodes = [helper.make_node("CumSum", ["mask", "axis"], ["pos"], name="positions"),
             helper.make_node("Gather", ["table", "pos"], ["emb"], name="embed"),
             helper.make_node("Unsqueeze", ["x", "last"], ["x3"], name="unsq"),
             helper.make_node("Mul", ["emb", "x3"], ["scaled"], name="scale"),
             helper.make_node("MatMul", ["scaled", "w"], ["proj"], name="proj"),
             helper.make_node("Tanh", ["proj"], ["y"], name="act")]
    g = helper.make_graph(
        nodes, "cpu_shapes",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S"]),
         helper.make_tensor_value_info("mask", TensorProto.INT64, ["B", "S"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "S", 3])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(w, "w"),
         numpy_helper.from_array(np.array(1, np.int64), "axis"),
         numpy_helper.from_array(np.array([2], np.int64), "last")])
    return _save(g, path)


def cpu_shape_feeds(batch: int, seq: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((batch, seq)).astype(np.float32),
            "mask": rng.integers(0, 2, size=(batch, seq)).astype(np.int64)}


def write_with_session(model: str, out: Path, embed_mode: int, **ep_options: str) -> None:
    so = harness.session_options(config={"ep.context_enable": "1", "ep.context_file_path": str(out),
                                         "ep.context_embed_mode": str(embed_mode)})
    harness.create_session(model, "trtpy", ep_options=ep_options, sess_options=so)


def context_nodes(path: Path | str) -> list[onnx.NodeProto]:
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == "EPContext"]


def attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


_LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import ep_trtpy
    from ep_trtpy.cli import harness
    ctx, feeds_path, out_path = sys.argv[1:4]
    with np.load(feeds_path) as f:
        feeds = {k: f[k] for k in f.files}
    try:
        sess = harness.create_session(ctx, "trtpy")
        outs = sess.run(None, feeds)
    except Exception as e:
        print(json.dumps({"error": str(e)}))
        sys.exit(0)
    np.savez(out_path, *outs)
    print(json.dumps({"stats": ep_trtpy.runtime_stats(), "placement": harness.node_assignment(sess)}))
""")


def load_in_fresh_process(ctx: Path | str, feeds: dict[str, np.ndarray], work: Path) -> dict[str, Any]:
    """Create a session on the context model in a new Python process and run it once: {"stats", "placement",
    "outputs"} or {"error": message}."""
    feeds_path, out_path = work / "feeds.npz", work / "outs.npz"
    np.savez(feeds_path, **feeds)
    proc = subprocess.run([sys.executable, "-c", _LOADER, str(ctx), str(feeds_path), str(out_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if "error" not in result:
        with np.load(out_path) as f:
            result["outputs"] = [f[k] for k in sorted(f.files, key=lambda s: int(s.split("_")[1]))]
    return result


# ------------------------------------------------------------------------------------ engine edits --

def edit_header(engine: bytes, edit: Callable[[dict], None]) -> bytes:
    """The engine file with its JSON header edited and the checksum recomputed (a well-formed file)."""
    from ep_trtpy.engine import format as fmt

    fields = list(fmt._PREFIX.unpack_from(engine, 0))
    hlen = fields[2]
    start = fmt._PREFIX.size
    header = json.loads(engine[start:start + hlen])
    edit(header)
    hbytes = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    fields[2] = len(hbytes)
    body = fmt._PREFIX.pack(*fields) + hbytes + engine[start + hlen:-fmt.CHECKSUM_BYTES]
    return body + hashlib.sha256(body).digest()


def set_format_version(engine: bytes, version: int) -> bytes:
    from ep_trtpy.engine import format as fmt

    body = engine[:8] + struct.pack("<I", version) + engine[12:-fmt.CHECKSUM_BYTES]
    return body + hashlib.sha256(body).digest()


def edit_context_engines(ctx: Path, change: Callable[[bytes], bytes]) -> None:
    """Apply `change` to every engine of a context model (embedded or in its files)."""
    model = onnx.load(str(ctx))
    for node in model.graph.node:
        if node.op_type != "EPContext":
            continue
        a = {x.name: x for x in node.attribute}
        if a["embed_mode"].i == 1:
            a["ep_cache_context"].s = base64.b64encode(change(base64.b64decode(a["ep_cache_context"].s)))
        else:
            path = ctx.parent / a["ep_cache_context"].s.decode()
            path.write_bytes(change(path.read_bytes()))
    onnx.save(model, str(ctx))


def engine_of(ctx: Path, node: onnx.NodeProto) -> bytes:
    a = attrs(node)
    if a["embed_mode"] == 1:
        return base64.b64decode(a["ep_cache_context"])
    return (ctx.parent / a["ep_cache_context"].decode()).read_bytes()

