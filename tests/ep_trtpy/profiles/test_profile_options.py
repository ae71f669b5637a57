"""The profile options in ep_trtpy.options: aliases, validation at parse time, Options.profiles, the engine key,
and the README's example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ep_trtpy.options import SPECS, OptionError, Options, markdown_table, parse
from ep_trtpy.profiles import parse_profiles

ROOT = Path(__file__).resolve().parents[3]
MIN, OPT, MAX = "input_ids:1x8,attention_mask:1x8", "input_ids:1x128,attention_mask:1x128", \
    "input_ids:1x384,attention_mask:1x384"


def test_defaults_and_declarations():
    specs = {s.name: s for s in SPECS}
    for which in ("min", "opt", "max"):
        spec = specs[f"profile_{which}_shapes"]
        assert spec.default == "" and spec.aliases == (f"trt_profile_{which}_shapes",) and not spec.affects_engine
    assert specs["profile_strict"].default is False and specs["profile_strict"].aliases == ()
    assert Options().profiles == () and parse({}).profile_strict is False
    assert parse({"profile_strict": "1"}).profile_strict is True


@pytest.mark.parametrize("prefix", ["", "trt_"])
def test_the_options_and_their_trt_aliases_give_the_parsed_profiles(prefix):
    options = parse({f"{prefix}profile_min_shapes": MIN, f"{prefix}profile_opt_shapes": OPT,
                     f"{prefix}profile_max_shapes": MAX})
    assert options.profiles == parse_profiles(MIN, OPT, MAX)
    assert options.profiles[0].ranges["attention_mask"] == ((1, 8), (1, 128), (1, 384))
    assert options.profiles is options.profiles  # parsed once


def test_aliases_and_names_mix_and_a_name_twice_is_an_error():
    mixed = parse({"profile_min_shapes": MIN, "trt_profile_opt_shapes": OPT, "trt_profile_max_shapes": MAX})
    assert len(mixed.profiles) == 1
    with pytest.raises(OptionError, match="given twice"):
        parse({"profile_min_shapes": MIN, "trt_profile_min_shapes": MIN})


def test_the_text_is_kept_without_spaces_and_round_trips():
    options = parse({"profile_min_shapes": " input_ids : 1x8 , attention_mask:1 x 8", "profile_opt_shapes": OPT,
                     "profile_max_shapes": MAX, "profile_strict": "1"})
    assert options.profile_min_shapes == MIN
    saved = options.to_dict()
    again = parse({k: str(int(v) if isinstance(v, bool) else v) for k, v in saved.items()
                   if k.startswith("profile_")})
    assert again.profiles == options.profiles and again.profile_strict


@pytest.mark.parametrize("raw,named", [
    ({"profile_min_shapes": MIN}, ("profile_opt_shapes and profile_max_shapes are missing",)),
    ({"trt_profile_max_shapes": MAX, "profile_opt_shapes": OPT}, ("profile_min_shapes is missing",)),
    ({"profile_min_shapes": MIN, "profile_opt_shapes": "input_ids:1x128,attention_mask:1x4",
      "profile_max_shapes": MAX}, ("profile_opt_shapes", "'attention_mask'", "1x4", "below")),
    ({"profile_min_shapes": MIN, "profile_opt_shapes": OPT, "profile_max_shapes": "input_ids:1x384"},
     ("profile_max_shapes", "'attention_mask'")),
    ({"trt_profile_min_shapes": "input_ids:1xN"}, ("'trt_profile_min_shapes'", "'input_ids'", "'N'")),
])
def test_bad_profiles_are_an_option_error_at_parse_time(raw, named):
    with pytest.raises(OptionError) as e:
        parse(raw)
    assert all(n in str(e.value) for n in named), str(e.value)


def test_profiles_do_not_change_the_engine_key():
    base = parse({}).engine_key_items()
    with_profiles = parse({"profile_min_shapes": MIN, "profile_opt_shapes": OPT, "profile_max_shapes": MAX,
                           "profile_strict": "1"})
    assert with_profiles.engine_key_items() == base
    assert not any(name.startswith("profile_") for name in base)


def test_the_readme_documents_the_options_and_its_example_parses():
    readme = (ROOT / "README.md").read_text()
    table = markdown_table()
    for name in ("profile_min_shapes", "profile_opt_shapes", "profile_max_shapes", "profile_strict"):
        assert f"| `{name}` |" in table
    section = readme.split("### Optimization profiles", 1)[1].split("\n## ", 1)[0]
    texts = dict(re.findall(r'"trt_profile_(min|opt|max)_shapes":\s*"([^"]+)"', section))
    assert set(texts) == {"min", "opt", "max"}, "the README's profile example is missing"
    (profile,) = parse_profiles(texts["min"], texts["opt"], texts["max"])
    assert profile.max_shapes()["input_ids"] == (1, 384)
    assert "profile_strict" in section and "power of two" in section
