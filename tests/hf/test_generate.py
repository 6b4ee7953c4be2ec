"""AuroraForConditionalGeneration.generate / forward: decode positions continue from the widened prompt (the
fork's defect, auroracap.md §10.1, shown to matter), left-padded batches equal their rows run alone, every
attention implementation agrees, training-style forward, and fp32 against fp64."""

from __future__ import annotations

import copy

import pytest
import torch

from aurora_serve.hf.spans import positions
from tests.hf.conftest import IMAGE_PROMPT, VIDEO_PROMPT, chat

MAX_NEW = 10


def greedy(model, inputs, **kwargs):
    out = model.generate(**inputs, max_new_tokens=MAX_NEW, do_sample=False, **kwargs)
    return out[:, inputs["input_ids"].shape[1]:]


def forced_decode(model, inputs, rho: float, decode_start: int, tokens: list[int]) -> torch.Tensor:
    """Prefill through ``forward`` (it widens the one-per-frame prompt), then feed ``tokens`` one by one at
    positions ``decode_start, decode_start + 1, …``; the logits of every step, (len(tokens), vocab). The
    widened length is the right ``decode_start``; the fork used the length of the prompt before widening.
    Feeding the same tokens both ways compares logits, not argmaxes, which near-ties of the random tiny
    model would flip from one CPU to another."""
    out = model(**inputs, token_kept_ratio=rho, use_cache=True)
    past, logits = out.past_key_values, [out.logits[0, -1]]
    mask = torch.ones(1, past.get_seq_length(), dtype=torch.long)
    for step, token in enumerate(tokens[:-1]):
        mask = torch.cat([mask, torch.ones(1, 1, dtype=torch.long)], dim=1)
        out = model(input_ids=torch.tensor([[token]]), attention_mask=mask, past_key_values=past,
                    position_ids=torch.tensor([[decode_start + step]]), use_cache=True)
        past = out.past_key_values
        logits.append(out.logits[0, -1])
    return torch.stack(logits).detach()


def record_positions(model):
    seen = []
    hook = model.language_model.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw["position_ids"].clone()), with_kwargs=True)
    return seen, hook


def test_decode_positions_continue_from_the_widened_prompt(hf_xtuner, video8, image1):
    processor, model = hf_xtuner
    text = [chat(processor, ["video"], VIDEO_PROMPT), chat(processor, ["image"], IMAGE_PROMPT)]
    inputs = processor(images=image1, videos=video8, text=text, return_tensors="pt")
    # each placeholder (one per frame) becomes tokens_per_frame(0.2) = 171 tokens
    wide_lengths = [int(n) + f * 170 for n, f in zip(inputs["attention_mask"].sum(1), (8, 1))]
    seen, hook = record_positions(model)
    try:
        greedy(model, inputs, token_kept_ratio=0.2, min_new_tokens=MAX_NEW)
    finally:
        hook.remove()
    width = max(wide_lengths)
    prefill = seen[0]
    for row, length in enumerate(wide_lengths):
        assert prefill[row, width - length:].tolist() == list(range(length))
    for step, pos in enumerate(seen[1:]):
        assert pos[:, -1].tolist() == [length + step for length in wide_lengths]


def test_fork_decode_positions_change_the_output_and_generate_does_not_use_them(hf_xtuner, video8):
    """The fork decoded at positions counted from the prompt before widening (8 placeholders, not 8 spans).
    Fed generate's own tokens, the fork's positions change every decode step's logits; generate's logits are
    those of the widened positions."""
    processor, model = hf_xtuner
    inputs = processor(videos=video8, text=chat(processor, ["video"], VIDEO_PROMPT), return_tensors="pt")
    unexpanded, widened = inputs["input_ids"].shape[1], inputs["input_ids"].shape[1] + 8 * (109 - 1)
    out = model.generate(**inputs, token_kept_ratio=0.1, max_new_tokens=MAX_NEW, min_new_tokens=MAX_NEW,
                         do_sample=False, return_dict_in_generate=True, output_logits=True)
    tokens = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    generated = torch.stack([step[0] for step in out.logits])
    right = forced_decode(model, inputs, 0.1, widened, tokens)
    fork = forced_decode(model, inputs, 0.1, unexpanded, tokens)
    assert torch.equal(fork[0], right[0])  # the prefill is the same: only the decode positions differ
    assert (fork[1:] - right[1:]).abs().amax(dim=1).min() > 1e-3, "every decode step should see the positions"
    torch.testing.assert_close(generated, right, rtol=0, atol=1e-4)


def test_a_batch_of_mixed_prompts_equals_each_run_alone(hf_xtuner, video8, image1):
    processor, model = hf_xtuner
    rows = [(["video"], VIDEO_PROMPT, [], [video8]),
            (["image"], IMAGE_PROMPT + " in a few words", [image1[0]], []),
            (["video"], "what moves?", [], [video8[2:5]])]
    ratios = [0.2, 1.0, 0.5]
    alone = []
    for (kinds, prompt, images, videos), rho in zip(rows, ratios):
        inputs = processor(images=images or None, videos=videos or None, text=chat(processor, kinds, prompt))
        alone.append(greedy(model, inputs, token_kept_ratio=rho)[0].tolist())
    batch = processor(images=[image1[0]], videos=[video8, video8[2:5]],
                      text=[chat(processor, kinds, prompt) for kinds, prompt, _, _ in rows])
    assert batch["attention_mask"].min() == 0  # the rows have different lengths
    together = greedy(model, batch, token_kept_ratio=ratios)
    for row, tokens in zip(together.tolist(), alone):
        assert row[:len(tokens)] == tokens
        assert all(t == model.generation_config.pad_token_id for t in row[len(tokens):])


CUDA_ONLY = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (flex attention's CPU "
                               "compilation of a padded batch fails in torch 2.13's inductor; flash needs a GPU)")


@pytest.mark.parametrize("implementation", [
    "eager",
    pytest.param("flex_attention", marks=[pytest.mark.gpu, CUDA_ONLY]),
    pytest.param("flash_attention_2", marks=[pytest.mark.gpu, CUDA_ONLY]),
])
def test_attention_implementations_agree(hf_xtuner, image1, implementation):
    """Against sdpa (the default), on a left-padded batch; eager crashed in the fork (expanded vs unexpanded
    lengths). On a GPU the comparison runs in fp16 there."""
    processor, model = hf_xtuner
    if implementation == "flash_attention_2":
        from transformers.utils import is_flash_attn_2_available

        if not is_flash_attn_2_available():
            pytest.skip("flash-attn is not installed")
    if torch.cuda.is_available():
        model = copy.deepcopy(model).to("cuda", torch.float16)
    inputs = processor(images=[image1[0], image1[0, ::-1].copy()],
                       text=[chat(processor, ["image"], IMAGE_PROMPT), chat(processor, ["image"], "what is it?")])
    other = copy.deepcopy(model)
    other.set_attn_implementation(implementation)
    assert other.language_model.config._attn_implementation == implementation
    inputs = inputs.to(model.device, model.dtype)
    assert torch.equal(greedy(other, inputs, token_kept_ratio=0.1), greedy(model, inputs, token_kept_ratio=0.1))


def test_forward_with_labels_widens_them_and_matches_widened_ids(hf_xtuner, image1):
    """Training: labels written for the one-placeholder prompt are widened with it (spans ignored)."""
    processor, model = hf_xtuner
    inputs = processor(images=image1, text=chat(processor, ["image"], IMAGE_PROMPT))
    narrow = model(**inputs, labels=inputs["input_ids"], token_kept_ratio=0.5)
    wide_ids, wide_mask, wide_labels = model.expand_inputs(inputs["input_ids"], inputs["attention_mask"], 1, 0.5,
                                                           labels=inputs["input_ids"])
    assert wide_ids.shape[1] == inputs["input_ids"].shape[1] - 1 + 388
    assert (wide_labels == -100).sum() == 388
    wide = model(input_ids=wide_ids, attention_mask=wide_mask, pixel_values=inputs["pixel_values"],
                 labels=wide_labels, token_kept_ratio=0.5)
    assert torch.isfinite(narrow.loss) and torch.equal(narrow.loss, wide.loss)
    assert narrow.logits.shape[1] == wide_ids.shape[1]


def test_prefill_logits_fp32_against_fp64(hf_xtuner, video8):
    """The splice and the casts add no error of their own: fp32 logits within 1e-4 (relative, max-norm) of an
    fp64 copy of the same model on the same inputs."""
    processor, model = hf_xtuner
    inputs = processor(videos=video8[:2], text=chat(processor, ["video"], VIDEO_PROMPT))
    with torch.no_grad():
        got = model(**inputs, token_kept_ratio=0.2, logits_to_keep=4).logits
        ref = copy.deepcopy(model).double()(**inputs, token_kept_ratio=0.2, logits_to_keep=4).logits
    assert ((got.double() - ref).abs().max() / ref.abs().max()).item() < 1e-4


def test_positions_from_the_mask_for_direct_calls(hf_xtuner, image1):
    """forward without position_ids on a left-padded batch counts positions per row (as generate does)."""
    processor, model = hf_xtuner
    inputs = processor(images=[image1[0], image1[0]], text=[chat(processor, ["image"], IMAGE_PROMPT),
                                                            chat(processor, ["image"], "describe it")])
    wide, mask, _ = model.expand_inputs(inputs["input_ids"], inputs["attention_mask"], 2, 0.2)
    seen, hook = record_positions(model)
    try:
        model(**inputs, token_kept_ratio=0.2, logits_to_keep=1)
    finally:
        hook.remove()
    assert torch.equal(seen[0], positions(mask, wide.shape[1]))
