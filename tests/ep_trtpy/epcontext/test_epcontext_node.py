"""The EPContext node contract without a session: session entries, file names, payloads, learned shapes."""

from __future__ import annotations

import base64
import os

import pytest

from ep_trtpy.epcontext import ContextError, Settings, learned_shapes
from ep_trtpy.epcontext.load import is_ours
from ep_trtpy.epcontext.node import (MAX_EMBEDDED_BYTES, concrete_shapes, context_model_path, engine_file_name,
                                     node_attributes)

HEADER = {"format_version": 1, "backend": "cuda", "device": {"name": "NVIDIA H200", "cc": [9, 0]}}


def test_settings_from_session_entries() -> None:
    s = Settings.from_session({"ep.context_enable": "1", "ep.context_file_path": "out/m_ctx.onnx",
                               "ep.context_embed_mode": "0", "ep.context_node_name_prefix": "a_"})
    assert s == Settings(True, "out/m_ctx.onnx", 0, "a_")
    assert Settings.from_session({}) == Settings(False, "", 1, "")  # ORT's defaults: off, embedded
    with pytest.raises(ContextError, match="ep.context_embed_mode is 'yes'"):
        Settings.from_session({"ep.context_embed_mode": "yes"})


def test_where_the_context_model_and_its_engine_files_go(tmp_path) -> None:
    assert context_model_path(Settings(), str(tmp_path / "m.onnx")) == str(tmp_path / "m_ctx.onnx")
    assert context_model_path(Settings(file_path=str(tmp_path / "x.onnx")), "") == str(tmp_path / "x.onnx")
    with pytest.raises(ContextError, match="loaded from bytes.*ep.context_file_path"):
        context_model_path(Settings(), "")
    name = engine_file_name("/a/m_ctx.onnx", "TrtPyExecutionProvider_TrtPyExecutionProvider_123_0_0")
    assert name == "m_ctx_123_0_0.engine"
    assert "/" not in engine_file_name("/a/m_ctx.onnx", "../../etc/passwd")


def test_attributes_embedded_and_beside(tmp_path) -> None:
    engine = b"TRTPYENG\x00\x01binary\x00engine"
    name, attrs = node_attributes("fused_0", engine, HEADER, Settings(embed_mode=1, node_name_prefix="p_"),
                                  str(tmp_path / "m.onnx"))
    a = dict(attrs)
    assert name == "p_fused_0" and a["embed_mode"] == 1 and a["main_context"] == 1
    assert base64.b64decode(a["ep_cache_context"]) == engine and b"\x00" not in a["ep_cache_context"]
    assert a["hardware_architecture"] == b"sm90" and a["source"] == b"TrtPyExecutionProvider"
    assert a["onnx_model_filename"] == b"m.onnx" and a["partition_name"] == b"fused_0"

    target = tmp_path / "ship" / "m_ctx.onnx"
    target.parent.mkdir()
    _, attrs = node_attributes("fused_0", engine, HEADER, Settings(file_path=str(target), embed_mode=0),
                               str(tmp_path / "m.onnx"))
    a = dict(attrs)
    written = target.parent / a["ep_cache_context"].decode()
    assert a["embed_mode"] == 0 and written.read_bytes() == engine and os.stat(written).st_mode & 0o044 == 0o044


def test_too_large_to_embed_says_to_use_embed_mode_0(monkeypatch) -> None:
    import ep_trtpy.epcontext.node as node

    monkeypatch.setattr(node, "MAX_EMBEDDED_BYTES", 16)
    assert MAX_EMBEDDED_BYTES > 16
    with pytest.raises(ContextError, match="too large to embed.*ep.context_embed_mode=0"):
        node.node_attributes("f", b"x" * 64, HEADER, Settings(), "m.onnx")


def test_concrete_shapes_static_learned_or_an_error() -> None:
    assert concrete_shapes("f", [("a", (2, 3))]) == [(2, 3)]
    with pytest.raises(ContextError, match=r"fused node 'f' has dynamic input shapes \(b \[N,3\]\)"):
        concrete_shapes("f", [("a", (2, 3)), ("b", ("N", 3))])
    with learned_shapes({"b": (5, 3)}, "x:5x3"):
        assert concrete_shapes("f", [("a", (2, 3)), ("b", ("N", 3))]) == [(2, 3), (5, 3)]
        with pytest.raises(ContextError, match="already active"):
            with learned_shapes({}):
                pass
    with pytest.raises(ContextError):
        concrete_shapes("f", [("b", ("N", 3))])  # forgotten when the block ends


def test_only_our_epcontext_nodes_are_ours() -> None:
    def node(source: str, op: str = "EPContext", domain: str = "com.microsoft") -> dict:
        return {"op_type": op, "domain": domain, "attrs": {"source": {"type": "string", "value": source}}}

    assert is_ours(node("TrtPyExecutionProvider"))
    assert not is_ours(node("QNNExecutionProvider"))
    assert not is_ours(node("TrtPyExecutionProvider", domain=""))
    assert not is_ours(node("TrtPyExecutionProvider", op="Relu"))
    assert not is_ours({"op_type": "EPContext", "domain": "com.microsoft", "attrs": {}})
