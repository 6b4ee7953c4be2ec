"""Loading through the transformers API: both layouts, the authors' fork config through the Auto classes,
save_pretrained round trips, dtype and buffers, and loud errors."""

from __future__ import annotations


import pytest
import torch
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

from aurora_serve.errors import ModelLoadError
from aurora_serve.hf import AuroraConfig, AuroraForConditionalGeneration, AuroraProcessor
from tests.hf.conftest import IMAGE_PROMPT, chat
from tests.support.checkpoints import hf_fork_copy, projector_keys_swapped


def state(model) -> dict[str, torch.Tensor]:
    return dict(model.state_dict())


def test_both_layouts_load_the_same_weights(hf_xtuner, tiny_hf):
    hf = AuroraForConditionalGeneration.from_pretrained(tiny_hf)
    ours, theirs = state(hf_xtuner[1]), state(hf)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert hf.config.image_token_id != hf_xtuner[1].config.image_token_id  # <image> vs the tokenizer's unk


def test_the_fork_config_loads_through_the_auto_classes(hf_xtuner, tiny_hf, tmp_path, image1):
    """model_type aurora, -200 sentinel, select strategy "full": Auto classes give our classes, the sentinel
    becomes the tokenizer's <image> id, CLS is still dropped (same tokens as the xtuner checkpoint)."""
    fork = hf_fork_copy(tiny_hf, tmp_path / "fork")
    assert isinstance(AutoConfig.from_pretrained(fork), AuroraConfig)
    processor = AutoProcessor.from_pretrained(fork)
    model = AutoModelForImageTextToText.from_pretrained(fork, dtype=torch.float32)
    assert isinstance(processor, AuroraProcessor) and isinstance(model, AuroraForConditionalGeneration)
    assert model.config.image_token_id == processor.image_token_id >= 0
    text = chat(processor, ["image"], IMAGE_PROMPT)
    xt_processor, xt_model = hf_xtuner
    got = model.generate(**processor(images=image1, text=text), max_new_tokens=6, token_kept_ratio=0.2)
    want = xt_model.generate(**xt_processor(images=image1, text=text), max_new_tokens=6, token_kept_ratio=0.2)
    assert got[0, -6:].tolist() == want[0, -6:].tolist()


def test_save_pretrained_round_trip(hf_xtuner, tmp_path):
    processor, model = hf_xtuner
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert type(again) is AuroraForConditionalGeneration and again.config.model_type == "aurora"
    assert again.config.image_token_id == model.config.image_token_id
    ours, theirs = state(model), state(again)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert type(AutoProcessor.from_pretrained(tmp_path)) is AuroraProcessor


def test_fp16_load_keeps_fp32_rotary_frequencies(hf_xtuner, tiny_xtuner):
    half = AuroraForConditionalGeneration.from_pretrained(tiny_xtuner, torch_dtype=torch.float16,
                                                          low_cpu_mem_usage=True)
    assert {p.dtype for p in half.parameters()} == {torch.float16}
    rotary, ref = half.language_model.model.rotary_emb, hf_xtuner[1].language_model.model.rotary_emb
    assert rotary.inv_freq.dtype == torch.float32 and torch.equal(rotary.inv_freq, ref.inv_freq)
    assert AuroraForConditionalGeneration.from_pretrained(tiny_xtuner, dtype="auto").dtype == torch.float32


def test_missing_and_unexpected_keys_are_named(tiny_xtuner, tmp_path):
    broken = projector_keys_swapped(tiny_xtuner, tmp_path / "broken")
    with pytest.raises(ModelLoadError, match=r"projector\.linear_2\.bias.*model\.9\.weight"):
        AuroraForConditionalGeneration.from_pretrained(broken)


def test_unsupported_arguments_are_refused(tiny_xtuner):
    with pytest.raises(TypeError, match="quantization_config"):
        AuroraForConditionalGeneration.from_pretrained(tiny_xtuner, quantization_config={})
    with pytest.raises(ValueError, match="sharding"):
        AuroraForConditionalGeneration.from_pretrained(tiny_xtuner, device_map={"": 0})
