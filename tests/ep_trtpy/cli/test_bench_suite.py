"""ep-trtpy bench: arguments, the suite's plan, precision options, surviving failing runners, --from-json."""

from __future__ import annotations

import json

import pytest

from ep_trtpy.cli import bench, build_parser, main


def _args(*argv: str):  # noqa: ANN202
    return build_parser().parse_args(["bench", *argv])


def test_suite_issue6_plans_the_whole_grid() -> None:
    spaces, batches, precisions, providers = bench.plan(_args("--suite", "issue6"))
    assert [(ns.source, ns.arch) for ns in spaces] == [("torchvision:resnet50", None),
                                                       ("torchvision:mobilenet_v2", None), ("hf:bert-base", None),
                                                       (None, "yolo")]
    assert batches == [1, 32] and precisions == ["fp32", "fp16", "bf16"]
    assert providers == ["trtpy", "cuda", "torch"]


def test_suite_flags_narrow_it() -> None:
    spaces, batches, precisions, providers = bench.plan(
        _args("--suite", "issue6", "--models", "bert,yolo", "--batch", "32", "--precision", "fp16",
              "--providers", "trtpy,torch"))
    assert [ns.source or ns.arch for ns in spaces] == ["hf:bert-base", "yolo"]
    assert (batches, precisions, providers) == ([32], ["fp16"], ["trtpy", "torch"])


def test_defaults_without_a_suite() -> None:
    args = _args("--arch", "resnet50")
    spaces, batches, precisions, providers = bench.plan(args)
    assert spaces == [args] and batches == [1] and precisions == ["fp32"] and providers == ["trtpy", "cpu"]
    assert args.iters == 50 and args.torch_compile_mode == "reduce-overhead"
    assert bench.plan(_args("--arch", "bert", "--fp16"))[2] == ["fp16"]
    src = _args("--model", "hf:bert-base", "--export-dir", "/tmp/x", "--attn-implementation", "eager")
    assert (src.source, src.export_dir, src.attn_implementation, src.model) == ("hf:bert-base", "/tmp/x", "eager",
                                                                                 None)


@pytest.mark.parametrize("argv, message", [
    (("--suite", "issue6", "--models", "vgg"), "matches none of the suite's models"),
    (("--suite", "issue6", "--arch", "bert"), "--suite runs its own models"),
    (("--arch", "bert", "--models", "bert"), "--models narrows a --suite"),
    (("--arch", "bert", "--precision", "int4"), "--precision accepts fp32, fp32-strict, fp16, bf16"),
    (("--arch", "bert", "--providers", "tensorrt"), "--providers accepts"),
])
def test_bad_plans_say_why(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        bench.plan(_args(*argv))


def test_unknown_suite_is_refused_by_the_parser(capsys) -> None:
    with pytest.raises(SystemExit):
        _args("--suite", "issue7")
    assert "invalid choice" in capsys.readouterr().err


def test_precision_options(monkeypatch) -> None:
    monkeypatch.setattr(bench, "_known_option", lambda name: False)
    assert bench.precision_options("fp16") == ({"fp16_enable": "1"}, "")
    opts, note = bench.precision_options("fp32")
    assert opts == {"fp16_enable": "0"} and "no tf32_enable option" in note
    with pytest.raises(LookupError, match="bf16_enable"):
        bench.precision_options("bf16")
    monkeypatch.setattr(bench, "_known_option", lambda name: True)
    assert bench.precision_options("fp32")[0] == {"fp16_enable": "0", "tf32_enable": "1"}
    assert bench.precision_options("fp32-strict")[0] == {"fp16_enable": "0", "tf32_enable": "0"}
    assert bench.precision_options("bf16")[0] == {"fp16_enable": "0", "bf16_enable": "1"}


def test_known_option_reads_this_build() -> None:
    assert bench._known_option("fp16_enable") and bench._known_option("trt_fp16_enable")
    assert not bench._known_option("no_such_option_at_all")


def test_a_failing_runner_is_an_error_row_and_the_table_still_prints(capsys, tmp_path) -> None:
    """The torch worker cannot even start (no such interpreter): its rows are errors, the others are measured."""
    out = tmp_path / "b.json"
    rc = main(["bench", "--arch", "mobilenetv2", "--ci", "--providers", "cpu,torch", "--batch", "1,2", "--iters",
               "2", "--warmup", "0", "--torch-python", str(tmp_path / "no-python"), "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 1
    doc = json.loads(out.read_text())
    torch_rows = [r for r in doc["rows"] if r["runner"].startswith("torch")]
    assert len(torch_rows) == 4 and all(r["status"] == "error" and "cannot start" in r["note"] for r in torch_rows)
    assert all(r["status"] == "ok" for r in doc["rows"] if r["runner"] == "cpu")
    comparison = text[text.index("speed-up = best peer"):]
    assert comparison.count(" ERR ") == 4  # both cells, both torch rows


def test_a_model_that_cannot_load_is_one_error_row(capsys, tmp_path, monkeypatch) -> None:
    """A suite goes on past a model it cannot export (here: torch 'missing')."""
    from ep_trtpy.cli import _real_models

    monkeypatch.setattr(_real_models, "missing", lambda src: f"torch is not installed (needed by {src.name})")
    monkeypatch.setitem(bench.SUITES, "tiny", bench.Suite(("hf:bert-base", "arch:mobilenetv2"), (1,), ("fp32",),
                                                          ("cpu",)))
    out = tmp_path / "b.json"
    rc = main(["bench", "--suite", "tiny", "--ci", "--iters", "1", "--warmup", "0", "--json", str(out)])
    doc = json.loads(out.read_text())
    assert rc == 1
    load = [r for r in doc["rows"] if r["runner"] == "load"]
    assert len(load) == 1 and "torch is not installed (needed by hf:bert-base)" in load[0]["note"]
    assert [r["status"] for r in doc["rows"] if r["runner"] == "cpu"] == ["ok"]
    assert doc["models"][0]["source"] == "mobilenetv2"
    capsys.readouterr()


def test_from_json_joins_runs(capsys, tmp_path) -> None:
    files = []
    for arch in ("mobilenetv2", "resnet50"):
        files.append(str(tmp_path / f"{arch}.json"))
        assert main(["bench", "--arch", arch, "--ci", "--providers", "cpu", "--iters", "1", "--warmup", "0",
                     "--json", files[-1]]) == 0
    capsys.readouterr()
    joined = tmp_path / "all.json"
    assert main(["bench", "--from-json", *files, "--json", str(joined)]) == 0
    text = capsys.readouterr().out
    assert "mobilenetv2 (ci size)" in text and "resnet50 (ci size)" in text
    doc = json.loads(joined.read_text())
    assert len(doc["rows"]) == 2 and len(doc["cells"]) == 2 and len(doc["models"]) == 2
