"""The ORT plugin library's ABI: the load-time self-check report and the library's exported surface."""

from __future__ import annotations

import subprocess

import onnxruntime as ort
import pytest

import ep_trtpy
from ep_trtpy import _kernels

ep_trtpy.register()  # idempotent; needed when an earlier test module imported only submodules of ep_trtpy


def test_abi_self_check_passed_on_this_onnxruntime() -> None:
    """Every probe of shim/abi_probes.cpp ran against the installed ORT and passed (fact sheet §4.3)."""
    report = _kernels.abi_report()
    assert f"ONNX Runtime {ort.__version__}" in report, report
    lines = [line.strip() for line in report.splitlines()]
    probes = [line for line in lines if line.endswith(": ok") or "FAILED" in line]
    names = ("version gate", "status round-trip", "key-value pairs", "memory info round-trip", "op attributes",
             "tensor value", "kernel registry")
    assert [p.split(" (")[0] for p in probes] == list(names), report
    assert all(p.endswith(": ok") for p in probes), report
    assert lines[-1] == "all probes passed", report


def _defined_dynamic_symbols(path: str) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", path], check=True, capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_plugin_exports_exactly_the_two_ort_entry_points() -> None:
    symbols = _defined_dynamic_symbols(ep_trtpy.get_library_path())
    assert symbols == {"CreateEpFactories", "ReleaseEpFactory"}
    assert "GetProvider" not in symbols  # ORT would take the library for a provider-bridge library


def test_plugin_links_neither_python_nor_onnxruntime() -> None:
    """The plugin gets ORT's API only from CreateEpFactories and reaches Python only through host callbacks."""
    try:
        out = subprocess.run(["readelf", "-d", ep_trtpy.get_library_path()], check=True, capture_output=True,
                             text=True).stdout
    except FileNotFoundError:
        pytest.skip("readelf is not installed")
    needed = [line for line in out.splitlines() if "(NEEDED)" in line]
    assert needed, out
    assert not any("libpython" in line or "onnxruntime" in line for line in needed), needed
