"""Engine file: round trips and every corruption case give a clean EngineFormatError."""

import hashlib
import json
import pathlib
import struct

import numpy as np
import pytest

import graph_runner
from engine_testutil import cuda_like_artifact, reference_artifact
from ep_trtpy.engine import format as fmt
from ep_trtpy.engine.format import EngineFormatError, decode, encode, to_artifact

KEY = "ab" * 32
PREFIX, P = fmt._PREFIX.format, fmt._PREFIX.size  # the fixed prefix of the engine file
PRODUCERS = {"ep_trtpy": "0.1.0", "onnx": "1.23", "onnxruntime": "1.31.1"}


def _encode(art, key=KEY):
    return encode(art, key=key, graph_hash="cd" * 32, producers=PRODUCERS, options={"fp16_enable": False})


def _resign(body_without_checksum: bytes) -> bytes:
    return body_without_checksum + hashlib.sha256(body_without_checksum).digest()


def _with_header(data: bytes, mutate) -> bytes:
    """Rewrite the JSON header through `mutate(dict)` and re-sign (a well-formed but wrong file)."""
    _m, ver, hlen, glen, wlen, slen = struct.unpack_from(PREFIX, data, 0)
    header = json.loads(data[P:P + hlen])
    mutate(header)
    hb = json.dumps(header).encode()
    rest = data[P + hlen:-32]
    return _resign(struct.pack(PREFIX, b"TRTPYENG", ver, len(hb), glen, wlen, slen) + hb + rest)


def test_reference_round_trip_runs_the_same():
    art = reference_artifact()
    data = _encode(art)
    back = to_artifact(decode(data, expect_key=KEY))
    assert back.backend == "reference" and back.plan is None and back.weights == b""
    assert back.input_shapes == [(2, 8)] and back.outputs == art.outputs
    assert back.header["producers"] == PRODUCERS and back.header["key"] == KEY
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    a = graph_runner.run(art.graph, {"x": x})
    b = graph_runner.run(back.graph, {back.input_names[0]: x})
    np.testing.assert_array_equal(a[0], b[0])


def test_cuda_round_trip_keeps_plan_weights_and_strips_graph_constants():
    art = cuda_like_artifact()
    data = _encode(art)
    dec = decode(data, expect_key=KEY)
    assert dec.plan is not None and dec.plan.to_dict() == art.plan.to_dict()
    assert dec.weights == art.weights
    assert dec.header["graph_constants_stripped"] is True
    model = dec.model()
    big = [t for t in model.graph.initializer if t.name.startswith("w")]
    assert big and all(t.data_location == 1 and not t.raw_data for t in big)
    back = to_artifact(dec)
    assert back.device.cc == (9, 0) and back.device.name.startswith("NVIDIA H100")
    assert len(data) < len(art.weights) + 9600 + 8192  # the stripped graph does not double the weights


def test_tactic_names_and_times_travel_and_old_plans_without_them_load():
    art = cuda_like_artifact()
    art.plan.layers[0].tactic_name = "cublaslt:algo=21,tile=18"
    art.plan.layers[0].meta.update(tactic_ms=0.0123, tactic_source="timed")
    dec = decode(_encode(art), expect_key=KEY)
    assert dec.plan.layers[0].tactic_name == "cublaslt:algo=21,tile=18"
    assert dec.plan.layers[0].meta["tactic_ms"] == 0.0123 and dec.plan.layers[1].tactic_name == ""
    old = art.plan.to_dict()
    for layer in old["layers"]:
        del layer["tactic_name"]
    assert [lay.tactic_name for lay in type(art.plan).from_dict(old).layers] == [""] * len(old["layers"])


def test_tactic_states_travel_in_their_own_section():
    art = cuda_like_artifact()
    art.plan.layers[0].tactic_state = bytes(range(256)) * 3
    art.plan.layers[-1].tactic_state = b"\x00plan"
    data = _encode(art)
    _m, _v, hlen, glen, wlen, slen = struct.unpack_from(PREFIX, data, 0)
    assert slen == 256 * 3 + 5
    dec = decode(data, expect_key=KEY)
    assert [lay.tactic_state for lay in dec.plan.layers] == [lay.tactic_state for lay in art.plan.layers]
    assert "tactic_state" not in dec.plan.to_dict()["layers"][0]  # binary: only in the section


@pytest.mark.parametrize("spans, match", [
    (None, "one span per plan layer"),
    ([[0, 1]], "one span per plan layer"),
    ("many", "one span per plan layer"),
])
def test_tactic_state_spans_must_match_the_layers(spans, match):
    art = cuda_like_artifact()
    data = _with_header(_encode(art), lambda h: h.update(tactic_states=spans))
    with pytest.raises(EngineFormatError, match=match):
        decode(data)


@pytest.mark.parametrize("span", [[0, 6], [5, 1], [-1, 1], [0, True], ["0", 1], [0]])
def test_a_tactic_state_outside_its_section_is_a_format_error(span):
    art = cuda_like_artifact()
    art.plan.layers[0].tactic_state = b"plan!"

    def mutate(h):
        h["tactic_states"][0] = span
    with pytest.raises(EngineFormatError, match="outside the tactic-state section"):
        decode(_with_header(_encode(art), mutate))


def test_an_engine_file_of_format_version_1_is_refused_by_version():
    data = bytearray(_encode(cuda_like_artifact()))
    struct.pack_into("<I", data, 8, 1)
    with pytest.raises(EngineFormatError, match="unsupported engine format version 1"):
        decode(bytes(data))


@pytest.mark.parametrize("cut", [0, 4, 8, 20, 31, 32, 40, -200, -33, -1])
def test_truncated(cut):
    data = _encode(reference_artifact())
    bad = data[:cut] if cut >= 0 else data[:len(data) + cut]
    with pytest.raises(EngineFormatError, match="truncated|magic"):
        decode(bad)


@pytest.mark.parametrize("where", [40, "graph", -40, -1])
def test_flipped_byte_is_a_checksum_mismatch(where):
    data = bytearray(_encode(cuda_like_artifact()))
    _m, _v, hlen, glen, wlen, _s = struct.unpack_from(PREFIX, data, 0)
    pos = P + hlen + glen // 2 if where == "graph" else where
    data[pos] ^= 0x40
    with pytest.raises(EngineFormatError, match="checksum mismatch"):
        decode(bytes(data))


def test_flipped_length_field():
    data = bytearray(_encode(reference_artifact()))
    data[12] ^= 0x01  # header length
    with pytest.raises(EngineFormatError, match="truncated|unexpected bytes|checksum"):
        decode(bytes(data))


def test_wrong_magic_and_foreign_file():
    data = _encode(reference_artifact())
    with pytest.raises(EngineFormatError, match="bad magic"):
        decode(b"NOTANENG" + data[8:])
    with pytest.raises(EngineFormatError, match="bad magic"):
        decode(b"\x08\x07\x12\x04onnx model bytes")


def test_future_version():
    data = _encode(reference_artifact())
    body = bytearray(data[:-32])
    struct.pack_into("<I", body, 8, fmt.FORMAT_VERSION + 1)
    with pytest.raises(EngineFormatError, match=f"unsupported engine format version {fmt.FORMAT_VERSION + 1}"):
        decode(_resign(bytes(body)))


def test_other_key():
    data = _encode(reference_artifact())
    decode(data)  # fine without a key
    with pytest.raises(EngineFormatError, match="key mismatch"):
        decode(data, expect_key="ef" * 32)


def test_trailing_garbage():
    data = _encode(reference_artifact())
    with pytest.raises(EngineFormatError, match="unexpected bytes"):
        decode(data + b"\0")


@pytest.mark.parametrize("mutate,match", [
    (lambda h: h.pop("key"), "has no 'key'"),
    (lambda h: h.update(backend="tpu"), "unknown backend"),
    (lambda h: h.update(inputs=[{"name": "x", "dtype": 1, "shape": [-1, 8]}]), "inputs\\[0\\] is malformed"),
    (lambda h: h.update(device={"name": 3}), "device is malformed"),
    (lambda h: h["plan"]["tensors"][1].update(offset=10_000), "lies outside the weights blob"),
    (lambda h: h["plan"]["tensors"][4].update(index=99), "views tensor 99"),
    (lambda h: h["plan"]["layers"][0].update(inputs=[0, 57]), "refers to tensor 57"),
    (lambda h: h["plan"]["tensors"][2].update(nbytes=1), "claims 1 bytes"),
    (lambda h: h["plan"].pop("tensors"), "plan is malformed"),
    (lambda h: h.update(plan=None), "without a plan"),
])
def test_well_signed_but_malformed_header(mutate, match):
    data = _with_header(_encode(cuda_like_artifact()), mutate)
    with pytest.raises(EngineFormatError, match=match):
        decode(data)


def test_header_not_json():
    data = _encode(reference_artifact())
    _m, ver, hlen, glen, wlen, slen = struct.unpack_from(PREFIX, data, 0)
    body = bytearray(data[:-32])
    body[P] = ord("[") ^ 0xFF
    with pytest.raises(EngineFormatError, match="not valid JSON"):
        decode(_resign(bytes(body)))


def test_garbage_graph_section_is_a_format_error():
    data = _encode(reference_artifact())
    _m, ver, hlen, glen, wlen, slen = struct.unpack_from(PREFIX, data, 0)
    body = bytearray(data[:-32])
    for i in range(P + hlen, P + hlen + glen):
        body[i] = 0xFF
    with pytest.raises(EngineFormatError, match="graph section"):
        to_artifact(decode(_resign(bytes(body))))


def test_no_pickle_or_eval_in_engine_code():
    src = pathlib.Path(fmt.__file__).read_text() + pathlib.Path(fmt.__file__).with_name("cache.py").read_text()
    for bad in ("import pickle", "pickle.", "eval(", "exec(", "allow_pickle=True", "np.load("):
        assert bad not in src


def test_deeply_nested_header_is_a_format_error():
    data = _encode(reference_artifact())
    _m, ver, hlen, glen, wlen, slen = struct.unpack_from(PREFIX, data, 0)
    hb = b"[" * 200_000 + b"]" * 200_000
    rest = data[P + hlen:-32]
    with pytest.raises(EngineFormatError, match="not valid JSON"):
        decode(_resign(struct.pack(PREFIX, b"TRTPYENG", ver, len(hb), glen, wlen, slen) + hb + rest))


def test_fuzzed_but_well_signed_headers_only_raise_format_errors():
    """Random edits of the header text, re-signed: decoding succeeds or raises EngineFormatError, nothing else."""
    data = _encode(cuda_like_artifact())
    _m, ver, hlen, glen, wlen, slen = struct.unpack_from(PREFIX, data, 0)
    header = bytearray(data[P:P + hlen])
    rest = data[P + hlen:-32]
    rng = np.random.default_rng(0)
    alphabet = b'0123456789-.,:{}[]"aetrfnul '
    outcomes = {"ok": 0, "error": 0}
    for _ in range(300):
        h = bytearray(header)
        for _k in range(int(rng.integers(1, 4))):
            h[int(rng.integers(0, len(h)))] = alphabet[int(rng.integers(0, len(alphabet)))]
        blob = _resign(struct.pack(PREFIX, b"TRTPYENG", ver, len(h), glen, wlen, slen) + bytes(h) + rest)
        try:
            to_artifact(decode(blob))
            outcomes["ok"] += 1
        except EngineFormatError:
            outcomes["error"] += 1
    assert outcomes["error"] > 0


def test_encode_refuses_a_plan_that_shares_another_engines_weights():
    art = cuda_like_artifact()
    art.plan.shared_weights_bytes = 256  # lowered against a WeightBase: lives only in memory
    with pytest.raises(ValueError, match="shares 256 weight bytes with another engine"):
        _encode(art)
    art.plan.shared_weights_bytes = 0
    data = _encode(art)
    assert decode(data).plan.shared_weights_bytes == 0
    forged = _with_header(data, lambda h: h["plan"].update(shared_weights_bytes=256))
    with pytest.raises(EngineFormatError, match="shares 256 weight bytes"):
        decode(forged)
