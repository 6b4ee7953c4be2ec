"""AuroraCap README's transformers example, call for call (README.md "transformers" shows the same code).

Adapted only in the model id (the tiny checkpoint), the media source (generated here) and the device (the
README's ``"cuda:0"`` where there is one, the CPU otherwise). Everything else is as written: fp16,
``low_cpu_mem_usage``, ``{"type": "image"}`` also for the video, ``max_new_tokens=1024``, ρ passed to generate.
One exception on CPU: the video runs 32 new tokens, not 1024 (fp16 decoding over its 1.4k-token prompt costs
~2.5 min of the shared test machine's CPU; the image runs the full 1024).
"""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from aurora_serve.hf import AuroraForConditionalGeneration, AuroraProcessor
from aurora_serve.media.decode import load_frames
from tests.support.clips import make_image, make_video

DEVICE = "cuda:0" if torch.cuda.is_available() else "cpu"
MAX_NEW = {"image": 1024, "video": 1024 if torch.cuda.is_available() else 32}


@pytest.mark.parametrize("media", ["image", "video"])
def test_readme_call_sequence(tiny_xtuner, media):
    model_id = str(tiny_xtuner)  # README: "wchai/AuroraCap-7B-IMG" / "wchai/AuroraCap-7B-VID" (or -xtuner)
    processor = AuroraProcessor.from_pretrained(model_id)
    model = AuroraForConditionalGeneration.from_pretrained(model_id, torch_dtype=torch.float16, low_cpu_mem_usage=True)
    model.to(DEVICE)

    text = "Describe the image in detail." if media == "image" else "Describe the video in detail."
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    if media == "image":
        image = Image.open(io.BytesIO(make_image(None, seed=2)))  # README: an image file
        inputs = processor(images=image, text=prompt, return_tensors="pt")
    else:
        frames = load_frames(make_video(None, frames=40, seed=6), "video", 8)  # README: 8 frames of a clip
        inputs = processor(videos=list(frames), text=prompt, return_tensors="pt")
    inputs.to(DEVICE, torch.float16)
    output = model.generate(**inputs, max_new_tokens=MAX_NEW[media], token_kept_ratio=0.2)
    caption = processor.decode(output[0], skip_special_tokens=True)

    prompt_ids = inputs["input_ids"][0]
    assert inputs["pixel_values"].dtype == torch.float16 and inputs["input_ids"].dtype == torch.long
    assert torch.equal(output[0, :len(prompt_ids)], prompt_ids)  # the prompt as given, then the new tokens
    new = output[0, len(prompt_ids):]
    assert 0 < len(new) <= MAX_NEW[media]
    assert len(new) == MAX_NEW[media] or new[-1] == model.generation_config.eos_token_id
    assert caption.startswith("USER:") and f"{text} ASSISTANT:" in caption
    assert caption.endswith(processor.decode(new, skip_special_tokens=True)) and len(caption) > len(prompt)
