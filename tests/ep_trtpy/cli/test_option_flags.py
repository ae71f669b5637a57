"""Every command's engine-option flags are generated from ep_trtpy.options (cli/_common.add_option_flags)."""

from __future__ import annotations

import argparse

import pytest

from ep_trtpy.cli import _commands, _common
from ep_trtpy.options import SPECS, Spec, parse

ENGINE = [s.name for s in SPECS if s.affects_engine]
COMMANDS = ["build", "run", "compare", "conformance"]


def _parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=command, exit_on_error=False)
    _commands()[command].add_arguments(p)
    return p


def _flags(p: argparse.ArgumentParser) -> set[str]:
    return {s for a in p._actions for s in a.option_strings}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_engine_option_has_a_flag(command: str) -> None:
    flags = _flags(_parser(command))
    for name in ENGINE:
        flag = _common.option_flag(name)
        assert flag in flags, (command, name)
        if next(s for s in SPECS if s.name == name).type_name == "bool":
            assert "--no-" + flag[2:] in flags, (command, name)


@pytest.mark.parametrize("command", ["bench", "profile"])
def test_bench_and_profile_leave_the_precision_to_their_precision_flag(command: str) -> None:
    p = _parser(command)
    flags = _flags(p)
    assert {_common.option_flag(n) for n in ENGINE if n not in _common.PRECISION_OPTIONS} <= flags
    assert "--bf16" not in flags and "--no-tf32" not in flags
    args = p.parse_args(["--fp16", "--builder-optimization-level", "1"])
    assert args.fp16 is True  # their own shorthand for --precision fp16
    assert _common.provider_options(args) == {"builder_optimization_level": "1"}


def test_flags_give_provider_option_text() -> None:
    p = _parser("run")
    args = p.parse_args(["m.onnx", "--fp16", "--no-tf32", "--builder-optimization-level", "5", "--option",
                         "detailed_build_log=1"])
    opts = _common.provider_options(args)
    assert opts == {"fp16_enable": "1", "tf32_enable": "0", "builder_optimization_level": "5",
                    "detailed_build_log": "1"}
    options = parse(opts)
    assert options.fp16_enable and not options.tf32_enable and options.builder_optimization_level == 5
    assert _common.provider_options(p.parse_args(["m.onnx"])) == {}


def test_profile_options_given_one_option_flag_each_are_checked_together() -> None:
    """Each --option is checked on its own as it is read; the three profile options agree only once all are."""
    args = _parser("run").parse_args(["m.onnx", "--option", "profile_min_shapes=x:1x8", "--option",
                                      "trt_profile_opt_shapes=x:1x16", "--option", "profile_max_shapes=x:1x32"])
    profiles = parse(_common.provider_options(args)).profiles
    assert [p.describe() for p in profiles] == ["profile 0: x 1x8..1x32 (opt 1x16)"]


def test_a_bad_value_is_refused_by_the_options_parser(capsys) -> None:
    with pytest.raises(SystemExit):
        _parser("build").parse_args(["m.onnx", "--builder-optimization-level", "9"])
    assert "--builder-optimization-level '9': expected an integer from 0 to 5" in capsys.readouterr().err


def test_a_new_engine_option_gets_a_flag_without_touching_the_commands(monkeypatch) -> None:
    bool_parse = next(s for s in SPECS if s.type_name == "bool").parse
    extra = Spec("sparsity_enable", bool_parse, False, "Use 2:4 sparse kernels.", "bool")
    monkeypatch.setattr(_common, "SPECS", SPECS + (extra,))
    args = _parser("compare").parse_args(["m.onnx", "--sparsity"])
    assert args.provider_options == {"sparsity_enable": "1"}  # (provider_options() would check it with parse())

