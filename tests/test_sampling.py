"""sampling.py: an edit planned and sampled on the tiny model — the properties of the edit
(the source into itself, plain guidance without control, local blend, the pinned source,
the reference latent prompt), the blend's memory, and an edit from the inversion's
stored attention against one with a sampled source branch."""

from __future__ import annotations

import dataclasses

import torch

from edits import PROMPT, relative_error, run_edit
from livecli import ddim
from livecli.config import EditConfig
from livecli.control.attention import AttentionControl
from livecli.sampling import branch_batch, guided_noise, guided_sample, plan_edit, sample_edit, source_attention_plan
from livecli.stages.invert import invert_latents


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


def test_swapped_latent_prompts_give_the_unconditional_branches_the_trained_one(trained, monkeypatch):
    """--latent-prompt swapped: the paper's two the other way round, the reference's latents
    in the edit's conditional branch, the trained latent prompt in the unconditional ones."""
    project, model, frames = trained
    latents = torch.randn((2, *frames.shape), generator=torch.Generator().manual_seed(3))
    text, null = model.encode([PROMPT, PROMPT]), model.encode([""])
    both = torch.stack([model.latent_prompt, model.reference])
    swapped = guided_noise(model, latents, 500, 0.5, text, null, 4.0, both, unconditional=model.latent_prompt)
    for video, prompt in ((0, model.latent_prompt), (1, model.reference)):
        conditional = model.noise(latents[video : video + 1], 500, 0.5, text[:1], prompt[None])
        unconditional = model.noise(latents[video : video + 1], 500, 0.5, null, model.latent_prompt[None])
        torch.testing.assert_close(swapped[video : video + 1], unconditional + 4.0 * (conditional - unconditional))

    import livecli.sampling as sampling

    seen = []
    original = sampling.guided_noise

    def spy(*args, **kwargs):
        seen.append((args[7], args[9] if len(args) > 9 else kwargs.get("unconditional")))
        return original(*args, **kwargs)

    monkeypatch.setattr(sampling, "guided_noise", spy)
    run_edit(model, frames, EditConfig(replace=("car=<tok>",), steps=2, latent_prompt="swapped"))
    conditional, unconditional = seen[0]
    assert torch.equal(conditional, both) and torch.equal(unconditional, model.latent_prompt)


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


def test_branch_batch_puts_the_conditional_videos_last():
    assert branch_batch(12.5).source == 2 and branch_batch(12.5).edit == 3 and branch_batch(12.5).videos == 4
    assert (branch_batch(1.0).source, branch_batch(1.0).edit, branch_batch(1.0).videos) == (0, 1, 2)


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


def edit_both_ways(model, frames, tmp_path, steps: int, refine: int, windows=None, **layers):
    """The same edit with a sampled source branch and from the inversion's stored
    attention, guidance 1, every word's and frame's map replaced in the first 60 % of the
    steps (at the layers `layers`, --*-replace-layers, name)."""
    from livecli.control.source_attention import CachedSource, SourceRecorder

    config = EditConfig(
        replace=("car=<tok>",), steps=steps, guidance=1.0, cross_replace=0.6, self_replace=0.6, no_blend=True,
        keep=" ".join(PROMPT.split()[:2] + PROMPT.split()[3:]), **layers,
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
            stored = CachedSource.of(plan, tmp_path.glob("*.safetensors"), model.device, model.dtype)
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


def test_a_store_of_the_coarse_layers_alone_is_what_the_source_branch_computes_there(trained, tmp_path, monkeypatch):
    """Word swap and temporal attention below the top resolution, no frame attention: the
    inversion stores those layers alone (the size `stored_bytes` says, under the full
    layers' store), and the edit from it equals the sampled source branch with the same
    layers replaced, as the full store does (the test above). Of a refined step's 17
    evaluations only the last is recorded: each file is written once."""
    from livecli.control import source_attention
    from livecli.control.source_attention import attention_layers, stored_bytes

    written = []
    save = source_attention.save_tensors

    def counted(path, tensors):
        written.append(path)
        save(path, tensors)

    monkeypatch.setattr(source_attention, "save_tensors", counted)

    project, model, frames = trained
    frames = frames[:4]  # a short clip: the 16 refining passes of each step are the test's cost
    compact = {"cross_replace_layers": "coarse", "temporal_replace_layers": "coarse", "self_replace_layers": "none"}
    outcomes, sources, plan, stored = edit_both_ways(model, frames, tmp_path, steps=6, refine=16, **compact)
    assert {kind for kind, _ in sources["sample"]} == {"cross", "temporal"}
    top = frames.shape[-2] * frames.shape[-1]
    assert all(maps.shape[-2] < top for kind, maps in sources["sample"] if kind == "cross")
    assert all(maps.shape[0] < top for kind, maps in sources["sample"] if kind == "temporal")
    errors = source_errors(sources, plan.words)
    assert max(errors) < 1e-3, max(errors)
    assert relative_error(outcomes["inversion"].edit, outcomes["sample"].edit) < 1e-3
    layers = attention_layers(model.video_unet, tuple(frames.shape[-2:]))
    full = dataclasses.replace(plan, self_tokens=top, cross_tokens=top, temporal_tokens=top)
    batches = [frames.shape[0] + 1]
    assert plan.blend_tokens == 0  # no blend: its layers' maps are not stored either
    assert stored == stored_bytes(plan, layers, batches, 6) < stored_bytes(full, layers, batches, 6) / 4
    assert sorted(written) == sorted(tmp_path.glob("*.safetensors")) and len(written) == len(set(written))  # once


def test_a_windowed_edit_reads_each_windows_attention(trained, tmp_path):
    """Windows of 4 frames overlapping by 2: the store keeps each window's attention, and
    the source's frame attention is chained from window to window as the edit's is."""
    from safetensors import safe_open

    from livecli.control.source_attention import file_part
    from livecli.windows import plan_windows

    project, model, frames = trained
    windows = plan_windows(frames.shape[0], 4, 2)
    assert len(windows) > 2
    outcomes, sources, plan, _ = edit_both_ways(model, frames, tmp_path, steps=10, refine=16, windows=windows)
    # One file a window and step, holding that window's maps alone: neither the recorder nor
    # the edit ever holds more than one window's.
    parts = {}
    for path in tmp_path.glob("*.safetensors"):
        step, window = file_part(path)
        with safe_open(path, framework="pt") as handle:
            assert {name.split("/")[0] for name in handle.keys()} == {str(window)}
        parts.setdefault(step, set()).add(window)
    assert parts[0] == set(range(len(windows)))
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
