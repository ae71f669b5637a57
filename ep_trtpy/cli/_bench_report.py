"""The rows, tables and JSON document of ``ep-trtpy bench`` (not a command itself).

A :class:`Row` is one runner at one (model, batch, precision); the rows of one (model, batch, precision) form a
:class:`Cell`. A cell's *peers* are every runner that is not ours and not ORT's CPU provider (:data:`PEERS`: ORT's
CUDA EP with and without its CUDA graph, PyTorch eager and ``torch.compile``); its *speed-up* is the best peer's
median over ours, so 1.5 means ours takes two thirds of the best peer's time and below 1 means a peer is faster.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

from ep_trtpy.cli import harness

OURS = "trtpy"
PEERS = ("cuda", "cuda+graph", "torch-eager", "torch-compile")
RUNNER_ORDER = (OURS, *PEERS, "cpu")
STATUSES = ("ok", "error", "skipped", "n/a")
SCHEMA = "ep_trtpy.bench/2"


@dataclass
class Row:
    """One runner at one model, batch size and precision."""

    runner: str
    batch: int
    precision: str
    model: str = ""
    status: str = "ok"
    """One of :data:`STATUSES`: n/a when the runner has no such precision, skipped when it was not asked for or
    cannot run here, error when it failed."""
    note: str = ""
    median_ms: float = math.nan
    p99_ms: float = math.nan
    mean_ms: float = math.nan
    runs: int = 0
    throughput: float = math.nan
    """Samples per second at the median latency."""
    create_cold_s: float = math.nan
    first_run_cold_s: float = math.nan
    create_warm_s: float = math.nan
    first_run_warm_s: float = math.nan
    peak_gpu_mb: float | None = None
    io: str = ""
    max_rel_vs_cpu: float = math.nan
    cosine_vs_cpu: float = math.nan
    nodes_on_ep: str = ""
    counters: dict[str, Any] = field(default_factory=dict)

    def set_timing(self, t: harness.Timing) -> None:
        self.median_ms, self.p99_ms, self.mean_ms, self.runs = t.median, t.p99, t.mean, len(t.samples_ms)
        self.throughput = self.batch / (t.median / 1e3) if t.median > 0 else math.nan

    def fail(self, error: BaseException | str, status: str = "error") -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.status, self.note = status, (text.strip().splitlines() or [""])[0][:300]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Row:
        """A row from its JSON form (null numbers back to NaN; unknown keys ignored)."""
        defaults = {f.name: f.default for f in fields(cls)}
        return cls(**{k: math.nan if v is None and isinstance(defaults[k], float) else v
                      for k, v in d.items() if k in defaults})


@dataclass
class Cell:
    """Every runner's median at one (model, batch, precision), and ours against the best peer."""

    model: str
    batch: int
    precision: str
    medians: dict[str, float | None]
    """Runner -> median ms (None unless its row is ok)."""
    statuses: dict[str, str]
    best_peer: str | None = None
    best_peer_ms: float | None = None
    ours_ms: float | None = None
    speedup: float | None = None
    """best_peer_ms / ours_ms: above 1 ours is faster."""


def cells(rows: Sequence[Row]) -> list[Cell]:
    """Rows grouped by (model, batch, precision), in first-seen order, with the best peer and our speed-up."""
    out: dict[tuple[str, int, str], Cell] = {}
    for r in rows:
        key = (r.model, r.batch, r.precision)
        cell = out.setdefault(key, Cell(r.model, r.batch, r.precision, {}, {}))
        ok = r.status == "ok" and math.isfinite(r.median_ms)
        cell.medians[r.runner] = r.median_ms if ok else None
        cell.statuses[r.runner] = r.status
    for cell in out.values():
        peers = [(ms, name) for name, ms in cell.medians.items() if name in PEERS and ms is not None]
        if peers:
            cell.best_peer_ms, cell.best_peer = min(peers)
        cell.ours_ms = cell.medians.get(OURS)
        if cell.ours_ms and cell.best_peer_ms:
            cell.speedup = cell.best_peer_ms / cell.ours_ms
    return list(out.values())


# ---------------------------------------------------------------------------------------------- tables --
def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        digits = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return "-".rjust(int(digits) if digits else 1)
    return format(v, spec)


def rows_table(rows: Sequence[Row]) -> str:
    """Every row with its details (latency, build time, memory, accuracy, note)."""
    width = max([len(r.model) for r in rows] + [5])
    head = (f"{'model':{width}s} {'runner':13s} {'batch':>5s} {'prec':>11s} {'median ms':>10s} {'p99 ms':>9s} "
            f"{'samples/s':>10s} {'build cold s':>12s} {'build warm s':>12s} {'peak MB':>8s} {'io':>6s} "
            f"{'max rel':>9s}  note")
    lines = [head]
    for r in rows:
        cold = r.create_cold_s + r.first_run_cold_s if not math.isnan(r.create_cold_s) else math.nan
        warm = r.create_warm_s + r.first_run_warm_s if not math.isnan(r.create_warm_s) else math.nan
        note = r.note if r.status == "ok" else f"{r.status.upper()}: {r.note}"
        lines.append(f"{r.model:{width}s} {r.runner:13s} {r.batch:5d} {r.precision:>11s} "
                     f"{_fmt(r.median_ms, '10.3f')} {_fmt(r.p99_ms, '9.3f')} {_fmt(r.throughput, '10.1f')} "
                     f"{_fmt(cold, '12.2f')} {_fmt(warm, '12.2f')} {_fmt(r.peak_gpu_mb, '8.1f')} "
                     f"{r.io or '-':>6s} {_fmt(r.max_rel_vs_cpu, '9.2e')}  {note}")
    return "\n".join(lines)


_SHORT = {"error": "ERR", "skipped": "skip", "n/a": "n/a"}


def comparison_table(cell_list: Sequence[Cell]) -> str:
    """One line per cell: each runner's median ms, the best peer and our speed-up against it."""
    present = {name for c in cell_list for name in c.statuses}
    runners = [r for r in RUNNER_ORDER if r in present] + sorted(present - set(RUNNER_ORDER))
    width = max([len(c.model) for c in cell_list] + [5])
    colw = [max(len(r), 8) for r in runners]
    head = (f"{'model':{width}s} {'batch':>5s} {'prec':>11s} "
            + " ".join(f"{r:>{w}s}" for r, w in zip(runners, colw)) + f"  {'best peer':>13s} {'speed-up':>8s}")
    lines = ["median ms per run; speed-up = best peer's median / ours (above 1: ours is faster)", head]
    for c in cell_list:
        vals = []
        for r, w in zip(runners, colw):
            ms, status = c.medians.get(r), c.statuses.get(r)
            text = f"{ms:.3f}" if ms is not None else _SHORT.get(status or "", "-")
            vals.append(f"{text:>{w}s}")
        speed = f"{c.speedup:.2f}x" if c.speedup is not None else "-"
        lines.append(f"{c.model:{width}s} {c.batch:5d} {c.precision:>11s} " + " ".join(vals)
                     + f"  {c.best_peer or '-':>13s} {speed:>8s}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ JSON --
def no_nan(v: Any) -> Any:
    """JSON has no NaN: unmeasured numbers become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: no_nan(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [no_nan(x) for x in v]
    return v


def document(rows: Sequence[Row], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: ``meta`` (versions, GPU, settings, models), every row and every cell."""
    doc = {"schema": SCHEMA, **meta, "ours": OURS, "peers": list(PEERS), "rows": [asdict(r) for r in rows],
           "cells": [asdict(c) for c in cells(rows)]}
    return no_nan(doc)


def accuracy(row: Row, names: Sequence[str], got: Sequence[Any], ref: Sequence[Any] | None) -> None:
    """Fill ``row``'s largest error relative to each output's scale, and its lowest cosine, against ``ref``
    (ORT's CPU provider in float32)."""
    if ref is None:
        return
    cmp = harness.compare_outputs(names, got, ref, network=True, low_precision=row.precision in ("fp16", "bf16"))
    floats = [c for c in cmp if c.dtype.startswith("float")]
    if floats:
        row.max_rel_vs_cpu = max(c.max_rel for c in floats)
        row.cosine_vs_cpu = min(c.cosine for c in floats)


def write(path: str, doc: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=str)


def load(paths: Sequence[str]) -> tuple[list[Row], dict[str, Any]]:
    """Rows and merged metadata of earlier runs' JSON files (``--from-json``): rows in file order, the first
    file's metadata with every file's ``models`` and ``sources``."""
    rows: list[Row] = []
    meta: dict[str, Any] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a JSON file ({e})") from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            schema = doc.get("schema") if isinstance(doc, dict) else None
            raise ValueError(f"{path} is not an ep-trtpy bench JSON file of schema {SCHEMA} (schema {schema!r})")
        rows.extend(Row.from_dict(r) for r in doc["rows"])
        if not meta:
            meta = {k: v for k, v in doc.items() if k not in ("schema", "rows", "cells", "ours", "peers")}
            meta["models"] = list(doc.get("models", []))
            meta["sources"] = [path]
        else:
            meta["models"].extend(doc.get("models", []))
            meta["sources"].append(path)
    return rows, meta
