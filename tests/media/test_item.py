"""MediaItem / MediaPolicy: defaults applied once, each option checked in one place, engine callers parsed."""

from __future__ import annotations

import base64
import math

import pytest

from aurora_serve.errors import InvalidRequestError, MediaError
from aurora_serve.media.item import ITEM_OPTIONS, MediaItem, MediaPolicy, Sampling
from tests.support.clips import make_image, make_video

POLICY = MediaPolicy(default_token_kept_ratio=0.5, default_num_frames=6, max_frames=16)


def test_defaults_are_applied_and_images_have_one_frame():
    assert POLICY.item("video", b"x") == MediaItem("video", b"x", 0.5, Sampling(6))
    assert POLICY.item("video", b"x", token_kept_ratio=1, num_frames=16) == MediaItem("video", b"x", 1.0, Sampling(16))
    assert POLICY.item("image", b"x", num_frames=12, fps=2, start=3).sampling == Sampling(1)


@pytest.mark.parametrize("options, param", [
    ({"token_kept_ratio": 0}, "p.token_kept_ratio"), ({"token_kept_ratio": 1.5}, "p.token_kept_ratio"),
    ({"token_kept_ratio": math.nan}, "p.token_kept_ratio"), ({"num_frames": 0}, "p.num_frames"),
    ({"num_frames": 17}, "p.num_frames"), ({"num_frames": 2.0}, "p.num_frames"), ({"num_frames": True}, "p.num_frames"),
    ({"media_id": ""}, "p.media_id"), ({"media_scope": "a/b"}, "p.media_scope"),
    ({"fps": 0}, "p.fps"), ({"fps": math.inf}, "p.fps"), ({"fps": 1, "max_frames": 17}, "p.max_frames"),
    ({"start": -1}, "p.start"), ({"start": 5, "end": 5}, "p.end"), ({"end": "10"}, "p.end"),
])
def test_each_option_is_checked_and_the_error_names_it(options, param):
    with pytest.raises(InvalidRequestError) as info:
        POLICY.item("video", b"x", param={name: f"p.{name}" for name in ITEM_OPTIONS}, **options)
    assert info.value.param == param and info.value.status == 400


def test_engine_callers_dicts_bytes_paths_and_data_urls(tmp_path):
    clip = make_video(tmp_path / "c.mp4", frames=4)
    assert POLICY.parse("video", clip) == MediaItem("video", clip, 0.5, Sampling(6))
    assert POLICY.parse("video", str(tmp_path / "c.mp4")).data == str(tmp_path / "c.mp4")
    assert POLICY.parse("video", "file://" + str(tmp_path / "c.mp4")).data == str(tmp_path / "c.mp4")
    url = "data:video/mp4;base64," + base64.b64encode(clip).decode()
    assert POLICY.parse("video", {"url": url, "num_frames": 3}) == MediaItem("video", clip, 0.5, Sampling(3))
    item = MediaItem("video", clip, 0.2, Sampling(2))
    assert POLICY.parse("video", item) is item
    assert POLICY.parse("video", {"media_id": "clip-1"}) == MediaItem("video", None, 0.5, Sampling(6), "clip-1")


@pytest.mark.parametrize("value, error", [
    ({"data": b"x", "num_frame": 3}, InvalidRequestError),  # a typo is refused, not ignored
    ({"token_kept_ratio": 0.5}, InvalidRequestError),  # neither data nor a media id
    ("https://example.com/v.mp4", InvalidRequestError),  # remote URLs are the front end's job
    ("/no/such/file.mp4", MediaError),
    (3, InvalidRequestError),
])
def test_engine_callers_mistakes_are_refused(value, error):
    with pytest.raises(error):
        POLICY.parse("video", value)


def test_an_open_kind_is_decided_by_the_bytes():
    image = POLICY.item(None, num_frames=4).with_data(make_image(None))
    video = POLICY.item(None, num_frames=4).with_data(make_video(None, frames=3))
    assert (image.kind, image.sampling) == ("image", Sampling(1)) and (video.kind, video.sampling) == ("video", Sampling(4))
    assert video.without_data().data is None


def test_sampling_rule_precedence_and_identity():
    rate = POLICY.item("video", b"x", fps=2.0, start=1.5, end=9)
    assert rate.sampling == Sampling(fps=2.0, max_frames=16, start=1.5, end=9.0)  # the cap defaults to the server's
    assert POLICY.item("video", b"x", fps=2.0, max_frames=4).sampling.max_frames == 4
    both = POLICY.item("video", b"x", num_frames=3, fps=30.0, max_frames=2)
    assert both.sampling == Sampling(num_frames=3)  # num_frames wins; the rate and its cap are dropped
    ids = {POLICY.item("video", b"x", **o).sampling.identity() for o in
           ({}, {"num_frames": 6}, {"fps": 2.0}, {"fps": 2.0, "start": 1}, {"fps": 2.0, "end": 4}, {"start": 1})}
    assert len(ids) == 5  # {} and num_frames=6 (the default) are the same sample; every other rule differs


def test_a_cap_alone_caps_the_default_count():
    # SGLang's video_url.max_frames may come without fps: it caps the default count instead of being ignored
    assert POLICY.item("video", b"x", max_frames=4).sampling == Sampling(num_frames=4)
    assert POLICY.item("video", b"x", max_frames=10, start=2).sampling == Sampling(num_frames=6, start=2.0)
    assert POLICY.item("video", b"x", num_frames=8, max_frames=4).sampling == Sampling(num_frames=8)  # an explicit count wins


def test_each_option_can_be_named_where_it_was_given():
    places = {"fps": "media_io_kwargs.video.fps", "start": "start"}
    with pytest.raises(InvalidRequestError) as info:
        POLICY.item("video", b"x", fps=0, param=places)
    assert info.value.param == "media_io_kwargs.video.fps"
    with pytest.raises(InvalidRequestError) as info:
        POLICY.item("video", b"x", num_frames=99, param=places)
    assert info.value.param == "num_frames"  # not in the map: its own name
