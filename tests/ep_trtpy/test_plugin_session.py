"""End-to-end tests of the ORT plugin shim with a fake Python host (tests/ep_trtpy/plugin_fake_host.py).

A real onnxruntime.InferenceSession loads the real plugin library; only ep_trtpy._host is replaced. Which EP ran
each node is asserted through ORT's graph-assignment record, never inferred from the numbers alone.
"""

from __future__ import annotations

import gc
import math
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from plugin_fake_host import FakeHost

import ep_trtpy
from ep_trtpy import _kernels

EP = ep_trtpy.EP_NAME
CPU = "CPUExecutionProvider"

ep_trtpy.register()  # idempotent; needed when an earlier test module imported only submodules of ep_trtpy

reference_only = pytest.mark.skipif(ep_trtpy.has_gpu(), reason="the numpy reference backend serves Compute only "
                                                                 "where no CUDA device is usable")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    return FakeHost().install(monkeypatch)


def _model_bytes(graph: onnx.GraphProto, opsets: dict[str, int]) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = 9  # readable by onnxruntime 1.30 and 1.31
    onnx.checker.check_model(model)
    return model.SerializeToString()


def two_partition_model(w: np.ndarray) -> bytes:
    """out = ((x + y) * W - y) + x: Add and Mul fuse, Sub stays on the CPU, the last Add fuses alone."""
    shape = list(w.shape)
    nodes = [
        helper.make_node("Add", ["x", "y"], ["a"], name="add_in"),
        helper.make_node("Mul", ["a", "W"], ["m"], name="mul_w"),
        helper.make_node("Sub", ["m", "y"], ["s"], name="sub_cpu"),
        helper.make_node("Add", ["s", "x"], ["out"], name="add_out"),
    ]
    graph = helper.make_graph(
        nodes, "two_partitions",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
        initializer=[numpy_helper.from_array(w, "W")])
    return _model_bytes(graph, {"": 17})


def session(model: bytes | str, options: dict[str, str] | None = None,
            so: ort.SessionOptions | None = None) -> ort.InferenceSession:
    so = so or ort.SessionOptions()
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    return ort.InferenceSession(model, so, providers=[(EP, options or {}), CPU])


def assignment(sess: ort.InferenceSession) -> dict[str, str]:
    """Node name -> the EP that runs it."""
    return {node.name: sub.ep_name for sub in sess.get_provider_graph_assignment_info() for node in sub.get_nodes()}


def cpu_reference(model: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model, providers=[CPU]).run(None, feeds)


@pytest.fixture
def two_partitions() -> tuple[bytes, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    w = rng.standard_normal((2, 3)).astype(np.float32)
    feeds = {"x": rng.standard_normal((2, 3)).astype(np.float32),
             "y": rng.standard_normal((2, 3)).astype(np.float32)}
    return two_partition_model(w), w, feeds


# ------------------------------------------------------------------------------------------- partitioning ---

def test_two_fused_partitions_and_one_cpu_node(fake: FakeHost, two_partitions) -> None:
    model, w, _ = two_partitions
    sess = session(model)
    assert assignment(sess) == {"add_in": EP, "mul_w": EP, "add_out": EP, "sub_cpu": CPU}
    assert fake.calls["compile"] == 2
    fused = {tuple(doc["fused_node"]["outputs"]): (doc, inits) for doc, inits in fake.compile_documents}
    assert set(fused) == {("m",), ("out",)}
    doc, inits = fused[("m",)]
    assert [n["name"] for n in doc["nodes"]] == ["add_in", "mul_w"]
    # drop_constant_initializers: W is not a fused-node input; it travels as initializer data, intact.
    assert doc["fused_node"]["inputs"] == ["x", "y"]
    assert doc["initializers"] == ["W"]
    assert inits[0].dtype == np.float32 and np.array_equal(inits[0], w)


def test_initializer_data_arrives_intact_in_get_capability(fake: FakeHost, two_partitions) -> None:
    model, w, _ = two_partitions
    session(model)
    doc, inits = fake.capability_documents[0]
    assert doc["initializers"] == ["W"]
    assert doc["inputs"] == ["x", "y"] and doc["outputs"] == ["out"]
    assert isinstance(inits[0], np.ndarray) and inits[0].shape == w.shape and np.array_equal(inits[0], w)
    assert doc["values"]["W"] == {"dtype": 1, "shape": [2, 3], "dims": ["", ""]}


@reference_only
def test_numbers_match_the_cpu_provider_and_the_reference_backend_ran(fake: FakeHost, two_partitions) -> None:
    model, _, feeds = two_partitions
    sess = session(model)
    before = _kernels.counters()
    got = sess.run(None, feeds)
    again = sess.run(None, feeds)
    after = _kernels.counters()
    want = cpu_reference(model, feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(again[0], got[0])
    assert after["reference_runs"] - before["reference_runs"] == 4  # 2 fused nodes x 2 runs
    assert after["compute_calls"] - before["compute_calls"] == 4
    assert after["host_get_engine"] == before["host_get_engine"]
    assert after["gpu_engine_runs"] == before["gpu_engine_runs"]
    assert fake.calls["run_reference"] == 4


def test_session_teardown_releases_programs_and_the_ep(fake: FakeHost, two_partitions) -> None:
    model, _, _ = two_partitions
    sess = session(model)
    programs, eps = set(fake.programs), set(fake.eps)
    assert len(programs) == 2 and len(eps) == 1
    del sess
    gc.collect()
    # (a session of an earlier test that sat in a reference cycle may be collected here too: its programs are
    # released to whichever host is installed; only this session's must all be released)
    assert programs <= set(fake.released_programs)
    assert set(fake.released_eps) >= eps


@reference_only
def test_add_provider_for_devices(fake: FakeHost, two_partitions) -> None:
    model, _, feeds = two_partitions
    devices = [d for d in ort.get_ep_devices() if d.ep_name == EP]
    so = ort.SessionOptions()
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    so.add_provider_for_devices(devices, {"note": "via devices"})
    sess = ort.InferenceSession(model, so)
    assert fake.options_seen[-1] == {"note": "via devices"}
    assert assignment(sess) == {"add_in": EP, "mul_w": EP, "add_out": EP, "sub_cpu": CPU}
    np.testing.assert_allclose(sess.run(None, feeds)[0], cpu_reference(model, feeds)[0], rtol=1e-6, atol=1e-6)


@reference_only
def test_concurrent_runs_from_several_threads(fake: FakeHost, two_partitions) -> None:
    model, _, _ = two_partitions
    sess = session(model)
    rng = np.random.default_rng(3)
    jobs = [{"x": rng.standard_normal((2, 3)).astype(np.float32),
             "y": rng.standard_normal((2, 3)).astype(np.float32)} for _ in range(4)]
    wants = [cpu_reference(model, f)[0] for f in jobs]
    errors: list[BaseException] = []

    def worker(feeds: dict[str, np.ndarray], want: np.ndarray) -> None:
        try:
            for _ in range(5):
                np.testing.assert_allclose(sess.run(None, feeds)[0], want, rtol=1e-6, atol=1e-6)
        except BaseException as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(f, w)) for f, w in zip(jobs, wants)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@reference_only
def test_compute_on_ort_pool_threads_takes_the_gil_itself(fake: FakeHost, two_partitions) -> None:
    """With the parallel executor, Compute (and so the Python callback) runs on ORT's own threads."""
    model, _, feeds = two_partitions
    so = ort.SessionOptions()
    so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    so.inter_op_num_threads = 2
    sess = session(model, so=so)
    for _ in range(3):
        np.testing.assert_allclose(sess.run(None, feeds)[0], cpu_reference(model, feeds)[0], rtol=1e-6, atol=1e-6)
    assert len(fake.reference_threads) == 6
    assert any(t != threading.get_ident() for t in fake.reference_threads)


POISON_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import onnxruntime as ort
    sys.path.insert(0, sys.argv[1])
    import ep_trtpy
    from plugin_fake_host import FakeHost
    from test_plugin_session import assignment, cpu_reference, session, two_partition_model

    class Patch:
        def setattr(self, obj, name, value):
            setattr(obj, name, value)

    FakeHost().install(Patch())
    rng = np.random.default_rng(5)
    model = two_partition_model(rng.standard_normal((2, 3)).astype(np.float32))
    sess = session(model)
    assert set(assignment(sess).values()) == {ep_trtpy.EP_NAME, "CPUExecutionProvider"}
    if not ep_trtpy.has_gpu():
        feeds = {"x": np.ones((2, 3), np.float32), "y": np.full((2, 3), 2.0, np.float32)}
        np.testing.assert_allclose(sess.run(None, feeds)[0], cpu_reference(model, feeds)[0], rtol=1e-6)
    del sess
    print("poisoned run finished")
""")


def test_orts_reads_stay_within_our_declared_struct_versions() -> None:
    """Fact sheet §4.3 "poison padding": reserves filled with junk 0x10; a read past our version would crash."""
    env = dict(os.environ, EP_TRTPY_TEST_POISON_RESERVE="1")
    done = subprocess.run([sys.executable, "-c", POISON_SCRIPT, str(Path(__file__).parent)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "poisoned run finished" in done.stdout


# ------------------------------------------------------------------------------------------------ options ---

def test_provider_options_reach_create_ep(fake: FakeHost, two_partitions) -> None:
    model, _, _ = two_partitions
    session(model, {"fp16_enable": "1", "note": "hello"})
    assert fake.options_seen[-1] == {"fp16_enable": "1", "note": "hello"}
    devices = fake.devices_seen[-1]
    if ep_trtpy.has_gpu():
        assert devices["backend"] == "cuda" and devices["devices"][0]["device_id"] >= 0
    else:
        assert devices == {"backend": "reference", "devices": []}


def test_unknown_option_raises_instead_of_falling_back_to_cpu(fake: FakeHost, two_partitions) -> None:
    model, _, _ = two_partitions
    with pytest.raises(Exception) as info:
        session(model, {"bogus_option": "1"})
    message = str(info.value)
    assert "bogus_option" in message and "ValueError" in message and "valid options" in message
    assert type(info.value).__name__ == "InvalidArgument"  # not a RuntimeError: InferenceSession does not retry
    assert fake.calls["get_capability"] == 0


# --------------------------------------------------------------------------------------- failure handling ---

def test_without_host_callbacks_create_ep_fails_with_a_clear_message(fake: FakeHost, two_partitions) -> None:
    model, _, _ = two_partitions
    _kernels._uninstall_host_callbacks()
    try:
        assert not _kernels.host_callbacks_installed()
        with pytest.raises(Exception, match="import ep_trtpy"):
            session(model)
    finally:
        _kernels._install_host_callbacks()
    assert _kernels.host_callbacks_installed()
    assert fake.calls["create_ep"] == 0


def test_compile_error_reaches_the_user(fake: FakeHost, two_partitions) -> None:
    model, _, _ = two_partitions
    fake.fail_in = "compile"
    with pytest.raises(Exception, match="RuntimeError: fake host failure injected in compile"):
        session(model)


@pytest.mark.skipif(ep_trtpy.has_gpu(), reason="the fake host runs reference engines only; on a GPU the same "
                    "error path is covered by test_plugin_gpu.py::test_engine_with_the_wrong_input_type_is_refused")
def test_run_error_raises_and_never_falls_back_to_cpu(fake: FakeHost, two_partitions) -> None:
    """onnxruntime's InferenceSession.run() re-runs on the CPU provider after an EPFail; our Compute errors use
    FAIL so the user sees the error, and the EP stays in charge of later runs."""
    model, _, feeds = two_partitions
    sess = session(model)
    fake.fail_in = "run_reference"
    with pytest.raises(Exception, match="fake host failure injected in run_reference") as err:
        sess.run(None, feeds)
    assert type(err.value).__name__ != "EPFail"
    fake.fail_in = None
    before = _kernels.counters()["reference_runs"]
    sess.run(None, feeds)
    assert sess.get_providers()[0] == EP
    assert _kernels.counters()["reference_runs"] == before + 2


def test_get_capability_error_is_logged_and_nothing_is_claimed(fake: FakeHost, two_partitions, capfd) -> None:
    """ORT treats a failed GetCapability as 'claims nothing'; the shim makes sure the reason is printed."""
    model, _, _ = two_partitions
    fake.fail_in = "get_capability"
    sess = session(model)
    assert set(assignment(sess).values()) == {CPU}
    assert "fake host failure injected in get_capability" in capfd.readouterr().err


# ------------------------------------------------------------------------------------- graph JSON export ---

KEY_STRINGS = ['Ünïcode "quoted" ✓', "back\\slash", "tab\tnew\nline", ""]
SCALER_OFFSET = [float("nan"), float("inf"), float("-inf")]
SCALER_SCALE = [0.1, 3.4028234663852886e38, 1.401298464324817e-45]


def attribute_model(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """A model whose nodes carry attributes of every exported type, plus float16 and int64 initializers."""
    h16 = np.array([0.5, -1.25, 65504.0], dtype=np.float16)
    i64 = np.array([3, -1], dtype=np.int64)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="transpose", perm=[1, 0]),
        helper.make_node("LeakyRelu", ["x"], ["lr"], name="leaky", alpha=0.1),
        helper.make_node("Scaler", ["x"], ["sc"], name="scaler", domain="ai.onnx.ml", offset=SCALER_OFFSET,
                         scale=SCALER_SCALE),
        helper.make_node("Einsum", ["x"], ["es"], name="einsum", equation="ij->ji"),
        helper.make_node("LabelEncoder", ["strs"], ["le"], name="encoder", domain="ai.onnx.ml",
                         keys_strings=KEY_STRINGS, values_int64s=[1, 2, 3, 4], default_int64=-1),
        helper.make_node("ConstantOfShape", ["shape_in"], ["cs"], name="fill_float",
                         value=numpy_helper.from_array(np.array([2.5], dtype=np.float32))),
        helper.make_node("ConstantOfShape", ["shape_in"], ["cs2"], name="fill_int",
                         value=numpy_helper.from_array(np.array([7], dtype=np.int64))),
        helper.make_node("Cast", ["H16"], ["h"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "h"], ["xa"], name="add_h"),
        helper.make_node("Reshape", ["x", "I64"], ["r"], name="reshape"),
    ]
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "attributes",
        [helper.make_tensor_value_info("x", f32, ["N", 3]),
         helper.make_tensor_value_info("strs", TensorProto.STRING, [3]),
         helper.make_tensor_value_info("shape_in", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info(n, t, shape) for n, t, shape in
         [("t", f32, [3, "N"]), ("lr", f32, ["N", 3]), ("sc", f32, ["N", 3]), ("es", f32, [3, "N"]),
          ("le", TensorProto.INT64, [3]),
          ("cs", f32, ["A", "B"]), ("cs2", TensorProto.INT64, ["A", "B"]), ("xa", f32, ["N", 3]),
          ("r", f32, [3, "K"])]],
        initializer=[numpy_helper.from_array(h16, "H16"), numpy_helper.from_array(i64, "I64")])
    path.write_bytes(_model_bytes(graph, {"": 17, "ai.onnx.ml": 2}))
    return str(path), {"H16": h16, "I64": i64}


def _f32(v: float) -> np.float32:
    return np.float32(v)


def test_graph_document_round_trips_attributes_of_every_type(monkeypatch, tmp_path: Path) -> None:
    fake = FakeHost(claim_ops=()).install(monkeypatch)
    path, initializers = attribute_model(tmp_path / "attributes.onnx")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session(path, so=so)
    doc, tensors = fake.capability_documents[0]
    nodes = {n["name"]: n for n in doc["nodes"]}

    assert doc["opsets"][""] == 17 and doc["opsets"]["ai.onnx.ml"] == 2
    assert Path(doc["model_path"]).resolve() == Path(path).resolve()
    assert doc["inputs"] == ["x", "strs", "shape_in"]
    assert doc["values"]["x"] == {"dtype": 1, "shape": [-1, 3], "dims": ["N", ""]}
    assert doc["values"]["strs"]["dtype"] == 8 and doc["values"]["shape_in"]["shape"] == [2]

    scaler = nodes["scaler"]
    assert (scaler["op_type"], scaler["domain"], scaler["since_version"]) == ("Scaler", "ai.onnx.ml", 1)
    assert scaler["inputs"] == ["x"] and scaler["outputs"] == ["sc"]
    assert nodes["transpose"]["attrs"]["perm"] == {"type": "ints", "value": [1, 0]}
    alpha = nodes["leaky"]["attrs"]["alpha"]
    assert alpha["type"] == "float" and _f32(alpha["value"]) == _f32(0.1)
    offset = scaler["attrs"]["offset"]
    assert offset["type"] == "floats" and math.isnan(offset["value"][0])
    assert offset["value"][1:] == [math.inf, -math.inf]
    scale = scaler["attrs"]["scale"]
    assert scale["type"] == "floats" and [_f32(v) for v in scale["value"]] == [_f32(v) for v in SCALER_SCALE]
    assert nodes["einsum"]["attrs"]["equation"] == {"type": "string", "value": "ij->ji"}
    encoder = nodes["encoder"]["attrs"]
    assert encoder["keys_strings"] == {"type": "strings", "value": KEY_STRINGS}
    assert encoder["values_int64s"] == {"type": "ints", "value": [1, 2, 3, 4]}
    assert encoder["default_int64"] == {"type": "int", "value": -1}

    # Named initializers first, tensor attributes appended after them, in node order.
    assert sorted(doc["initializers"]) == ["H16", "I64"]  # in ORT's order
    for i, name in enumerate(doc["initializers"]):
        assert tensors[i].dtype == initializers[name].dtype and np.array_equal(tensors[i], initializers[name])
    fill_float = nodes["fill_float"]["attrs"]["value"]
    fill_int = nodes["fill_int"]["attrs"]["value"]
    assert fill_float["type"] == fill_int["type"] == "tensor"
    order = [n["name"] for n in doc["nodes"] if n["name"] in ("fill_float", "fill_int")]
    assert [nodes[name]["attrs"]["value"]["index"] for name in order] == [2, 3] and len(tensors) == 4
    assert tensors[fill_float["index"]].dtype == np.float32 and tensors[fill_float["index"]].tolist() == [2.5]
    assert tensors[fill_int["index"]].dtype == np.int64 and tensors[fill_int["index"]].tolist() == [7]
    assert fake.calls["compile"] == 0  # nothing was claimed
