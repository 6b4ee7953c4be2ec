"""AuroraProcessor: upstream tokenization (held against an independent re-statement of the rule), AuroraCap's
preprocessing and frame sampling, batching, media order, and loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aurora_serve.hf import AuroraProcessor
from aurora_serve.media.decode import load_frames
from aurora_serve.media.preprocess import clip_preprocess
from aurora_serve.media.sampling import sample_indices
from tests.hf.conftest import IMAGE_PROMPT, VIDEO_PROMPT, chat
from tests.support.clips import make_video


def upstream_ids(tokenizer, frames: int, prompt: str, placeholder: int) -> list[int]:
    """rese1f/aurora inference.py: ``USER: <image> … <image>\\n{prompt} ASSISTANT:`` (one per frame, joined by a
    space), split on ``<image>``, first chunk with BOS, the others without, a placeholder between chunks."""
    text = "USER: " + " ".join(["<image>"] * frames) + "\n" + prompt + " ASSISTANT:"
    ids: list[int] = []
    chunks = text.split("<image>")
    for i, chunk in enumerate(chunks):
        ids += tokenizer.encode(chunk, add_special_tokens=(i == 0)) if (chunk or i == 0) else []
        if i < len(chunks) - 1:
            ids.append(placeholder)
    return ids


@pytest.fixture(scope="module")
def processor(hf_xtuner):
    return hf_xtuner[0]


def test_readme_video_prompt_is_upstream_tokenization(processor, video8):
    """The README writes {"type": "image"} for a video too: its <image> marker stands for the video's frames."""
    inputs = processor(videos=list(video8), text=chat(processor, ["image"], VIDEO_PROMPT), return_tensors="pt")
    expected = upstream_ids(processor.tokenizer, 8, VIDEO_PROMPT, processor.image_token_id)
    assert inputs["input_ids"].tolist() == [expected]
    assert inputs["attention_mask"].tolist() == [[1] * len(expected)]
    assert torch.equal(inputs["pixel_values"], clip_preprocess(video8))
    assert inputs["frames_per_media"].tolist() == [8]


def test_image_prompt_is_upstream_tokenization(processor, image1):
    pil = Image.fromarray(image1[0])
    inputs = processor(images=pil, text=chat(processor, ["image"], IMAGE_PROMPT))
    assert inputs["input_ids"].tolist() == [upstream_ids(processor.tokenizer, 1, IMAGE_PROMPT, processor.image_token_id)]
    assert torch.equal(inputs["pixel_values"], clip_preprocess(image1))
    assert inputs["frames_per_media"].tolist() == [1]


def test_long_videos_are_sampled_as_auroracap_does(processor):
    clip = load_frames(make_video(None, frames=30, seed=3), "video", 30)
    assert len(clip) == 30
    inputs = processor(videos=clip, text=chat(processor, ["video"], VIDEO_PROMPT), num_frames=5)
    assert torch.equal(inputs["pixel_values"], clip_preprocess(clip[sample_indices(30, 5)]))
    assert (inputs["input_ids"] == processor.image_token_id).sum() == 5


def test_batch_is_left_padded_and_media_follow_placeholder_order(processor, video8, image1):
    """Row 0: a video then an image in one prompt; row 1: an image. pixel_values follow the placeholders
    (row-major), whatever order the images and videos lists are in."""
    other = image1[:, ::-1].copy()
    texts = ["USER: <video> <image>\ndescribe both. ASSISTANT:", chat(processor, ["image"], IMAGE_PROMPT)]
    inputs = processor(images=[image1[0], other[0]], videos=[video8[:3]], text=texts)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    assert (mask[1] == 0).sum() > 0 and mask[1, -1] == 1 and mask[1, 0] == 0  # left padding
    assert ((ids == processor.image_token_id) & mask.bool()).sum(dim=1).tolist() == [4, 1]
    expected = torch.cat([clip_preprocess(video8[:3]), clip_preprocess(image1), clip_preprocess(other)])
    assert torch.equal(inputs["pixel_values"], expected)
    assert inputs["frames_per_media"].tolist() == [3, 1, 1]
    right = processor(images=[image1[0], other[0]], videos=[video8[:3]], text=texts, padding_side="right")
    assert right["attention_mask"][1, 0] == 1 and right["attention_mask"][1, -1] == 0


def test_frames_as_pil_images_array_or_tensor_agree(processor, video8):
    text = chat(processor, ["video"], VIDEO_PROMPT)
    as_array = processor(videos=video8, text=text)["pixel_values"]
    as_pil = processor(videos=[Image.fromarray(f) for f in video8], text=text)["pixel_values"]
    as_tensor = processor(videos=torch.from_numpy(video8), text=text)["pixel_values"]
    assert torch.equal(as_array, as_pil) and torch.equal(as_array, as_tensor)


def test_marker_count_mismatch_and_bad_frames_are_errors(processor, image1):
    with pytest.raises(ValueError, match=r"1 <image> marker\(s\) but 2 image\(s\)"):
        processor(images=[image1[0], image1[0]], text=chat(processor, ["image"], IMAGE_PROMPT))
    with pytest.raises(ValueError, match="uint8"):
        processor(images=image1[0].astype(np.float32), text=chat(processor, ["image"], IMAGE_PROMPT))
    with pytest.raises(ValueError, match="share one size"):
        processor(videos=[image1[0], image1[0, :-2]], text=chat(processor, ["video"], VIDEO_PROMPT))
    with pytest.raises(ValueError, match="tokenizes to the placeholder id"):  # the tiny vocabulary has no "Q"
        processor(images=image1[0], text=chat(processor, ["image"], "Q?"))
    with pytest.raises(TypeError, match="truncation"):
        processor(images=image1[0], text=chat(processor, ["image"], IMAGE_PROMPT), truncation=True)


def test_both_layouts_and_a_saved_processor_agree(processor, tiny_hf, tmp_path, image1):
    """The HF layout's placeholder is its <image> token, the xtuner layout's the tokenizer's unk; the text
    tokens around it are the same."""
    hf = AuroraProcessor.from_pretrained(tiny_hf)
    text = chat(processor, ["image"], IMAGE_PROMPT)
    a, b = processor(images=image1[0], text=text), hf(images=image1[0], text=text)
    assert hf.image_token_id != processor.image_token_id
    assert (a["input_ids"] == processor.image_token_id).tolist() == (b["input_ids"] == hf.image_token_id).tolist()
    assert torch.equal(a["pixel_values"], b["pixel_values"])
    hf.save_pretrained(tmp_path)
    again = AuroraProcessor.from_pretrained(tmp_path)
    assert (again.image_token_id, again.image_size, again.num_frames) == (hf.image_token_id, 378, 8)
    assert torch.equal(again(images=image1[0], text=text)["input_ids"], b["input_ids"])
