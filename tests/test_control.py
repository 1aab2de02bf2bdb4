"""control/: local blend's mask, the prompts' word alignment, and when word swap replaces maps."""

from __future__ import annotations

import pytest
import torch

from edits import PROMPT
from livecli.control.attention import AttentionControl
from livecli.control.blend import LocalBlend, gaussian_blur, pick_factor
from livecli.control.prompts import Replacement, edit_prompts
from livecli.sampling import branch_batch


def test_blur_is_finite_and_normalised():
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 8, 8] = 1.0
    blurred = gaussian_blur(mask, 1.0)
    assert blurred.shape == mask.shape
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert blurred[..., 8, 12].item() == 0.0 and blurred[..., 8, 11].item() > 0  # radius ⌈3σ⌉ = 3


def test_blend_mask_ignores_a_floor_of_attention():
    """A word that takes half its peak attention everywhere (as in a small model) still gives
    a mask of the peak alone: the range, not the maximum alone, is scaled to [0, 1]."""
    blend = LocalBlend(
        frames=1, latent_size=(8, 8), factor=2, source_tokens=(1,), target_tokens=(2,), threshold=0.3, sigma=0.0
    )
    source = torch.full((2, 1, 16, 77), 0.5)
    source[1, 0, 0, 1] = 1.0  # the peak at the top-left corner
    edit = torch.full((2, 1, 16, 77), 0.5)  # the same floor, its peak in the same corner
    edit[1, 0, 0, 2] = 1.0
    blend.record(source, edit)
    mask = blend.mask()[0, 0]
    expected = torch.zeros(8, 8)
    expected[:4, :4] = 1
    assert torch.equal(mask, expected)
    blend.scale = "max"  # Prompt-to-Prompt's (--blend-scale max, --preset paper): the floor passes 0.3
    assert torch.equal(blend.mask()[0, 0], torch.ones(8, 8))


def test_blend_mask_follows_the_recipe():
    """max-pool 3×3, upsample, divide by the maximum, threshold, OR of source and edit."""
    blend = LocalBlend(
        frames=1, latent_size=(8, 8), factor=2, source_tokens=(1,), target_tokens=(2,), threshold=0.5, sigma=0.0
    )
    source = torch.zeros(2, 1, 16, 77)  # [frames + latent prompt, heads, 4×4 queries, tokens]
    edit = torch.zeros(2, 1, 16, 77)
    source[1, 0, 0, 1] = 1.0  # top-left corner of the 4×4 map
    edit[1, 0, 15, 2] = 2.0  # bottom-right corner
    blend.record(source, edit)
    mask = blend.mask()[0, 0]
    expected = torch.zeros(8, 8)
    expected[:4, :4] = 1  # the pooled corner covers 2×2 map cells = 4×4 latents
    expected[4:, 4:] = 1
    assert torch.equal(mask, expected)


@pytest.mark.parametrize(
    ("latent_side", "available", "factor"),
    [
        (64, {1, 2, 4}, 4),
        (32, {1, 2, 4}, 2),
        (16, {1, 2, 4}, 1),
        (8, {1, 2, 4}, 1),
        (128, {1, 2, 4}, 4),
        (64, {1, 2}, 2),
    ],
)
def test_blend_maps_are_the_ones_nearest_16x16(latent_side, available, factor):
    """Prompt-to-Prompt's 16×16 maps at 512 px (64 latents, ×4); the shapes model's 16 latents use ×1."""
    assert pick_factor(available, latent_side) == factor


def test_word_alignment_handles_unequal_lengths(trained):
    project, model, frames = trained
    tokenizer = model.tokenizer
    prompts = edit_prompts(tokenizer, PROMPT, [Replacement.parse("car=red sports car")], model.token)
    assert prompts.target == "a jeep red sports car is moving on the road"
    source_ids = tokenizer(PROMPT).input_ids
    target_ids = tokenizer(prompts.target).input_ids
    # every kept source token maps to the same token id in the target
    for s, t in zip(*torch.nonzero(prompts.mapper, as_tuple=True), strict=False):
        assert source_ids[s] == target_ids[t]
    assert set(prompts.keep) == set(PROMPT.split()) - {"car"}
    # the blend tokens are the old word's and the whole replacement's
    assert [source_ids[i] for i in prompts.source_blend] == tokenizer("car", add_special_tokens=False).input_ids
    assert [target_ids[i] for i in prompts.target_blend] == tokenizer(
        "red sports car", add_special_tokens=False
    ).input_ids
    # keeping the replaced word spreads its map evenly over the new tokens
    kept = edit_prompts(tokenizer, PROMPT, [Replacement.parse("car=<tok>")], model.token, keep=["car"])
    token_position = tokenizer(kept.target).input_ids.index(tokenizer.convert_tokens_to_ids(model.token))
    car = range(*_span(tokenizer, PROMPT, "car"))
    assert torch.allclose(kept.mapper[list(car), token_position], torch.full((len(car),), 1 / len(car)))


def _span(tokenizer, prompt: str, word: str) -> tuple[int, int]:
    from livecli.control.prompts import word_spans

    span = next(s for s in word_spans(tokenizer, prompt) if word in s.words)
    return span.start, span.stop


@pytest.mark.parametrize(
    ("replace", "keep", "blend", "message"),
    [
        ("boat=<tok>", None, None, "'boat' is not a word of the prompt"),
        ("car=<tok>", ["boat"], None, "--keep: 'boat' not in the source prompt"),
        ("car=<tok>", None, ["boat"], "--blend: 'boat' not in the source prompt"),
    ],
)
def test_words_must_be_in_the_prompts(trained, replace, keep, blend, message):
    from livecli.errors import ConfigError

    project, model, frames = trained
    with pytest.raises(ConfigError, match=message):
        edit_prompts(model.tokenizer, PROMPT, [Replacement.parse(replace)], model.token, keep, blend)


def test_control_windows_follow_the_ratios(trained):
    project, model, frames = trained
    prompts = edit_prompts(model.tokenizer, PROMPT, [Replacement.parse("car=<tok>")], model.token)
    control = AttentionControl(prompts, steps=50, cross_replace=0.6, self_replace=0.3, batch=branch_batch(12.5))
    windows = []
    for step in range(50):
        control.step = step
        windows.append((control.replaces_cross(64 * 64), control.replaces_self(16), control.replaces_self(64 * 64)))
    assert sum(c for c, _, _ in windows) == 30 and all(c for c, _, _ in windows[:30])
    assert sum(s for _, s, _ in windows) == 15 and all(s for _, s, _ in windows[:15])
    assert not any(big for _, _, big in windows)  # 64×64 frame attention keeps fused SDPA
