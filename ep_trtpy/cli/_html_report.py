"""The HTML report of ``ep-trtpy inspect --html`` and ``ep-trtpy profile --html``: one self-contained file.

Everything is inline (one ``<style>`` block, SVG drawn into the page, no script, no font, image or stylesheet
from anywhere else), so the file can be mailed, attached to an issue or opened offline. Every name that comes from
a model or an engine (layers, tensors, kernels, tactics) is HTML-escaped: a layer called ``<script>`` stays text.

It shows, per engine: the header facts, a table of the layers in launch order (kernel, name, tactic, precision,
layout, workspace, the model's nodes each one implements and, from ``profile``, its time as a bar, its share and
what it achieved against the roofline), and the memory plan over time: every activation as a box whose width is
its lifetime (first to last layer that touches it) and whose height is its place in the arena (offset, size).

Input is the JSON-able data ``inspect`` (``describe``) and ``profile`` (its ``--json`` report) already produce, so
a saved profile can be rendered again without a GPU: ``ep-trtpy profile --from-json PROFILE.json --html OUT``.
"""

from __future__ import annotations

import colorsys
import html
import math
from collections.abc import Sequence
from typing import Any

CHART_W, CHART_H = 960, 320
MARGIN_L, MARGIN_B, MARGIN_T = 70, 34, 8

STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 20px; color: #1d232a; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 2px 8px; border-bottom: 1px solid #e4e6ea; text-align: left; vertical-align: top; }
th { background: #f2f4f7; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.mono, span.mono { font-family: ui-monospace, monospace; font-size: 12px; }
.bar { height: 10px; background: #4c7bd9; min-width: 1px; }
.barcell { width: 180px; }
.facts td:first-child { color: #667; }
.note { color: #667; }
svg text { font: 11px system-ui, sans-serif; fill: #445; }
"""


def _e(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape("" if value is None else str(value), quote=True)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def _tactic(lay: dict[str, Any]) -> str:
    if lay.get("tactic") is None or (lay.get("tactic") == -1 and not lay.get("tactic_name")):
        return "-"
    text = lay.get("tactic_name") or str(lay["tactic"])
    return f"{text} (timing cache)" if lay.get("tactic_source") == "timing cache" else text


def _facts(rows: Sequence[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="facts">{cells}</table>'


def layer_table(layers: Sequence[dict[str, Any]]) -> str:
    """The layers in launch order; with per-layer ``ms`` (profile) a time bar, the share and the roofline."""
    timed = any(lay.get("ms") is not None for lay in layers)
    total = sum(float(lay.get("ms") or 0.0) for lay in layers)
    longest = max((float(lay.get("ms") or 0.0) for lay in layers), default=0.0)
    head = ["#", "kernel", "name", "tactic", "precision", "layout", "workspace"]
    if timed:
        head += ["time", "ms", "share", "achieved"]
    head.append("implements (model nodes)")
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for i, lay in enumerate(layers):
        cells = [f'<td class="num">{i}</td>', f'<td class="mono">{_e(lay.get("kernel"))}</td>',
                 f'<td class="mono">{_e(lay.get("name"))}</td>', f'<td class="mono">{_e(_tactic(lay))}</td>',
                 f'<td>{_e(lay.get("precision") or "-")}</td>', f'<td>{_e(lay.get("layout") or "-")}</td>',
                 f'<td class="num">{_e(_bytes(lay.get("workspace") or 0))}</td>']
        if timed:
            ms = float(lay.get("ms") or 0.0)
            width = 100.0 * ms / longest if longest > 0 else 0.0
            achieved = f"{lay['achieved']:.1f} {lay.get('unit', '')}" if lay.get("achieved") is not None else "-"
            share = lay.get("roofline_share")
            if share is not None:
                achieved += f" ({100 * float(share):.0f}% of roofline)"
            cells += [f'<td class="barcell"><div class="bar" style="width:{width:.1f}%"></div></td>',
                      f'<td class="num">{ms:.4f}</td>',
                      f'<td class="num">{100 * ms / total if total > 0 else 0:.1f}%</td>', f"<td>{_e(achieved)}</td>"]
        cells.append(f'<td class="mono">{_e(", ".join(str(n) for n in lay.get("fused") or []))}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _color(k: int) -> str:
    r, g, b = colorsys.hls_to_rgb((k * 0.618034) % 1.0, 0.62, 0.55)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _ticks(top: float, count: int = 5, least_step: float = 0.0) -> list[float]:
    """Round tick values from 0 to `top`, at most about `count` + 1 of them, `least_step` apart at least."""
    if top <= 0:
        return [0.0]
    step = 10 ** math.floor(math.log10(top / count))
    for m in (1, 2, 5, 10):
        if top / (step * m) <= count:
            step *= m
            break
    step = max(step, least_step)
    return [i * step for i in range(int(top // step) + 1)]


def memory_chart(tensors: Sequence[dict[str, Any]], n_layers: int, arena_bytes: int | None) -> str:
    """An SVG of the activation arena: x is the layer index, y the byte offset; one box per activation from its
    first to its last layer, from its offset to offset + size (hover for its name)."""
    acts = [t for t in tensors if t.get("kind") == "activation" and t.get("life") is not None]
    if arena_bytes is None:
        return '<p class="note">No memory plan: this engine runs on the numpy reference backend.</p>'
    if not acts or n_layers == 0:
        return '<p class="note">No activations: every tensor of this engine is an input, output or weight.</p>'
    top = max(int(arena_bytes), max(int(t["offset"]) + int(t["nbytes"]) for t in acts), 1)
    w, h = CHART_W - MARGIN_L - 10, CHART_H - MARGIN_B - MARGIN_T
    sx, sy = w / n_layers, h / top
    parts = [f'<svg width="{CHART_W}" height="{CHART_H}" viewBox="0 0 {CHART_W} {CHART_H}" role="img" '
             f'aria-label="activation arena over layers">',
             f'<rect x="{MARGIN_L}" y="{MARGIN_T}" width="{w}" height="{h}" fill="#f7f8fa" stroke="#ccd"/>']
    for t in sorted(acts, key=lambda t: t["id"]):
        first, last = int(t["life"][0]), int(t["life"][1])
        x = MARGIN_L + first * sx
        y = MARGIN_T + int(t["offset"]) * sy
        tip = (f"{t['name']}: {t.get('dtype', '')}{t.get('shape', '')}, {_bytes(int(t['nbytes']))} at offset "
               f"{int(t['offset'])}, layers {first}-{last}")
        parts.append(f'<rect x="{x:.2f}" y="{y:.2f}" width="{max((last - first + 1) * sx, 1.0):.2f}" '
                     f'height="{max(int(t["nbytes"]) * sy, 1.0):.2f}" fill="{_color(int(t["id"]))}" '
                     f'stroke="#334" stroke-width="0.3"><title>{_e(tip)}</title></rect>')
    unit, unit_name = next((u, n) for u, n in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B"))
                           if top >= u or u == 1)
    for b in _ticks(top / unit):
        y = MARGIN_T + b * unit * sy
        parts.append(f'<line x1="{MARGIN_L - 4}" y1="{y:.1f}" x2="{MARGIN_L}" y2="{y:.1f}" stroke="#667"/>'
                     f'<text x="{MARGIN_L - 6}" y="{y + 4:.1f}" text-anchor="end">{b:g} {unit_name}</text>')
    for i in _ticks(n_layers - 1, 10, least_step=1):
        x = MARGIN_L + (i + 0.5) * sx
        parts.append(f'<line x1="{x:.1f}" y1="{MARGIN_T + h}" x2="{x:.1f}" y2="{MARGIN_T + h + 4}" stroke="#667"/>'
                     f'<text x="{x:.1f}" y="{MARGIN_T + h + 16}" text-anchor="middle">{int(i)}</text>')
    parts.append(f'<text x="{MARGIN_L + w / 2:.0f}" y="{CHART_H - 4}" text-anchor="middle">layer (launch order)'
                 f'</text></svg>')
    return "\n".join(parts)


def engine_section(title: str, facts: Sequence[tuple[str, Any]], d: dict[str, Any]) -> str:
    """One engine: facts, the layer table and the memory chart. `d` has ``layers``, ``tensors`` and ``memory``
    as ``inspect.describe`` / ``describe_plan`` give them (layers may carry profile's ``ms``)."""
    layers = d.get("layers") or []
    mem = d.get("memory") or {}
    acts = [t for t in d.get("tensors") or [] if t.get("kind") == "activation"]
    facts = list(facts) + [("layers", len(layers)), ("activation arena", _bytes(mem.get("arena_bytes"))),
                           ("activations", len(acts)), ("weights", _bytes(mem.get("weights_bytes"))),
                           ("largest workspace", _bytes(mem.get("workspace_bytes")))]
    return "\n".join([f"<h2>{_e(title)}</h2>", _facts(facts), "<h3>Layers</h3>", layer_table(layers),
                      "<h3>Memory plan over time</h3>",
                      memory_chart(d.get("tensors") or [], len(layers), mem.get("arena_bytes"))])


def page(title: str, sections: Sequence[str]) -> str:
    """A whole HTML document around `sections` (already HTML)."""
    body = "\n".join(sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>{_e(title)}</h1>\n{body}\n</body></html>\n")


def inspect_page(d: dict[str, Any]) -> str:
    """The report of one engine file (``inspect.describe``'s dict)."""
    h = d["header"]
    dev = h.get("device") or {}
    cc = dev.get("cc") or [0, 0]
    where = f"{dev.get('name')} (sm{cc[0]}{cc[1]})" if h.get("backend") == "cuda" else "cpu (numpy reference)"
    facts = [("file", f"{d['file']} ({d['bytes']} bytes)"), ("format", f"v{h.get('format_version')}"),
             ("backend", h.get("backend")), ("device", where),
             ("producers", ", ".join(f"{k} {v}" for k, v in sorted((h.get("producers") or {}).items()))),
             ("inputs", _io(h.get("inputs"))), ("outputs", _io(h.get("outputs"))),
             ("built in", f"{float(h.get('build_seconds') or 0):.3f} s")]
    return page(f"ep-trtpy engine {d['file'].rsplit('/', 1)[-1]}", [engine_section("engine", facts, d)])


def _io(items: Any) -> str:
    from graph_partitioner.ir import dtype_name

    return ", ".join(f"{io['name']} {dtype_name(io['dtype'])}{io['shape']}" for io in items or [])


def profile_page(report: Sequence[dict[str, Any]], label: str = "") -> str:
    """The report of ``ep-trtpy profile`` (its ``--json`` list, one dict per engine)."""
    sections = []
    for e in report:
        total = sum(float(lay.get("ms") or 0.0) for lay in e.get("layers") or [])
        facts = [("precision", e.get("precision")), ("inputs", e.get("inputs", "-")),
                 ("sum of layer times", f"{total:.3f} ms"),
                 ("one run, layer by layer", _ms(e.get("layer_by_layer_ms"))),
                 ("one run, CUDA graph", _ms(e.get("cuda_graph_ms"))),
                 ("at the roofline", _ms(e.get("roofline_ms"))), ("limits", e.get("limits", "-"))]
        sections.append(engine_section(f"engine {e.get('engine', len(sections))}", facts, e))
    return page(f"ep-trtpy profile {label}".strip(), sections)


def _ms(v: Any) -> str:
    return "-" if v is None else f"{float(v):.3f} ms"


def write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
