import pytest

from aurora_serve.model.token_count import merge_r, tokens_per_frame, validate_ratio

# auroracap.md §4.6 / §9.3 (tokens per frame at 378 px, patch 14, 32 layers).
PUBLISHED = {0.01: 47, 0.05: 78, 0.1: 109, 0.2: 171, 0.3: 264, 0.4: 326, 0.5: 388, 0.6: 450,
             0.7: 543, 0.8: 605, 0.9: 667, 1.0: 729}


@pytest.mark.parametrize("rho,n", sorted(PUBLISHED.items()))
def test_published_table(rho, n):
    assert tokens_per_frame(rho) == n


def test_closed_form_on_two_decimal_grid():
    for i in range(1, 101):
        rho = i / 100
        assert tokens_per_frame(rho) == 729 - 31 * int(729 * (1 - rho) / 32), rho


def test_other_resolution_from_reference():
    # auroracap.md §4.6: the same ViT at 336 px.
    assert [tokens_per_frame(x, image_size=336) for x in (1.0, 0.5, 0.2, 0.1)] == [576, 297, 142, 80]


def test_cap_binds_for_short_sequences():
    # 16 patches, 8 layers run (feature_layer -2 of 9): r = int(16*0.99/9) = 1 → no cap; force a big r.
    assert tokens_per_frame(0.01, image_size=56, patch_size=14, num_layers=2) == 16 - int(16 * 0.99 / 2)
    # 4 patches, 1 layer: r = int(4 * 0.99 / 1) = 3 > (5 - 1) // 2, so the cap removes 2, not 3.
    assert tokens_per_frame(0.01, image_size=28, patch_size=14, num_layers=1, feature_layer=-1) == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, float("nan"), float("inf"), "x", None])
def test_rejects_bad_ratio(bad):
    with pytest.raises((ValueError, TypeError)):
        validate_ratio(bad)


def test_r_matches_upstream_float_expression():
    assert merge_r(0.8) == 4 and merge_r(0.2) == 18 and merge_r(1.0) == 0 and merge_r(0.01) == 22
