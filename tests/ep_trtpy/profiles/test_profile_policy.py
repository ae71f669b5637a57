"""Profile selection, the power-of-two bucketing policy, checks against a subgraph's inputs, and the messages."""

from __future__ import annotations

import pytest

from ep_trtpy.profiles import (bucket, check_against_inputs, outside_warning, parse_profiles, select, strict_error,
                               unknown_names, unnamed_inputs)

BERT_INPUTS = [("input_ids", ("batch", "sequence")), ("attention_mask", ("batch", "sequence")),
               ("token_type_ids", (None, -1))]


def bert_shapes(seq: int, batch: int = 1) -> dict[str, tuple[int, int]]:
    return {name: (batch, seq) for name, _ in BERT_INPUTS}


def two_profiles():
    return parse_profiles("x:1x8,x:1x129", "x:1x64,x:1x256", "x:1x128,x:4x384")


def test_select_gives_the_first_profile_that_contains_the_shapes():
    first, second = two_profiles()
    assert select((first, second), {"x": (1, 100)}) is first
    assert select((first, second), {"x": (1, 200)}) is second
    assert select((first, second), {"x": (1, 128)}) is first  # both ends belong to a profile
    assert select((first, second), {"x": (1, 129)}) is second
    assert select((first, second), {"x": (1, 500)}) is None
    assert select((first, second), {"x": (2, 100)}) is None  # batch 2 fits only the second's batch, not its length
    overlapping = parse_profiles("x:1x1,x:1x1", "x:1x8,x:1x8", "x:1x64,x:1x64")
    assert select(overlapping, {"x": (1, 8)}) is overlapping[0]
    assert select((), {"x": (1, 8)}) is None


def _power_of_two_at_least(v: int) -> int:
    p = 1
    while p < v:
        p *= 2
    return p


def test_a_stream_of_lengths_8_to_384_falls_into_7_buckets():
    keys = {}
    for length in range(8, 385):
        profile = bucket(BERT_INPUTS, bert_shapes(length))
        assert profile.bucket and profile.contains(bert_shapes(length))
        assert profile.opt_shapes() == bert_shapes(length)  # tuned where first seen
        keys.setdefault(profile.key, []).append(length)
    assert len(keys) == 7
    for lengths in keys.values():  # each bucket is (max/2, max] of a power of two, cut to the stream's 8..384
        top = _power_of_two_at_least(lengths[-1])
        assert lengths == list(range(max(8, top // 2 + 1), min(384, top) + 1))
    spans = sorted((lo[1], hi[1]) for key in keys for name, lo, hi in key if name == "input_ids")
    assert spans == [(5, 8), (9, 16), (17, 32), (33, 64), (65, 128), (129, 256), (257, 512)]


@pytest.mark.parametrize("value,span", [(0, (0, 0)), (1, (1, 1)), (2, (2, 2)), (3, (3, 4)), (4, (3, 4)),
                                        (5, (5, 8)), (100, (65, 128)), (384, (257, 512)), (512, (257, 512)),
                                        (513, (513, 1024))])
def test_each_dynamic_dimension_gets_its_power_of_two_bucket(value, span):
    (lo, opt, hi), = bucket([("x", ("n",))], {"x": (value,)}).ranges.values()
    assert (lo[0], hi[0]) == span and opt == (value,)


def test_static_dimensions_are_fixed_and_batch_gets_its_own_bucket():
    profile = bucket([("x", ("batch", 3, "h", 224))], {"x": (6, 3, 100, 224)})
    assert profile.ranges["x"] == ((5, 3, 65, 224), (6, 3, 100, 224), (8, 3, 128, 224))
    assert profile.describe() == "bucket: x 5x3x65x224..8x3x128x224 (opt 6x3x100x224)"


def test_shapes_in_the_same_bucket_share_a_key_and_others_do_not():
    a, b = bucket(BERT_INPUTS, bert_shapes(200)), bucket(BERT_INPUTS, bert_shapes(140))
    assert a.key == b.key and a.opt_shapes() != b.opt_shapes()
    assert a.engine_key_items() == b.engine_key_items()
    assert bucket(BERT_INPUTS, bert_shapes(257)).key != a.key
    assert bucket(BERT_INPUTS, bert_shapes(200, batch=2)).key != a.key


def test_bucket_needs_a_run_shape_of_the_declared_rank_for_every_input():
    with pytest.raises(KeyError, match="no run shape for input 'token_type_ids'"):
        bucket(BERT_INPUTS, {"input_ids": (1, 8), "attention_mask": (1, 8)})
    with pytest.raises(ValueError, match="input 'x' is 1x8x1 at run time but declared with rank 2 \\(batchx8\\)"):
        bucket([("x", ("batch", 8))], {"x": (1, 8, 1)})


def test_check_against_inputs_names_rank_and_static_size_problems():
    profiles = parse_profiles("x:1x8,m:1x8,x:1x1,m:1x1", "x:1x64,m:1x64,x:1x1,m:1x1", "x:1x128,m:1x128,x:1x1,m:1x1")
    assert check_against_inputs(profiles, [("x", ("b", "s")), ("m", (1, "s")), ("hidden", ("b", 768))]) == []
    problems = check_against_inputs(profiles, [("x", (1, 256)), ("m", ("b", "s", 4))])
    assert problems == [
        "profile 0 gives dimension 1 of input 'x' the range 8..128, which excludes its static size 256 (1x256)",
        "profile 0 gives input 'm' rank 2 (1x8..1x128), but the subgraph's input 'm' has rank 3 (bxsx4)",
        "profile 1 gives dimension 1 of input 'x' the range 1..1, which excludes its static size 256 (1x256)",
        "profile 1 gives input 'm' rank 2 (1x1..1x1), but the subgraph's input 'm' has rank 3 (bxsx4)",
    ]


def test_unnamed_inputs_are_the_dynamic_ones_a_profile_leaves_out():
    profiles = parse_profiles("x:1x8,m:1x8,x:1x9,m:1x9", "x:1x8,m:1x8,x:1x9,m:1x9", "x:1x8,m:1x8,x:1x9,m:1x9")
    inputs = [("x", ("b", "s")), ("m", ("b", "s")), ("hidden", ("b", "s", 768)), ("bias", (768,))]
    assert unnamed_inputs(profiles, inputs) == ["hidden"]
    assert unnamed_inputs(parse_profiles("x:1,x:2", "x:1,x:2", "x:1,x:2"), inputs) == ["m", "hidden"]
    assert unnamed_inputs((), inputs) == []


def test_the_strict_error_names_the_shapes_and_every_profile():
    profiles = two_profiles()
    message = strict_error(profiles, {"x": (1, 500), "mask": (1, 500)})
    assert message.startswith("input shapes x:1x500,mask:1x500 are outside every optimization profile (")
    for profile in profiles:
        assert profile.describe() in message
    assert "profile_strict=0" in message and "profile_max_shapes" in message and "\n" not in message
    warning = outside_warning(profiles, {"x": (1, 500)})
    assert "x:1x500" in warning and profiles[1].describe() in warning and "building an engine" in warning


def test_names_the_model_does_not_have_are_named_with_the_nearest_input():
    profiles = parse_profiles("input_id:1x8,attention_mask:1x8,zzz:1", "input_id:1x8,attention_mask:1x8,zzz:1",
                              "input_id:1x8,attention_mask:1x8,zzz:1")
    model = ["input_ids", "attention_mask", "token_type_ids"]
    assert unknown_names(profiles, model) == [
        "profile_min_shapes names input 'input_id', which the model does not have (did you mean 'input_ids'?); "
        "its inputs are input_ids, attention_mask, token_type_ids",
        "profile_min_shapes names input 'zzz', which the model does not have; its inputs are input_ids, "
        "attention_mask, token_type_ids"]
    assert unknown_names(parse_profiles("input_ids:1x8", "input_ids:1x8", "input_ids:1x8"), model) == []
    assert unknown_names((), model) == []


def test_bucket_of_an_input_of_unknown_rank_treats_every_dimension_as_dynamic() -> None:
    from ep_trtpy.profiles import bucket

    p = bucket([("x", None)], {"x": (3, 100)})
    assert p.min_shapes()["x"] == (3, 65) and p.max_shapes()["x"] == (4, 128)
    assert p.key == bucket([("x", None)], {"x": (4, 70)}).key
