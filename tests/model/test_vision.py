"""The vision tower against Hugging Face CLIP (no merging), and its token counts against the formula."""

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from aurora_serve.model.spec import VisionConfig
from aurora_serve.model.token_count import merge_r, tokens_per_frame
from aurora_serve.model.vision import AuroraVisionTower

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=32, num_attention_heads=4,
            image_size=378, patch_size=14, layer_norm_eps=1e-5, hidden_act="quick_gelu")


def _pair(seed=0):
    torch.manual_seed(seed)
    # SDPA, not eager: HF eager attention runs its softmax in float32, which would cap agreement at ~1e-6.
    hf = CLIPVisionModel(CLIPVisionConfig(**TINY, attn_implementation="sdpa")).double().eval()
    for p in hf.parameters():  # unit-scale weights: a mistake shows up far above rounding
        torch.nn.init.normal_(p, std=0.3)
    ours = AuroraVisionTower(VisionConfig.from_dict(TINY)).double().eval()
    state = {k.removeprefix("vision_model."): v for k, v in hf.state_dict().items()}
    ours.load_state_dict({k: v for k, v in state.items() if k in ours.state_dict()}, strict=True)
    return hf, ours


def test_matches_hf_clip_hidden_states_minus_2_without_merging():
    hf, ours = _pair()
    pixels = torch.randn(2, 3, 378, 378, dtype=torch.float64)
    with torch.no_grad():
        ref = hf(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
        got = ours(pixels, r=0, merge_backend="reference")
    assert got.shape == (2, 729, 32)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)  # float64: only summation order differs


@pytest.mark.parametrize("rho", [0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0])
def test_output_length_equals_tokens_per_frame(rho):
    cfg = VisionConfig.from_dict({**TINY, "hidden_size": 16, "intermediate_size": 16})
    tower = AuroraVisionTower(cfg).eval()
    with torch.no_grad():
        out = tower(torch.randn(3, 3, 378, 378), merge_r(rho), merge_backend="reference")
    assert out.shape[:2] == (3, tokens_per_frame(rho))
    assert cfg.tokens_per_frame(rho) == tokens_per_frame(rho)


def test_frames_merge_independently():
    cfg = VisionConfig.from_dict({**TINY, "hidden_size": 16, "intermediate_size": 16})
    tower = AuroraVisionTower(cfg).double().eval()
    pixels = torch.randn(3, 3, 378, 378, dtype=torch.float64)
    with torch.no_grad():
        together = tower(pixels, merge_r(0.2), merge_backend="reference")
        alone = torch.cat([tower(pixels[i : i + 1], merge_r(0.2), merge_backend="reference") for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-10, atol=1e-10)


def test_normalising_crops_on_the_model_side_is_bit_identical_to_the_cpu_path():
    """The processor hands over uint8 crops; the model normalises them. Same float32 values as
    ``clip_preprocess`` bit for bit, and within float32 rounding of a float64 computation."""
    import numpy as np

    from aurora_serve.media.preprocess import CLIP_MEAN, CLIP_STD, normalise
    from aurora_serve.model.vision import lookup_levels, normalise_crops

    crops = np.random.default_rng(0).integers(0, 256, (3, 14, 14, 3), dtype=np.uint8)
    got = lookup_levels(torch.from_numpy(crops))  # the device path (run on CPU here)
    assert got.dtype == torch.float32 and got.shape == (3, 3, 14, 14)
    assert torch.equal(got, normalise(crops))
    assert torch.equal(normalise_crops(torch.from_numpy(crops)), got)
    exact = (torch.from_numpy(crops).double().permute(0, 3, 1, 2) / 255 - torch.tensor(CLIP_MEAN, dtype=torch.float64)
             [None, :, None, None]) / torch.tensor(CLIP_STD, dtype=torch.float64)[None, :, None, None]
    assert (got.double() - exact).abs().max() < 1e-6  # float32 rounding of values within ±2.2
