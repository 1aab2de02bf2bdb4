"""DDIM, inversion and editing on the tiny model: the four properties of the edit issue,
the blend's memory, the pinned source, and the prompt alignment."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clips import write_clip, write_image
from helpers import PREPARE_ARGS
from livecli import ddim
from livecli.config import EditConfig, ModelConfig
from livecli.control.attention import AttentionControl
from livecli.control.blend import LocalBlend, gaussian_blur, pick_factor
from livecli.control.prompts import Replacement, edit_prompts
from livecli.models.loading import load_denoiser, resolve_model
from livecli.sampling import branch_batch, guided_noise, guided_sample, plan_edit, sample_edit, source_attention_plan
from livecli.stages import PREPARE
from livecli.stages import invert as invert_stage
from livecli.stages.invert import invert_latents
from livecli.stages.runtime import Runtime
from livecli.store import Project

PROMPT = "a jeep car is moving on the road"


def train_project(root: Path, size: int, cli) -> Project:
    clip, image = write_clip(root / "clip.mp4", frames=12), write_image(root / "ref.png")
    args = [a if a != "64" else str(size) for a in PREPARE_ARGS]
    result = cli("train", clip, image, *args, "--steps", "2", "-p", root / "clip.live")
    assert result.code == 0, result.err
    return Project(root / "clip.live")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained 64 px project and its rebuilt model, shared by the module's tests."""
    from livecli.cli import main

    root = tmp_path_factory.mktemp("edit")
    project = train_project(root, 64, lambda *a: _Result(main([str(x) for x in a])))
    model = Runtime.resolve(project, ModelConfig(model="tiny", device="cpu")).trained()
    frames = load_file(project.stage_dir(PREPARE) / "latents.safetensors")["frames"]
    return project, model, frames


class _Result:
    def __init__(self, code: int):
        self.code, self.err = code, ""


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def scheduler_config():
    return load_denoiser(resolve_model("tiny"), torch.device("cpu"), torch.float32).noise_scheduler.config


# --------------------------------------------------------------------------- property 1: inversion


def test_ddim_inversion_is_exact_to_first_order_with_an_exact_denoiser():
    """For Gaussian data the optimal ε is known in closed form; with it, plain DDIM
    inversion then sampling reconstructs to 3 % at 50 steps, and the error halves each
    time the steps double (a first-order method)."""
    generator = torch.Generator().manual_seed(0)
    mean, spread = torch.randn(1, 8, 4, 8, 8, generator=generator), 0.5
    clean = mean + spread * torch.randn(1, 8, 4, 8, 8, generator=generator)
    errors = {}
    for steps in (25, 50, 100):
        schedule = ddim.ddim_schedule(scheduler_config(), steps)
        alpha_of = dict(zip(schedule.timesteps, schedule.alphas, strict=False))

        def exact(latents, timestep, index, alpha_of=alpha_of):
            alpha = alpha_of[timestep]
            return (1 - alpha) ** 0.5 * (latents - alpha**0.5 * mean) / (alpha * spread**2 + 1 - alpha)

        trajectory = ddim.invert(exact, clean, schedule)
        assert torch.equal(trajectory[-1], clean) and len(trajectory) == steps + 1
        errors[steps] = relative_error(ddim.sample(exact, trajectory[0], schedule), clean)
    assert errors[50] < 0.04
    assert 1.7 < errors[25] / errors[50] < 2.3 and 1.7 < errors[50] / errors[100] < 2.3


def test_inversion_then_sampling_reconstructs_the_prepared_latents(trained):
    """Through the trained video UNet, guidance 1, no control. The tiny model's UNet is
    random, no denoiser, so plain DDIM's first-order error is large on it (relative
    error 8.5 at 50 steps); fixed-point refinement removes it: with 6 iterations the
    error is 25 % at 25 steps, 3.2 % at 50 and 0.24 % at 100."""
    project, model, frames = trained
    text, null = model.encode([PROMPT]), model.encode([""])
    errors = {}
    for steps in (25, 50):
        trajectory = invert_latents(model, frames, PROMPT, steps, refine=6)
        schedule = ddim.ddim_schedule(model.scheduler_config, steps)
        errors[steps] = relative_error(guided_sample(model, trajectory[0], schedule, text, null, guidance=1.0), frames)
    assert errors[50] < 0.06
    assert errors[25] > 2 * errors[50]
    plain = {
        steps: relative_error(
            guided_sample(
                model,
                invert_latents(model, frames, PROMPT, steps)[0],
                ddim.ddim_schedule(model.scheduler_config, steps),
                text,
                null,
                1.0,
            ),
            frames,
        )
        for steps in (10, 50)
    }
    assert plain[10] > plain[50]


def test_the_trajectory_runs_from_noise_to_the_prepared_latents(trained):
    project, model, frames = trained
    trajectory = invert_latents(model, frames, PROMPT, 10)
    assert trajectory.shape == (11, *frames.shape)
    assert torch.equal(trajectory[-1], frames)
    assert trajectory[0].std() > 3 * frames.std()


# --------------------------------------------------------------------------- properties 2–4: editing


def run_edit(model, start, config: EditConfig, target_watch=None, trajectory=None, blend_factor=None, windows=None):
    """The edit `config` plans, sampled from x_T `start` as the edit stage samples it."""
    frames, _, height, width = start.shape
    plan = plan_edit(model, config, PROMPT, frames, (height, width), windows)
    if blend_factor is not None:
        plan.control.blend = LocalBlend(
            frames,
            (height, width),
            blend_factor,
            plan.prompts.source_blend,
            plan.prompts.target_blend,
            config.blend_threshold,
            config.blur_sigma,
        )
    return sample_edit(model, plan, start, trajectory, watch=target_watch), plan.prompts


def test_an_edit_of_the_source_into_itself_reproduces_the_source_branch(trained):
    """Target = source, every map replaced at every step: the edit is the source branch, bit for bit."""
    project, model, frames = trained
    start = invert_latents(model, frames, PROMPT, 10)[0]
    everything = " ".join(PROMPT.split())
    same = EditConfig(
        replace=("car=car",), steps=10, cross_replace=1.0, self_replace=1.0, keep=everything, blend_start=0.0
    )
    outcome, prompts = run_edit(model, start, same)
    assert prompts.target == PROMPT and prompts.alpha[: 1 + len(PROMPT.split())].sum() == 1 + len(PROMPT.split())
    assert torch.equal(outcome.edit, outcome.source)
    # The same control with a real replacement does change the video: the test can fail.
    changed, _ = run_edit(
        model, start, EditConfig(replace=("car=<tok>",), steps=10, cross_replace=1.0, self_replace=1.0, no_blend=True)
    )
    assert not torch.allclose(changed.edit, changed.source, atol=1e-4)


def test_without_control_or_blend_the_edit_is_plain_guided_sampling(trained):
    project, model, frames = trained
    start = invert_latents(model, frames, PROMPT, 10)[0]
    config = EditConfig(replace=("car=<tok>",), steps=10, cross_replace=0.0, self_replace=0.0, no_blend=True)
    outcome, prompts = run_edit(model, start, config)
    schedule = ddim.ddim_schedule(model.scheduler_config, 10)
    plain = guided_sample(model, start, schedule, model.encode([prompts.target]), model.encode([""]), config.guidance)
    torch.testing.assert_close(outcome.edit, plain, rtol=0, atol=1e-5)
    # and the source branch is plain guided sampling of the source prompt
    source = guided_sample(model, start, schedule, model.encode([PROMPT]), model.encode([""]), config.guidance)
    torch.testing.assert_close(outcome.source, source, rtol=0, atol=1e-5)


def test_local_blend_keeps_the_source_outside_the_mask(trained):
    """The tiny model's attention is nearly uniform, so the test blends at its finest
    cross-attention layers (8×8) with a threshold near 1 to get a mask with an outside."""
    project, model, frames = trained
    start = invert_latents(model, frames, PROMPT, 10)[0]
    config = EditConfig(replace=("car=<tok>",), steps=10, blend_threshold=0.999, blur_sigma=0.3, blend_start=0.3)
    seen = []

    def watch(index, latents, mask):
        seen.append((index, latents.clone(), None if mask is None else mask.clone()))

    outcome, _ = run_edit(model, start, config, watch, blend_factor=1)
    assert [index for index, _, mask in seen if mask is not None] == list(range(3, 10))
    for _index, latents, mask in seen:
        source, edit = latents
        if mask is None:
            assert not torch.equal(source, edit)
            continue
        outside = (mask == 0).expand_as(edit)
        assert 0 < outside.float().mean() < 1, "the test needs a mask with an inside and an outside"
        assert torch.equal(edit[outside], source[outside])
        assert not torch.equal(edit[~outside], source[~outside])
    assert torch.equal(outcome.mask, seen[-1][2])


def test_blend_can_keep_the_clip_outside_the_mask(trained):
    """--blend-background clip: outside the mask the edit is the clip's inverted latents at
    each step (not the source branch's, which differs from them under guidance)."""
    project, model, frames = trained
    trajectory = invert_latents(model, frames, PROMPT, 10)
    config = EditConfig(
        replace=("car=<tok>",),
        steps=10,
        blend_threshold=0.999,
        blur_sigma=0.3,
        blend_start=0.3,
        blend_background="clip",
    )
    seen = []

    def watch(index, latents, mask):
        seen.append((index, latents.clone(), None if mask is None else mask.clone()))

    outcome, _ = run_edit(model, trajectory[0], config, watch, trajectory=list(trajectory), blend_factor=1)
    blended = [(index, latents, mask) for index, latents, mask in seen if mask is not None]
    assert blended
    for index, (source, edit), mask in blended:
        outside = (mask == 0).expand_as(edit)
        assert 0 < outside.float().mean() < 1, "the test needs a mask with an inside and an outside"
        assert torch.equal(edit[outside], trajectory[index + 1][outside])
        assert not torch.equal(edit[outside], source[outside])  # the source branch drifted: the test can fail
    assert torch.equal(
        outcome.edit[(outcome.mask == 0).expand_as(frames)], frames[(outcome.mask == 0).expand_as(frames)]
    )


def test_the_reference_latent_prompt_goes_to_the_edit_branch_only(trained):
    """--latent-prompt reference: the edit's conditional video gets the reference's latents
    in front, the source's keeps the trained latent prompt; the unconditional ones are as before."""
    project, model, frames = trained
    latents = torch.randn((2, *frames.shape), generator=torch.Generator().manual_seed(3))
    text, null = model.encode([PROMPT, PROMPT]), model.encode([""])
    both = torch.stack([model.latent_prompt, model.reference])
    mixed = guided_noise(model, latents, 500, 0.5, text, null, 4.0, conditional=both)
    for video, prompt in ((0, model.latent_prompt), (1, model.reference)):
        conditional = model.noise(latents[video : video + 1], 500, 0.5, text[:1], prompt[None])
        unconditional = model.noise(latents[video : video + 1], 500, 0.5, null, model.reference[None])
        expected = unconditional + 4.0 * (conditional - unconditional)
        torch.testing.assert_close(mixed[video : video + 1], expected, rtol=0, atol=1e-5)
    assert not torch.allclose(mixed[1], guided_noise(model, latents, 500, 0.5, text, null, 4.0)[1], atol=1e-4)


def test_blend_maps_do_not_grow_with_the_steps(trained):
    project, model, frames = trained
    peaks = []
    for steps in (10, 20):
        start = torch.randn(frames.shape, generator=torch.Generator().manual_seed(1))
        outcome, _ = run_edit(model, start, EditConfig(replace=("car=<tok>",), steps=steps))
        peaks.append(outcome.peak_stored_bytes)
    assert peaks[0] == peaks[1] > 0


def test_pinned_source_follows_the_inversion(trained):
    project, model, frames = trained
    trajectory = invert_latents(model, frames, PROMPT, 10)
    sources = []
    config = EditConfig(replace=("car=<tok>",), steps=10, pin_source=True)
    outcome, _ = run_edit(
        model,
        trajectory[0],
        config,
        lambda i, latents, mask: sources.append(latents[0].clone()),
        trajectory=list(trajectory),
    )
    for index, source in enumerate(sources):
        assert torch.equal(source, trajectory[index + 1])
    assert torch.equal(outcome.source, frames)


# --------------------------------------------------------------------------- blend and prompts


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


def test_branch_batch_puts_the_conditional_videos_last():
    assert branch_batch(12.5).source == 2 and branch_batch(12.5).edit == 3 and branch_batch(12.5).videos == 4
    assert (branch_batch(1.0).source, branch_batch(1.0).edit, branch_batch(1.0).videos) == (0, 1, 2)


def test_control_windows_follow_the_ratios(trained):
    project, model, frames = trained
    prompts = edit_prompts(model.tokenizer, PROMPT, [Replacement.parse("car=<tok>")], model.token)
    control = AttentionControl(prompts, steps=50, cross_replace=0.6, self_replace=0.3, batch=branch_batch(12.5))
    windows = []
    for step in range(50):
        control.step = step
        windows.append((control.replaces_cross(), control.replaces_self(), control.replaces_self(64 * 64)))
    assert sum(c for c, _, _ in windows) == 30 and all(c for c, _, _ in windows[:30])
    assert sum(s for _, s, _ in windows) == 15 and all(s for _, s, _ in windows[:15])
    assert not any(big for _, _, big in windows)  # 64×64 frame attention keeps fused SDPA


def test_shared_copy_of_project_is_untouched(trained, tmp_path):
    """Inverting through the stage writes one folder per fingerprint and reuses it."""
    project, model, frames = trained
    copy = Project(tmp_path / "copy.live")
    shutil.copytree(project.root, copy.root)
    from livecli.config import InvertConfig

    first = invert_stage.run(copy, InvertConfig(steps=5), ModelConfig(model="tiny", device="cpu"))
    again = invert_stage.run(copy, InvertConfig(steps=5), ModelConfig(model="tiny", device="cpu"))
    other = invert_stage.run(copy, InvertConfig(steps=6), ModelConfig(model="tiny", device="cpu"))
    assert not first.skipped and again.skipped and not other.skipped
    assert first.folder == again.folder != other.folder
    assert first.folder.name.startswith("ddim5-") and other.folder.name.startswith("ddim6-")
    trajectory = load_file(first.folder / invert_stage.LATENTS)["trajectory"]
    assert trajectory.shape == (6, *frames.shape)
    assert torch.equal(trajectory, invert_latents(model, frames, PROMPT, 5))


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


# --------------------------------------------------------------------------- editing from the inversion


def spy_on_sources(control: AttentionControl, frames: set[int]) -> list[tuple[str, torch.Tensor]]:
    """What the edit takes from the source at each replacement, in the order the UNet asks:
    cross-attention maps, frame-attention queries and keys, temporal-attention maps.
    `frames`: the UNet's frames per video (windows may differ); the tiny UNet's positions
    per frame (64, 16, 4) are never among them."""
    seen: list[tuple[str, torch.Tensor]] = []
    cross_maps, take_source = control.cross_maps, control.take_source
    pending: list[torch.Tensor] = []

    def spied_cross(source, edit, query_tokens):
        seen.append(("cross", source.float().clone()))
        return cross_maps(source, edit, query_tokens)

    def spied_take(tensor, source=None):
        part = tensor.unflatten(0, (control.batch.videos, -1))[control.batch.source] if source is None else source
        if part.shape[0] in frames:  # frame attention: [frames, heads, tokens, d]
            seen.append(("frame", part.float().clone()))
        else:  # temporal attention's queries, then keys: [positions, heads, frames, d]
            pending.append(part.float())
            if len(pending) == 2:
                query, key = pending
                seen.append(("temporal", (query @ key.transpose(-1, -2) * query.shape[-1] ** -0.5).softmax(-1)))
                pending.clear()
        return take_source(tensor, source)

    control.cross_maps, control.take_source = spied_cross, spied_take
    if control.cached is not None:
        get = control.cached.get

        def spied_get(layer, kind):
            tensor = get(layer, kind)
            if kind == "temporal":
                seen.append(("temporal", tensor.float().clone()))
            return tensor

        control.cached.get = spied_get
    return seen


def edit_both_ways(model, frames, tmp_path, steps: int, refine: int, windows=None):
    """The same edit with a sampled source branch and from the inversion's stored
    attention, guidance 1, every word's and frame's map replaced in the first 60 % of the steps."""
    from livecli.control.source_attention import CachedSource, SourceRecorder

    config = EditConfig(
        replace=("car=<tok>",), steps=steps, guidance=1.0, cross_replace=0.6, self_replace=0.6, no_blend=True,
        keep=" ".join(PROMPT.split()[:2] + PROMPT.split()[3:]),
    )  # fmt: skip
    frame_count, _, height, width = frames.shape
    plan = source_attention_plan(model, PROMPT, config, (height, width))
    recorder = SourceRecorder(plan, tmp_path)
    trajectory = invert_latents(model, frames, PROMPT, steps, refine, windows=windows, recorder=recorder)
    outcomes, sources = {}, {}
    for branch in ("sample", "inversion"):
        branch_config = EditConfig(**{**config.__dict__, "source_branch": branch})
        stored = None
        if branch == "inversion":
            files = {int(f.stem): f for f in tmp_path.glob("*.safetensors")}
            stored = CachedSource(plan, files, model.device, model.dtype)
        edit = plan_edit(model, branch_config, PROMPT, frame_count, (height, width), windows, stored)
        batch_frames = {len(w.frames) + 1 for w in windows} if windows else {frame_count + 1}
        sources[branch] = spy_on_sources(edit.control, batch_frames)
        outcomes[branch] = sample_edit(model, edit, trajectory[0], list(trajectory))
    return outcomes, sources, plan, recorder.bytes


def source_errors(sources: dict, words: int) -> list[float]:
    """Relative error of each tensor the edit read from the store against the source branch's
    (whose cross maps have all 77 columns; the store keeps the first `words`)."""
    return [
        relative_error(cached, sampled[..., :words] if kind == "cross" else sampled)
        for (kind, sampled), (_, cached) in zip(sources["sample"], sources["inversion"], strict=True)
    ]


def test_the_inversions_attention_is_what_the_source_branch_computes(trained, tmp_path):
    """Guidance 1 and a refined inversion: sampling the source reproduces the inverted
    latents, so the source branch sees what the inversion saw. The maps, queries and keys
    the edit reads from the inversion's store then equal those the source branch computes,
    to fp16's rounding (2⁻¹¹ ≈ 5e-4 relative) plus the fixed-point residual (the
    inversion's last evaluation is one iteration before the trajectory's point, and the
    sampled source drifts by what is left). Measured: ≤ 2.6e-4 with 16 iterations, while
    with 8 the drift doubles each step to 1.1e-2 by the sixth. The random tiny UNet's
    fixed point does not converge on the step nearest t = 0 (35 % residual at 10 steps);
    the control's steps, the first 60 %, are far from it. The edits agree to the same order."""
    project, model, frames = trained
    outcomes, sources, plan, stored = edit_both_ways(model, frames, tmp_path, steps=10, refine=16)
    assert plan.words == len(model.tokenizer(PROMPT).input_ids) - 1 < 77 and stored > 0  # start token + words
    assert [kind for kind, _ in sources["sample"]] == [kind for kind, _ in sources["inversion"]]
    assert {kind for kind, _ in sources["sample"]} == {"cross", "frame", "temporal"}
    errors = source_errors(sources, plan.words)
    assert max(errors) < 1e-3, max(errors)
    assert relative_error(outcomes["inversion"].edit, outcomes["sample"].edit) < 1e-3
    # and the edit is not the clip: the comparison can fail.
    assert relative_error(outcomes["inversion"].edit, frames) > 1e-1


def test_a_windowed_edit_reads_each_windows_attention(trained, tmp_path):
    """Windows of 4 frames overlapping by 2: the store keeps each window's attention, and
    the source's frame attention is chained from window to window as the edit's is."""
    from livecli.windows import plan_windows

    project, model, frames = trained
    windows = plan_windows(frames.shape[0], 4, 2)
    assert len(windows) > 2
    outcomes, sources, plan, _ = edit_both_ways(model, frames, tmp_path, steps=10, refine=16, windows=windows)
    assert {kind for kind, _ in sources["sample"]} == {"cross", "frame", "temporal"}
    errors = source_errors(sources, plan.words)
    assert max(errors) < 1e-3, max(errors)
    assert relative_error(outcomes["inversion"].edit, outcomes["sample"].edit) < 1e-3


def test_an_edit_from_the_inversion_runs_the_edit_alone(trained):
    one = branch_batch(12.5, "inversion")
    assert (one.videos, one.source, one.edit) == (2, None, 1)
    assert (branch_batch(1.0, "inversion").videos, branch_batch(1.0, "inversion").edit) == (1, 0)
    project, model, frames = trained
    calls = []
    original = model.noise

    def counted(latents, *args, **kwargs):
        calls.append(latents.shape[0])
        return original(latents, *args, **kwargs)

    model.noise = counted
    try:
        config = EditConfig(
            replace=("car=<tok>",), steps=4, source_branch="inversion", no_blend=True, cross_replace=0, self_replace=0
        )
        plan = plan_edit(model, config, PROMPT, frames.shape[0], tuple(frames.shape[2:]), stored=_EmptyCache())
        trajectory = list(invert_latents(model, frames, PROMPT, 4))
        calls.clear()
        sample_edit(model, plan, trajectory[0], trajectory)
    finally:
        model.noise = original
    assert calls == [2, 2, 2, 2]  # unconditional and conditional edit: no source videos


class _EmptyCache:
    """A store with nothing in it, for a test whose control replaces nothing."""

    def begin_step(self, step):
        pass

    def focus(self, window=None):
        pass
