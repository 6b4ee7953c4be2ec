import pytest

from aurora_serve.errors import InvalidRequestError
from aurora_serve.model.prompt import expand_prompt


def fake_encode(chunk: str, special: bool) -> list[int]:
    return ([1] if special else []) + [100 + ord(c) for c in chunk]


def test_video_marker_becomes_one_span_per_frame_with_space_chunks():
    text = "USER: <video>\nHi ASSISTANT:"
    ids, img, vid = expand_prompt(text, [], [(3, 4)], fake_encode, 7)
    # Upstream string: "USER: <image> <image> <image>\nHi ASSISTANT:".
    head = fake_encode("USER: ", True)
    assert ids[: len(head)] == head
    assert len(vid) == 1 and len(vid[0]) == 3
    for start, end in vid[0]:
        assert end - start + 1 == 4 and ids[start : end + 1] == [7] * 4
    # Between frames: the encoded " "; after the last frame: the tail.
    assert ids[vid[0][0][1] + 1 : vid[0][1][0]] == fake_encode(" ", False)
    assert ids[vid[0][2][1] + 1 :] == fake_encode("\nHi ASSISTANT:", False)
    assert img == []
    assert len(ids) == len(head) + 3 * 4 + 2 * len(fake_encode(" ", False)) + len(fake_encode("\nHi ASSISTANT:", False))


def test_images_and_videos_keep_their_own_order():
    ids, img, vid = expand_prompt("<image> <video> <image>", [(1, 2), (1, 3)],
                                  [(2, 1)], fake_encode, 9)
    assert [e - s + 1 for s, e in img[0]] == [2] and [e - s + 1 for s, e in img[1]] == [3]
    assert img[0][0][0] < vid[0][0][0] < img[1][0][0]
    assert sum(1 for t in ids if t == 9) == 2 + 3 + 2


@pytest.mark.parametrize("text,n_img,n_vid", [("no markers", 0, 1), ("<video><video>", 0, 1), ("<image>", 0, 0)])
def test_marker_count_mismatch_is_a_clear_error(text, n_img, n_vid):
    with pytest.raises(InvalidRequestError, match="marker"):
        expand_prompt(text, [(1, 1)] * n_img, [(1, 1)] * n_vid, fake_encode, 0)
