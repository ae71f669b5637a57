"""Parsing the three profile options (ORT TensorRT EP syntax), their validation sentences, and Profile itself."""

from __future__ import annotations

import re

import pytest

from ep_trtpy.profiles import Profile, ProfileError, canonical, parse_profiles, parse_shapes

BERT = ("input_ids", "attention_mask", "token_type_ids")


def bert(seq: int, batch: int = 1) -> str:
    return ",".join(f"{name}:{batch}x{seq}" for name in BERT)


def test_one_profile_for_a_bert_export():
    (profile,) = parse_profiles(bert(8), bert(128), bert(384))
    assert profile.index == 0 and not profile.bucket
    assert profile.names == BERT
    assert profile.ranges["attention_mask"] == ((1, 8), (1, 128), (1, 384))
    assert profile.min_shapes() == dict.fromkeys(BERT, (1, 8))
    assert profile.opt_shapes() == dict.fromkeys(BERT, (1, 128))
    assert profile.max_shapes() == dict.fromkeys(BERT, (1, 384))
    assert profile.opt(["token_type_ids", "input_ids"]) == ((1, 128), (1, 128))


def test_a_repeated_name_starts_the_next_profile():
    profiles = parse_profiles("x:1x8,m:1x8,x:1x129,m:1x129", "x:1x64,m:1x64,x:1x256,m:1x256",
                              "x:1x128,m:1x128,x:4x384,m:4x384")
    assert [p.index for p in profiles] == [0, 1]
    assert profiles[0].ranges["x"] == ((1, 8), (1, 64), (1, 128))
    assert profiles[1].ranges["m"] == ((1, 129), (1, 256), (4, 384))


def test_the_kth_occurrence_belongs_to_profile_k_even_when_names_interleave_differently():
    profiles = parse_profiles("x:1,x:10,y:2,y:20", "x:1,y:2,x:10,y:20", "x:1,y:2,x:10,y:20")
    assert [p.ranges["x"][0] for p in profiles] == [(1,), (10,)]
    assert [p.ranges["y"][2] for p in profiles] == [(2,), (20,)]


def test_whitespace_around_items_and_dimensions_is_ignored():
    spaced = parse_profiles(" input_ids : 1 x 8 ,  attention_mask:1x8 ,", "input_ids:1x16, attention_mask:1x16",
                            "\tinput_ids:1x32,attention_mask:1x32\n")
    assert spaced == parse_profiles("input_ids:1x8,attention_mask:1x8", "input_ids:1x16,attention_mask:1x16",
                                    "input_ids:1x32,attention_mask:1x32")
    assert canonical(" input_ids : 1 x 8 ,  attention_mask:1x8 ") == "input_ids:1x8,attention_mask:1x8"


def test_a_name_ends_at_the_last_colon():
    assert parse_shapes("input:0:1x128,scope/mask:0:2x3") == [("input:0", (1, 128)), ("scope/mask:0", (2, 3))]


def test_no_profiles_without_the_options():
    assert parse_profiles("", "", "") == ()
    assert parse_profiles(" ", None, "") == ()  # type: ignore[arg-type]


def _error(min_text: str, opt_text: str, max_text: str) -> str:
    with pytest.raises(ProfileError) as e:
        parse_profiles(min_text, opt_text, max_text)
    message = str(e.value)
    assert "\n" not in message and not re.search(r"[.;:]\s+[A-Z]", message), message  # one sentence
    return message


@pytest.mark.parametrize("texts,option,named", [
    (("x:1x8", "", ""), "profile_opt_shapes and profile_max_shapes are missing", "'x:1x8'"),
    (("x:1x8", "x:1x8", ""), "profile_max_shapes is missing", "profile_min_shapes="),
    (("x:1xa", "x:1x8", "x:1x8"), "profile_min_shapes: input 'x'", "'a' in 'x:1xa'"),
    (("x:1x8", "x:1x8", "x:1x-1"), "profile_max_shapes: input 'x'", "'-1' in 'x:1x-1'"),
    (("x:1x8", "x:1x8", "x:1x2.5"), "profile_max_shapes: input 'x'", "'2.5'"),
    (("x:1x8", "x1x8", "x:1x8"), "profile_opt_shapes: item 'x1x8'", "no ':'"),
    (("x:1x8", "x:1x8", "x:"), "profile_max_shapes: input 'x'", "no dimensions in 'x:'"),
    ((":1x8", "x:1x8", "x:1x8"), "profile_min_shapes: item ':1x8'", "no input name"),
    (("x:1x8", " , ", "x:1x8"), "profile_opt_shapes: ','", "names no input"),
    (("x:1,x:2,y:1", "x:1,y:1", "x:1,y:1"), "profile_min_shapes: input 'y' has 1 shape", "'x' has 2 shapes"),
    (("x:1,y:1", "x:1,y:1,x:1,y:1", "x:1,y:1"), "profile_opt_shapes: input 'x' has 2 shapes", "has 1 shape"),
    (("x:1,y:1", "x:1", "x:1,y:1"), "profile_opt_shapes does not name input 'y'", "profile_min_shapes"),
    (("x:1", "x:1", "x:1,z:3"), "profile_max_shapes: input 'z'", "not in profile_min_shapes"),
    (("x:1x8", "x:1x8x2", "x:1x8"), "profile_opt_shapes: input 'x' of profile 0 is 1x8x2", "rank 3"),
    (("x:1x8", "x:1x8", "x:8"), "profile_max_shapes: input 'x' of profile 0 is 8", "1x8 has rank 2"),
    (("x:1x8", "x:1x4", "x:1x9"), "profile_opt_shapes: input 'x' of profile 0 is 1x4", "below its "
                                                                                       "profile_min_shapes 1x8"),
    ((bert(8) + "," + bert(8), bert(128) + "," + bert(512), bert(384) + "," + bert(384)),
     "profile_opt_shapes: input 'input_ids' of profile 1 is 1x512", "above its profile_max_shapes 1x384"),
])
def test_each_validation_error_is_one_sentence_naming_the_option_and_input(texts, option, named):
    message = _error(*texts)
    assert option in message and named in message, message


def test_min_above_max_is_caught_through_opt():
    message = _error("x:4x8", "x:4x8", "x:2x8")
    assert "profile_opt_shapes: input 'x' of profile 0 is 4x8, above its profile_max_shapes 2x8 in dimension 0" \
        == message


def test_zero_sized_dimensions_are_allowed():
    (profile,) = parse_profiles("x:0x4", "x:1x4", "x:8x4")
    assert profile.contains({"x": (0, 4)}) and not profile.contains({"x": (9, 4)})


def test_contains_checks_only_the_named_inputs_and_each_dimension():
    (p,) = parse_profiles("x:1x8,m:1x8", "x:1x128,m:1x128", "x:4x384,m:4x384")
    assert p.contains({"x": (1, 8), "m": (4, 384)})  # both ends are inside
    assert p.contains({"x": (2, 100), "m": (2, 100), "hidden": (7, 7, 7)})  # an unnamed input is not checked
    assert not p.contains({"x": (1, 385), "m": (1, 8)})
    assert not p.contains({"x": (1, 7), "m": (1, 8)})
    assert not p.contains({"x": (5, 8), "m": (1, 8)})
    assert not p.contains({"x": (1, 8, 1), "m": (1, 8)})  # another rank
    assert not p.contains({"x": (1, 8)})  # a named input missing


def test_describe_shows_ranges_and_opt():
    (p,) = parse_profiles("input_ids:1x1,c:3", "input_ids:1x128,c:3", "input_ids:4x384,c:3")
    assert p.describe() == "profile 0: input_ids 1x1..4x384 (opt 1x128), c 3"


def test_key_is_what_an_engine_serves_and_is_hashable():
    a = Profile(0, {"x": ((1, 8), (1, 64), (1, 128))})
    b = Profile(0, {"x": ((1, 8), (1, 100), (1, 128))})
    c = Profile(0, {"x": ((1, 8), (1, 64), (1, 256))})
    assert a.key == b.key != c.key
    assert len({a, c, Profile(0, {"x": ((1, 8), (1, 64), (1, 128))})}) == 2
    assert a.engine_key_items() == {"x": [[1, 8], [1, 64], [1, 128]]}  # a user's opt is part of the engine
    assert a.engine_key_items() != b.engine_key_items()
    bucket_a = Profile(-1, dict(a.ranges), bucket=True)
    bucket_b = Profile(-1, dict(b.ranges), bucket=True)
    assert bucket_a.engine_key_items() == bucket_b.engine_key_items() == {"x": [[1, 8], [1, 128]]}
