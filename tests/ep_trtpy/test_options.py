"""Options of this round: precision, optimization level and timing cache (parsing, aliases, defaults, engine key)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from ep_trtpy.options import SPECS, OptionError, Options, markdown_table, parse

NEW = {  # name -> (ORT TensorRT EP alias or None, default, a non-default value as text, parsed)
    "timing_cache_enable": ("trt_timing_cache_enable", False, "1", True),
    "timing_cache_path": ("trt_timing_cache_path", "", "/tmp/tc", "/tmp/tc"),
    "builder_optimization_level": ("trt_builder_optimization_level", 3, "5", 5),
    "tf32_enable": (None, True, "0", False),
    "bf16_enable": ("trt_bf16_enable", False, "1", True),
}


@pytest.mark.parametrize("name", sorted(NEW))
def test_defaults_names_and_aliases(name):
    alias, default, text, value = NEW[name]
    spec = next(s for s in SPECS if s.name == name)
    assert spec.default == default and getattr(parse({}), name) == default
    assert getattr(parse({name: text}), name) == value
    if alias is None:
        assert spec.aliases == ()
    else:
        assert spec.aliases == (alias,) and getattr(parse({alias: text}), name) == value
        with pytest.raises(OptionError, match="given twice"):
            parse({name: text, alias: text})


def test_which_options_change_the_engine():
    keyed = parse({}).engine_key_items()
    assert {"tf32_enable", "bf16_enable", "builder_optimization_level"} <= set(keyed)
    assert not {"timing_cache_enable", "timing_cache_path"} & set(keyed)
    base = parse({}).engine_key_items()
    for raw in ({"tf32_enable": "0"}, {"bf16_enable": "1"}, {"builder_optimization_level": "0"}):
        assert parse(raw).engine_key_items() != base, raw
    for raw in ({"timing_cache_enable": "1"}, {"timing_cache_path": "/tmp/elsewhere"}):
        assert parse(raw).engine_key_items() == base, raw


@pytest.mark.parametrize("text", ["6", "-1", "three", "2.5"])
def test_the_optimization_level_is_0_to_5(text):
    with pytest.raises(OptionError, match=f"bad value '{text}' .*builder_optimization_level"):
        parse({"builder_optimization_level": text})


def test_the_timing_cache_folder_defaults_to_the_engine_cache_folder(tmp_path):
    engines = str(tmp_path / "engines")
    assert parse({"engine_cache_path": engines}).timing_cache_dir == engines
    assert parse({}).timing_cache_dir == parse({}).cache_dir
    assert parse({"trt_timing_cache_path": "~/tc"}).timing_cache_dir == os.path.expanduser("~/tc")


def test_the_readme_table_lists_the_new_options_with_their_aliases():
    table = markdown_table()
    for name, (alias, default, _, _) in NEW.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        shown = int(default) if isinstance(default, bool) else default
        assert f"| `{shown}` |" in row and (alias is None or f"`{alias}`" in row)
    assert "FP16 wins" in table and "TF32" in table


def test_options_are_declared_once():
    """SPECS is derived from the Options fields: every field but `session` is an option with the same default."""
    options = [f for f in dataclasses.fields(Options) if f.name != "session"]
    assert [f.name for f in options] == [s.name for s in SPECS]
    assert all(f.default == s.default for f, s in zip(options, SPECS))
    assert parse({}) == Options()


@pytest.mark.parametrize("key,meant", [("fp16", "fp16_enable"), ("FP16_ENABLE", "fp16_enable"),
                                       ("trt_fp16", "fp16_enable"), ("device", "device_id"),
                                       ("builder_optimisation_level", "builder_optimization_level")])
def test_an_unknown_option_names_the_nearest(key, meant):
    with pytest.raises(OptionError, match=f"unknown TrtPyExecutionProvider option '{key}' \\(did you mean "
                                          f"'{meant}'\\?\\); valid options: device_id, "):
        parse({key: "1"})


def test_an_unknown_option_without_a_near_one_lists_the_valid_ones():
    with pytest.raises(OptionError) as e:
        parse({"zzz": "1"})
    assert "did you mean" not in str(e.value) and "valid options: device_id, fp16_enable" in str(e.value)


@pytest.fixture
def ep_log():
    """What the ep_trtpy logger says (it does not propagate to the root logger pytest watches)."""
    import logging

    from ep_trtpy import options

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("ep_trtpy").addHandler(handler)
    options._warned_op_types.clear()
    yield records
    logging.getLogger("ep_trtpy").removeHandler(handler)


def test_unknown_op_types_to_exclude_are_a_warning_naming_them(ep_log):
    from ep_trtpy.options import unknown_op_types

    assert unknown_op_types(["Conv", "Resize", "ep_trtpy::Pointwise", "FusedConv"]) == []
    assert unknown_op_types(["conv", "softmax", "Sofmax", "Frobnicate"]) == [
        "'conv' (did you mean 'Conv'?)", "'softmax' (did you mean 'Softmax'?)", "'Sofmax' (did you mean 'Softmax'?)",
        "'Frobnicate'"]
    options = parse({"op_types_to_exclude": "conv,Relu,Frobnicate"})
    assert options.op_types_to_exclude == ("conv", "Relu", "Frobnicate")  # still accepted: a warning, not an error
    assert len(ep_log) == 1
    assert "op_types_to_exclude names unknown op types, which exclude nothing: 'conv' (did you mean 'Conv'?), " \
           "'Frobnicate'" in ep_log[0]
    parse({"trt_op_types_to_exclude": "conv,Relu,Frobnicate"})
    parse({"op_types_to_exclude": "Conv,Relu"})
    assert len(ep_log) == 1  # once per process for the same names; known names say nothing
