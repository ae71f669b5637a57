"""ep-trtpy bench's cells, ratios, tables and JSON document, on fake rows."""

from __future__ import annotations

import json
import math

import pytest

from ep_trtpy.cli import _bench_report
from ep_trtpy.cli._bench_report import Row


def _row(runner: str, ms: float | None, status: str = "ok", model: str = "m", batch: int = 1,
         precision: str = "fp16") -> Row:
    r = Row(runner, batch, precision, model, status=status)
    if ms is not None:
        r.median_ms = ms
    return r


def test_speedup_is_the_best_peer_over_ours() -> None:
    rows = [_row("trtpy", 2.0), _row("cuda", 5.0), _row("cuda+graph", 3.0), _row("torch-eager", 9.0),
            _row("torch-compile", 4.0), _row("cpu", 0.5, precision="fp16")]
    (cell,) = _bench_report.cells(rows)
    assert cell.best_peer == "cuda+graph" and cell.best_peer_ms == 3.0
    assert cell.speedup == pytest.approx(1.5)  # the CPU provider is never a peer, however fast


def test_failed_and_missing_peers_do_not_count() -> None:
    rows = [_row("trtpy", 4.0), _row("cuda", 1.0, status="error"), _row("cuda+graph", None, status="n/a"),
            _row("torch-compile", 2.0)]
    (cell,) = _bench_report.cells(rows)
    assert cell.best_peer == "torch-compile" and cell.speedup == pytest.approx(0.5)
    assert cell.medians["cuda"] is None and cell.statuses["cuda"] == "error"


def test_no_ratio_without_ours_or_without_a_peer() -> None:
    only_peers = _bench_report.cells([_row("trtpy", None, status="error"), _row("cuda", 1.0)])[0]
    only_ours = _bench_report.cells([_row("trtpy", 1.0), _row("cuda", None, status="skipped")])[0]
    assert only_peers.speedup is None and only_peers.best_peer == "cuda"
    assert only_ours.speedup is None and only_ours.best_peer is None


def test_cells_group_by_model_batch_and_precision_in_order() -> None:
    rows = [_row("trtpy", 1.0, model="a", batch=1), _row("trtpy", 2.0, model="a", batch=32),
            _row("cuda", 3.0, model="a", batch=1), _row("trtpy", 4.0, model="b", precision="bf16")]
    got = [(c.model, c.batch, c.precision, sorted(c.medians)) for c in _bench_report.cells(rows)]
    assert got == [("a", 1, "fp16", ["cuda", "trtpy"]), ("a", 32, "fp16", ["trtpy"]), ("b", 1, "bf16", ["trtpy"])]


def test_comparison_table_shows_every_runner_and_the_ratio() -> None:
    rows = [_row("trtpy", 2.0), _row("cuda", None, status="error"), _row("cuda+graph", 3.0),
            _row("torch-eager", None, status="n/a"), _row("torch-compile", 2.5)]
    text = _bench_report.comparison_table(_bench_report.cells(rows))
    head, line = text.splitlines()[1], text.splitlines()[2]
    assert head.split()[:8] == ["model", "batch", "prec", "trtpy", "cuda", "cuda+graph", "torch-eager",
                                "torch-compile"]
    assert line.split()[3:] == ["2.000", "ERR", "3.000", "n/a", "2.500", "torch-compile", "1.25x"]


def test_rows_table_marks_failures() -> None:
    r = _row("cuda", None)
    r.fail(RuntimeError("no CUDA\nsecond line"))
    text = _bench_report.rows_table([_row("trtpy", 1.0), r])
    assert "ERROR: RuntimeError: no CUDA" in text and "second line" not in text


def test_document_is_strict_json_and_round_trips(tmp_path) -> None:
    rows = [_row("trtpy", 2.0), _row("cuda+graph", 3.0), _row("cuda", None, status="skipped")]
    meta = {"suite": "issue6", "gpu": {"name": "NVIDIA H200", "cc": [9, 0]}, "versions": {"ep_trtpy": "0"},
            "models": [{"label": "m", "exporter": "torchscript"}]}
    doc = _bench_report.document(rows, meta)
    text = json.dumps(doc, allow_nan=False)  # no NaN anywhere
    for key in ("schema", "suite", "gpu", "versions", "models", "ours", "peers", "rows", "cells"):
        assert key in doc, key
    assert doc["schema"] == _bench_report.SCHEMA and doc["peers"] == list(_bench_report.PEERS)
    assert doc["cells"][0]["speedup"] == pytest.approx(1.5) and doc["rows"][2]["median_ms"] is None
    path = tmp_path / "a.json"
    path.write_text(text)
    back, merged = _bench_report.load([str(path), str(path)])
    assert len(back) == 6 and math.isnan(back[2].median_ms) and back[0].median_ms == 2.0
    assert merged["suite"] == "issue6" and len(merged["models"]) == 2


def test_load_refuses_other_json(tmp_path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="schema"):
        _bench_report.load([str(path)])
