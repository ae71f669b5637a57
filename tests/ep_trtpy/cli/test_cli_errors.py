"""A user's mistake on the command line is one line and exit status 2, never a traceback, for every command.

Every case runs as ``python -m ep_trtpy ARGS`` would (``runpy``, output captured at the file-descriptor level), all
of them in one subprocess (cli_driver.py) to keep the time down; the module-scoped fixture runs it once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ep_trtpy.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SAMPLE = os.path.join(ROOT, "samples", "01_first_run", "model.onnx")
NOTICE = "no usable CUDA device"

MODEL_COMMANDS = ["run", "compare", "build", "profile", "bench"]
"""Commands that take MODEL.onnx, --shapes and --option."""

# (case, argv after the command with {dyn}/{text}/{dir}/{missing} placeholders, what the error line must say)
INPUT_CASES = {
    "non_onnx": (["{text}"], ["'{text}'", "is not an ONNX model"]),
    "missing": (["{missing}"], ["'{missing}'", "does not exist"]),
    "directory": (["{dir}"], ["'{dir}'", "is a folder, not a file"]),
    "unknown_option": (["{dyn}", "--shapes", "x:1x3x8x8", "--option", "fp16=1"],
                       ["--option", "'fp16'", "did you mean 'fp16_enable'"]),
    "unknown_flag": (["{dyn}", "--shapes", "x:1x3x8x8", "--fp61"], ["--fp61", "did you mean '--fp16'"]),
    "bad_shapes": (["{dyn}", "--shapes", "x1x3x8x8"], ["--shapes", "'x1x3x8x8'", "NAME:D0xD1x"]),
    "unknown_shapes_name": (["{dyn}", "--shapes", "y:1x3x8x8"],
                            ["'y'", "not an input of the model", "x [N, 3, H, W]"]),
    "shapes_rank": (["{dyn}", "--shapes", "x:1x3x8"], ["x:1x3x8", "3 dimensions", "4"]),
    "dynamic_spatial": (["{dyn}"], ["dynamic dimensions", "x [N, 3, H, W] (H, W)", "--shapes x:1x3xHxW"]),
}
CASES = {(cmd, case): spec for cmd in MODEL_COMMANDS for case, spec in INPUT_CASES.items()}
CASES.update({
    ("partition", "non_onnx"): INPUT_CASES["non_onnx"],
    ("partition", "missing"): INPUT_CASES["missing"],
    ("partition", "directory"): INPUT_CASES["directory"],
    ("partition", "unknown_flag"): (["{dyn}", "--verbsoe"], ["--verbsoe", "did you mean '--verbose'"]),
    ("partition", "bad_option_value"): (["{dyn}", "--min-subgraph-size", "0"],
                                        ["--min-subgraph-size", "'0'", ">= 1"]),
    ("inspect", "non_engine"): (["{text}"], ["'{text}'", "not an ep_trtpy engine"]),
    ("inspect", "missing"): (["{missing}"], ["engine file '{missing}' does not exist"]),
    ("inspect", "directory"): (["{dir}"], ["engine file '{dir}' is a folder"]),
    ("inspect", "unknown_flag"): (["{text}", "--jsn"], ["--jsn", "did you mean '--json'"]),
    ("conformance", "unknown_option"): (["--option", "nope=1"], ["'nope'", "valid options"]),
    ("conformance", "lower_case_op"): (["--ops", "conv"], ["'conv'", "did you mean 'Conv'"]),
    ("conformance", "bad_regex"): (["--cases", "("], ["'('", "not a regular expression"]),
    ("build", "cache_dir_is_a_file"): (["{dyn}", "--shapes", "x:1x3x8x8", "--cache-dir", "{text}"],
                                       ["--cache-dir '{text}' is a file, not a folder"]),
    ("run", "engine_cache_path_is_a_file"): (["{dyn}", "--shapes", "x:1x3x8x8", "--option",
                                              "engine_cache_path={text}"], ["engine_cache_path", "is a file"]),
    ("run", "feeds_missing"): (["{dyn}", "--feeds", "{missing}"], ["--feeds file '{missing}' does not exist"]),
    ("run", "save_into_missing_folder"): (["{dyn}", "--shapes", "x:1x3x8x8", "--save", "{missing}/o.npz"],
                                          ["--save", "does not exist"]),
    ("run", "unknown_arch"): (["--arch", "resnet"], ["'resnet'", "did you mean 'resnet50'"]),
    ("run", "device_id_absent"): (["{dyn}", "--shapes", "x:1x3x8x8", "--option", "device_id=77"],
                                  ["device_id 77 does not exist"]),
    ("bench", "cache_dir_is_a_file"): (["{dyn}", "--shapes", "x:1x3x8x8", "--cache-dir", "{text}"],
                                       ["--cache-dir '{text}' is a file, not a folder"]),
    ("partition", "empty_file"): (["{empty}"], ["'{empty}'", "is not an ONNX model (it has no graph)"]),
    ("run", "model_onnxruntime_rejects"): (["{unknown_op}"], ["onnxruntime rejects the model", "Frobnicate"]),
    ("bench", "from_json_not_json"): (["--from-json", "{text}"], ["--from-json {text} is not a JSON file"]),
    ("run", "profile_options_apart"): (["{dyn}", "--shapes", "x:1x3x8x8", "--option", "profile_min_shapes=x:1x3x8x8"],
                                       ["profile_opt_shapes and profile_max_shapes are missing"]),
    ("run", "profile_opt_above_max"): (["{dyn}", "--shapes", "x:1x3x8x8", "--option", "profile_min_shapes=x:1x3x8x8",
                                        "--option", "profile_opt_shapes=x:2x3x8x8", "--option",
                                        "profile_max_shapes=x:1x3x8x8"], ["profile_opt_shapes", "above"]),
    ("run", "profile_names_no_input"): (["{dyn}", "--shapes", "x:1x3x8x8", "--option", "profile_min_shapes=y:1x3x8x8",
                                         "--option", "profile_opt_shapes=y:1x3x8x8", "--option",
                                         "profile_max_shapes=y:2x3x8x8"], ["input 'y'", "does not have"]),
})
HELP_FIRST = [["--version"], ["--help"], ["run", "--help"], ["bench", "--help"]]
"""Run first in the fresh process: none of them may print the no-GPU notice."""


def _dynamic_conv(path: str) -> None:
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


@pytest.fixture(scope="module")
def driven(tmp_path_factory):
    """{(command, case) or "help:i" or "session:i": result} from one driver subprocess."""
    tmp = tmp_path_factory.mktemp("cli_errors")
    paths = {"dyn": str(tmp / "dyn.onnx"), "text": str(tmp / "notes.txt"), "dir": str(tmp / "folder"),
             "missing": str(tmp / "nothing" / "here.onnx"), "empty": str(tmp / "empty.onnx"),
             "unknown_op": str(tmp / "unknown_op.onnx")}
    _dynamic_conv(paths["dyn"])
    (tmp / "empty.onnx").write_bytes(b"")
    g = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), paths["unknown_op"])
    (tmp / "notes.txt").write_text("not a model\n")
    (tmp / "folder").mkdir()
    keys: list[object] = [f"help:{i}" for i in range(len(HELP_FIRST))] + ["bench_first"]
    argvs = [*HELP_FIRST, ["bench", SAMPLE, "--providers", "trtpy", "--iters", "1", "--warmup", "0"]]
    for (cmd, case), (argv, _) in CASES.items():
        keys.append((cmd, case))
        argvs.append([cmd, *(a.format(**paths) for a in argv)])
    for i in range(2):  # two sessions in one process: the notice (without a GPU) comes once
        keys.append(f"session:{i}")
        argvs.append(["run", SAMPLE, "--iters", "0"])
    (tmp / "cases.json").write_text(json.dumps(argvs))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "cli_driver.py"), str(tmp / "cases.json"),
                           str(tmp / "results.json")], cwd=str(tmp), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp / "results.json").read_text())
    return dict(zip(keys, results)), paths


@pytest.mark.parametrize("command,case", sorted(CASES), ids=[f"{c}-{k}" for c, k in sorted(CASES)])
def test_a_mistake_is_one_line_and_exit_status_2(driven, command, case):
    results, paths = driven
    r = results[(command, case)]
    both = r["stdout"] + r["stderr"]
    assert "Traceback" not in both, both
    assert r["code"] == 2, both
    lines = [line for line in r["stderr"].splitlines() if line.strip() and NOTICE not in line
             and not line.startswith("note: ")]
    assert len(lines) == 1, r["stderr"]
    assert lines[0].startswith(f"ep-trtpy {command}: error: "), lines[0]
    for needed in CASES[(command, case)][1]:
        assert needed.format(**paths) in lines[0], (needed, lines[0])


def test_help_and_version_print_no_notice(driven):
    results, _ = driven
    for i, argv in enumerate(HELP_FIRST):
        r = results[f"help:{i}"]
        assert r["code"] == 0 and "Traceback" not in r["stderr"], (argv, r)
        assert NOTICE not in r["stdout"] + r["stderr"], argv
    assert results["help:0"]["stdout"].startswith("ep-trtpy ")


def test_bench_registers_the_provider_itself(driven):
    """`python -m ep_trtpy` does not register the EP when the package is imported; bench (first to need it in the
    process) registers it, as conformance does."""
    results, _ = driven
    r = results["bench_first"]
    assert r["code"] == 0, r["stdout"][-2000:] + r["stderr"][-2000:]
    assert "is not registered" not in r["stderr"]


def test_the_no_gpu_notice_comes_once_per_process(driven):
    import ep_trtpy

    results, _ = driven
    assert all(results[f"session:{i}"]["code"] == 0 for i in range(2)), results["session:0"]["stderr"]
    notices = sum(r["stderr"].count(NOTICE) for r in results.values())
    assert notices == (0 if ep_trtpy.has_gpu() else 1)


def test_an_internal_error_is_one_line_unless_debug(monkeypatch, capsys):
    from ep_trtpy.cli import partition

    def broken(args):
        raise KeyError("lost")

    monkeypatch.setattr(partition, "run", broken)
    assert main(["partition", SAMPLE]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "ep-trtpy partition: error: KeyError: 'lost' (internal error; rerun with --debug for the traceback)"
    with pytest.raises(KeyError):
        main(["partition", SAMPLE, "--debug"])


def test_bench_creates_a_missing_cache_folder(tmp_path, capsys):
    folder = tmp_path / "new" / "caches"
    assert main(["bench", SAMPLE, "--providers", "cpu", "--iters", "1", "--warmup", "0", "--cache-dir",
                 str(folder)]) == 0
    assert folder.is_dir() and os.listdir(folder) == []  # its temporary folders were removed after the run
    capsys.readouterr()


def test_a_dynamic_batch_alone_defaults_to_batch_with_a_note(capsys):
    assert main(["run", SAMPLE, "--provider", "cpu", "--iters", "0", "--batch", "2"]) == 0
    captured = capsys.readouterr()
    assert "image float32[2, 3, 32, 32]" in captured.out
    assert "note: dynamic batch dimension set to 2 for image [batch, 3, 32, 32]" in captured.err


def test_feeds_must_hold_every_input(tmp_path, capsys):
    feeds = tmp_path / "f.npz"
    np.savez(feeds, other=np.zeros(3, np.float32))
    assert main(["run", SAMPLE, "--provider", "cpu", "--feeds", str(feeds)]) == 2
    assert f"--feeds file '{feeds}' lacks inputs image (it holds other)" in capsys.readouterr().err
    np.savez(feeds, image=np.zeros((2, 3, 32, 32), np.float32), other=np.zeros(3, np.float32))
    assert main(["run", SAMPLE, "--provider", "cpu", "--iters", "0", "--feeds", str(feeds)]) == 0
    captured = capsys.readouterr()
    assert "image float32[2, 3, 32, 32]" in captured.out
    assert "also holds other, which are not inputs of the model: ignored" in captured.err


def test_build_for_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    import ep_trtpy

    if ep_trtpy.has_gpu():
        pytest.skip("this machine has a GPU")
    assert main(["build", SAMPLE, "--backend", "cuda", "--cache-dir", str(tmp_path)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note: ")]
    assert err == ["ep-trtpy build: error: --backend cuda needs a usable CUDA device and this machine has none; use "
                   "--backend reference"]
