"""The quantization options: ORT TensorRT EP aliases, defaults, the accuracy target's grammar, the engine key."""

from __future__ import annotations

import pytest

from ep_trtpy.options import SPECS, OptionError, parse, parse_accuracy_target

OPTIONS = {  # name -> (alias or None, default, text, parsed)
    "int8_enable": ("trt_int8_enable", False, "1", True),
    "int8_calibration_table_name": ("trt_int8_calibration_table_name", "", "calib.json", "calib.json"),
    "int8_use_native_calibration_table": ("trt_int8_use_native_calibration_table", False, "true", True),
    "fp8_enable": (None, False, "1", True),
    "int8_accuracy_target": (None, "", "Top1: 0.990", "top1:0.99"),
}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_defaults_aliases_and_engine_key(name):
    alias, default, text, value = OPTIONS[name]
    spec = next(s for s in SPECS if s.name == name)
    assert spec.default == default and getattr(parse({}), name) == default
    assert getattr(parse({name: text}), name) == value
    assert spec.aliases == (() if alias is None else (alias,))
    if alias:
        assert getattr(parse({alias: text}), name) == value
    assert parse({name: text}).engine_key_items() != parse({}).engine_key_items()


@pytest.mark.parametrize("text, expected", [
    ("cosine:0.999", ("cosine", 0.999)), (" top1:1 ", ("top1", 1.0)), ("", None)])
def test_accuracy_targets(text, expected):
    assert parse_accuracy_target(text) == expected


@pytest.mark.parametrize("text, message", [
    ("0.999", "expected METRIC:VALUE with METRIC one of cosine, top1"),
    ("psnr:30", "expected METRIC:VALUE"),
    ("cosine:high", "'high' is not a number"),
    ("cosine:1.5", "the cosine target 1.5 is outside \\(0, 1\\]"),
    ("top1:0", "the top1 target 0 is outside"),
])
def test_bad_accuracy_targets_name_the_value(text, message):
    with pytest.raises(OptionError, match=f"bad value '{text}' for TrtPyExecutionProvider option "
                                          f"'int8_accuracy_target': {message}"):
        parse({"int8_accuracy_target": text})
