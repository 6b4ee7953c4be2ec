"""Placeholder widening for the transformers API (pure functions): spans, re-padding, labels, positions."""

from __future__ import annotations

import pytest
import torch

from aurora_serve.hf.spans import IGNORE_INDEX, narrow, positions, span_lengths, widen

P, PAD = 7, 0  # placeholder id, pad id


def test_widen_repeats_each_placeholder_by_its_frame_span_and_left_pads():
    ids = torch.tensor([[PAD, 1, P, 5, P, 9],
                        [1, P, 4, 4, 4, 9]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [1] * 6])
    wide, wide_mask, labels = widen(ids, mask, P, [3, 2, 4], PAD)
    assert labels is None
    assert wide.tolist() == [[PAD, 1, P, P, P, 5, P, P, 9],
                             [1, P, P, P, P, 4, 4, 4, 9]]
    assert wide_mask.tolist() == [[0] + [1] * 8, [1] * 9]


def test_pads_that_equal_the_placeholder_are_not_placeholders():
    """Vicuna pads with <unk>, which is the xtuner layout's placeholder: only real tokens count."""
    ids = torch.tensor([[P, P, 1, P, 9]])  # two left pads with the placeholder's id
    mask = torch.tensor([[0, 0, 1, 1, 1]])
    wide, wide_mask, _ = widen(ids, mask, P, [2], P)
    assert wide.tolist() == [[1, P, P, 9]] and wide_mask.tolist() == [[1, 1, 1, 1]]


def test_right_padded_rows_come_back_left_padded():
    ids = torch.tensor([[1, P, 9, PAD], [1, 2, P, 9]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    wide, wide_mask, _ = widen(ids, mask, P, [2, 3], PAD)
    assert wide.tolist() == [[PAD, PAD, 1, P, P, 9], [1, 2, P, P, P, 9]]
    assert wide_mask.tolist() == [[0, 0, 1, 1, 1, 1], [1] * 6]


def test_labels_of_spans_and_pads_are_ignored():
    ids = torch.tensor([[1, P, 5, 9]])
    labels = torch.tensor([[1, P, 5, 9]])
    _, _, wide_labels = widen(ids, torch.ones_like(ids), P, [3], PAD, labels)
    assert wide_labels.tolist() == [[1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 5, 9]]


def test_a_count_mismatch_is_an_error_naming_both_counts():
    with pytest.raises(ValueError, match="hold 1 frame placeholders .* but 2 frames"):
        widen(torch.tensor([[1, P, 9]]), None, P, [3, 3], PAD)


def test_span_lengths_one_ratio_or_one_per_media_item():
    count = {1.0: 729, 0.2: 171, 0.5: 388}.__getitem__
    assert span_lengths(3, 0.2, None, count) == [171] * 3
    assert span_lengths(3, [0.5, 1.0], [1, 2], count) == [388, 729, 729]
    with pytest.raises(ValueError, match="needs frames_per_media"):
        span_lengths(3, [0.5, 1.0], None, count)
    with pytest.raises(ValueError, match="2 token_kept_ratio values for 1 media"):
        span_lengths(3, [0.5, 1.0], [3], count)
    with pytest.raises(ValueError, match="sums to 2 but pixel_values holds 3"):
        span_lengths(3, [0.5, 1.0], [1, 1], count)


def test_positions_count_real_tokens_per_row():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert positions(mask, 5).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    assert positions(torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1), 1).tolist() == [[3], [5]]


def test_narrow_restores_the_prompt_as_given_for_every_returned_copy():
    prompt = torch.tensor([[1, P, 9], [2, P, 8]])
    sequences = torch.tensor([[1, P, P, 9, 40, 41], [1, P, P, 9, 42, 43],
                              [2, P, P, 8, 44, 45], [2, P, P, 8, 46, 47]])  # two copies per row
    assert narrow(sequences, prompt, 4).tolist() == [[1, P, 9, 40, 41], [1, P, 9, 42, 43],
                                                     [2, P, 8, 44, 45], [2, P, 8, 46, 47]]
