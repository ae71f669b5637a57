"""The calibration report: one self-contained HTML file (inline CSS and SVG, no scripts, nothing fetched) with the
calibration's settings, the accuracy guard's result, each layer's sensitivity as a bar (log scale), the final
precision map and every tensor's range."""

from __future__ import annotations

import html
import math

from ep_trtpy.quantize.table import CalibrationTable

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.float { color: #b03000; font-weight: 600; } .q { color: #006040; }
.ok { color: #006040; } .miss { color: #b03000; }
"""
BAR_WIDTH = 360


def _e(x: object) -> str:
    return html.escape(str(x))


def _bar(error: float | None, lo: float, hi: float, fallback: bool) -> str:
    """An inline SVG bar of length log10(error) between lo and hi (decades)."""
    if error is None:
        return ""
    e = max(error, 10.0 ** lo)
    frac = 0.0 if hi <= lo else (math.log10(e) - lo) / (hi - lo)
    w = max(1, int(BAR_WIDTH * min(max(frac, 0.0), 1.0)))
    color = "#d05020" if fallback else "#3a8f6a"
    return (f'<svg width="{BAR_WIDTH}" height="12" role="img"><rect width="{w}" height="12" fill="{color}"/>'
            f'</svg>')


def render(table: CalibrationTable) -> str:
    """The report's HTML text."""
    guard = table.guard or {}
    fell = {f["layer"]: f.get("error") for f in guard.get("fallback", [])}
    errors = [layer.sensitivity for layer in table.layers.values() if layer.sensitivity is not None]
    positive = [e for e in errors if e > 0]
    lo = math.floor(math.log10(min(positive))) if positive else -8
    hi = math.ceil(math.log10(max(positive))) if positive else 0
    hi = max(hi, lo + 1)
    rows = []
    order = sorted(table.layers.items(), key=lambda kv: -(kv[1].sensitivity if kv[1].sensitivity is not None
                                                           else -1.0))
    for name, layer in order:
        cls = "float" if layer.precision == "float" else "q"
        sens = "" if layer.sensitivity is None else f"{layer.sensitivity:.3e}"
        rows.append(f"<tr><td>{_e(name)}</td><td>{_e(layer.op)}</td><td>{_e(', '.join(layer.inputs))}</td>"
                    f"<td class='num'>{sens}</td><td>{_bar(layer.sensitivity, lo, hi, name in fell)}</td>"
                    f"<td class='{cls}'>{_e(layer.precision)}</td></tr>")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Calibration report: {_e(table.model_name)}"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>Calibration report: {_e(table.model_name)}</h1>",
             "<table>",
             f"<tr><th>method</th><td>{_e(table.method)}</td></tr>",
             f"<tr><th>precision</th><td>{_e(table.precision)}</td></tr>",
             f"<tr><th>calibration batches</th><td>{table.batches}</td></tr>",
             f"<tr><th>model sha256</th><td><code>{_e(table.model_sha256 or '')}</code></td></tr>",
             f"<tr><th>ep_trtpy</th><td>{_e(table.producer)}</td></tr>",
             "</table>"]
    if guard:
        from ep_trtpy.options import parse_accuracy_target

        metric_threshold = parse_accuracy_target(str(guard.get("target", "")))
        threshold = metric_threshold[1] if metric_threshold else 0.0
        achieved = float(guard.get("achieved", 0.0))
        ok = "ok" if achieved >= threshold else "miss"
        parts += ["<h2>Accuracy guard</h2><table>",
                  f"<tr><th>target</th><td>{_e(guard.get('target'))} on {guard.get('held_back')} held-back "
                  f"batches</td></tr>",
                  f"<tr><th>every layer quantized</th><td class='num'>{float(guard.get('all_quantized', 0)):.6f}"
                  f"</td></tr>",
                  f"<tr><th>achieved</th><td class='num {ok}'>{achieved:.6f}</td></tr>",
                  f"<tr><th>fell back to float</th><td>{len(fell)} of {len(table.layers)} layers</td></tr>",
                  "</table>"]
        if fell:
            parts += ["<table><tr><th>layer</th><th>error with only it quantized</th></tr>"]
            parts += [f"<tr><td>{_e(k)}</td><td class='num'>{v:.3e}</td></tr>" for k, v in fell.items()]
            parts += ["</table>"]
    parts += [f"<h2>Layers: sensitivity and precision map</h2><p>Sensitivity: the output error (1 - cosine, or 1 - "
              f"top-1 agreement) with only that layer quantized; bars on a log scale from 1e{lo} to 1e{hi}.</p>",
              "<table><tr><th>layer</th><th>op</th><th>inputs</th><th>sensitivity</th><th></th><th>precision</th>"
              "</tr>", *rows, "</table>",
              "<h2>Tensor ranges</h2><table><tr><th>tensor</th><th>amax</th><th>min</th><th>max</th></tr>"]
    for name, entry in sorted(table.tensors.items()):
        parts.append(f"<tr><td>{_e(name)}</td><td class='num'>{entry['amax']:.6g}</td>"
                     f"<td class='num'>{entry.get('min', float('nan')):.6g}</td>"
                     f"<td class='num'>{entry.get('max', float('nan')):.6g}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)


def write_report(table: CalibrationTable, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(table))
