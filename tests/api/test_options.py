"""Unit: where a chat request's sampling options may sit and which wins (``api.options``), on the real protocol
models and the real ``MediaPolicy`` (every value checked there, named where it was given)."""

from __future__ import annotations

import pytest

from aurora_serve.api.options import FOREIGN, Options, check_foreign, request_options, sampling_extras
from aurora_serve.api.protocol import ChatCompletionRequest
from aurora_serve.errors import InvalidRequestError
from aurora_serve.media.item import MediaPolicy, Sampling

POLICY = MediaPolicy(default_token_kept_ratio=0.5, default_num_frames=6, max_frames=16)


def request(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                                 **fields})


def sampling(req_fields: dict, part: dict | None = None) -> Sampling:
    options = Options.of(part or {}, "p").over(request_options(request(**req_fields)))
    return POLICY.item("video", b"x", **options.values, param=options.places).sampling


@pytest.mark.parametrize("fields, part, expected", [
    ({}, None, Sampling(num_frames=6)),
    ({"num_frames": 4}, None, Sampling(num_frames=4)),
    ({"media_io_kwargs": {"video": {"num_frames": 10}}}, None, Sampling(num_frames=10)),  # lmms-eval pass_video_url
    ({"media_io_kwargs": {"video": {"fps": 2.0}}}, None, Sampling(fps=2.0, max_frames=16)),
    ({"mm_processor_kwargs": {"fps": 1, "max_frames": 4}}, None, Sampling(fps=1.0, max_frames=4)),
    ({"mm_processor_kwargs": {"fps": 1, "do_sample_frames": True}}, None, Sampling(fps=1.0, max_frames=16)),
    ({"fps": 2.0, "media_io_kwargs": {"video": {"fps": 2.0}}}, None, Sampling(fps=2.0, max_frames=16)),  # agree
    ({"num_frames": 8}, {"fps": 1.0}, Sampling(fps=1.0, max_frames=16)),  # a part's rule replaces the request's
    ({"fps": 1.0, "max_frames": 4}, {"num_frames": 3}, Sampling(num_frames=3)),
    ({"fps": 1.0, "max_frames": 4, "start": 2.0}, {"max_frames": 8, "end": 9.0},
     Sampling(fps=1.0, max_frames=8, start=2.0, end=9.0)),  # the rest key by key
    ({"start": 60.0, "end": 120.0}, {"start": 30.0}, Sampling(num_frames=6, start=30.0, end=120.0)),
    ({}, {"max_frames": 2}, Sampling(num_frames=2)),  # SGLang's video_url.max_frames alone caps the default
])
def test_the_rule_a_request_and_its_part_give(fields, part, expected):
    assert sampling(fields, part) == expected


@pytest.mark.parametrize("fields, part, param", [
    ({"fps": 0.0}, None, "fps"),
    ({"media_io_kwargs": {"video": {"fps": -1}}}, None, "media_io_kwargs.video.fps"),
    ({"media_io_kwargs": {"video": {"num_frames": "8"}}}, None, "media_io_kwargs.video.num_frames"),
    ({"mm_processor_kwargs": {"max_frames": 99}, "fps": 1.0}, None, "mm_processor_kwargs.max_frames"),
    ({"start": 5.0}, {"end": 4.0}, "p.end"),
    ({"num_frames": 4}, {"num_frames": 17}, "p.num_frames"),
])
def test_bad_values_are_named_where_they_were_given(fields, part, param):
    with pytest.raises(InvalidRequestError) as info:
        sampling(fields, part)
    assert info.value.param == param and info.value.status == 400


@pytest.mark.parametrize("fields, param, words", [
    ({"num_frames": 4, "media_io_kwargs": {"video": {"num_frames": 8}}}, "media_io_kwargs.video.num_frames",
     "conflicts with num_frames"),
    ({"media_io_kwargs": {"video": {"fps": 1}}, "mm_processor_kwargs": {"fps": 2}}, "mm_processor_kwargs.fps",
     "conflicts with media_io_kwargs.video.fps"),
    ({"media_io_kwargs": {"video": {"num_frames": 8, "foo": 1}}}, "media_io_kwargs.video.foo", "num_frames, fps"),
    ({"media_io_kwargs": {"image": {"image_mode": "RGB"}}}, "media_io_kwargs.image.image_mode", "one frame"),
    ({"media_io_kwargs": {"audio": {}}}, "media_io_kwargs.audio", "images and videos"),
    ({"mm_processor_kwargs": {"min_pixels": 1}}, "mm_processor_kwargs.min_pixels", "num_frames, fps, max_frames"),
    ({"mm_processor_kwargs": {"do_sample_frames": False}}, "mm_processor_kwargs.do_sample_frames", "always samples"),
])
def test_what_cannot_be_honoured_is_refused_by_name(fields, param, words):
    with pytest.raises(InvalidRequestError) as info:
        request_options(request(**fields))
    assert info.value.param == param and words in info.value.message, info.value.message


def test_sampling_extras_become_sglang_parameters():
    assert sampling_extras(request(top_k=0, min_p=0.1, repetition_penalty=1.1, min_tokens=2), 8) == \
        {"top_k": -1, "min_p": 0.1, "repetition_penalty": 1.1, "min_new_tokens": 2}
    assert sampling_extras(request(top_k=20), 8) == {"top_k": 20}
    assert sampling_extras(request(), 8) == {}
    with pytest.raises(InvalidRequestError) as info:
        sampling_extras(request(min_tokens=9), 8)
    assert info.value.param == "min_tokens"


def test_vllm_and_sglang_fields_pass_at_their_defaults_and_are_refused_otherwise():
    req = request(use_beam_search=False, skip_special_tokens=True, length_penalty=1, priority=0)
    assert set(req.foreign) == {"use_beam_search", "skip_special_tokens", "length_penalty", "priority"}
    check_foreign(req.foreign)
    for name, value in [("use_beam_search", True), ("guided_json", {}), ("regex", "a+"), ("lora_path", "x"),
                        ("add_generation_prompt", False), ("echo", 1)]:
        with pytest.raises(InvalidRequestError) as info:
            check_foreign(request(**{name: value}).foreign)
        assert info.value.param == name and FOREIGN[name][1] in info.value.message


def test_a_field_no_schema_knows_is_still_unrecognised():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        request(use_beam_serch=False)


def test_every_wire_model_carries_the_sampling_options_the_item_has():
    """One list of names (the item's ``Sampling`` fields): a field added there and not on the wire models
    (or the other way round) would be dropped silently on one path."""
    from aurora_serve.api.protocol import CaptionRequest, ChatCompletionRequest, FrameOptions, VideoURL
    from aurora_serve.api.responses import CreateResponse, InputVideo
    from aurora_serve.media.item import SAMPLING_OPTIONS

    assert tuple(FrameOptions.model_fields) == SAMPLING_OPTIONS
    for model in (VideoURL, ChatCompletionRequest, CaptionRequest, InputVideo, CreateResponse):
        assert set(SAMPLING_OPTIONS) | {"token_kept_ratio"} <= set(model.model_fields), model.__name__
