"""Whole clips in windows: the plan, and the properties of the whole-clips issue —
(a) one window is the whole clip, (b) frame attention is exact across windows."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from edits import PROMPT, run_edit
from livecli import ddim
from livecli.config import EditConfig, ModelConfig
from livecli.models.attention import WindowLinks
from livecli.models.loading import load_denoiser, resolve_model
from livecli.models.video_unet import inflate
from livecli.objectives import LiveTrainer
from livecli.stages import PREPARE
from livecli.stages.invert import invert_latents
from livecli.stages.runtime import Runtime
from livecli.windows import draw_training_window, plan_windows, training_window_at, windowed_noise


@pytest.mark.parametrize(
    ("frames", "window", "overlap"), [(8, 8, 2), (24, 8, 2), (24, 8, 0), (80, 8, 3), (10, 8, 2), (9, 8, 7), (30, 5, 4)]
)
def test_the_windows_cover_the_clip_with_weights_that_sum_to_one(frames, window, overlap):
    windows = plan_windows(frames, window, overlap)
    total = torch.zeros(frames, dtype=torch.float64)
    for index, plan in enumerate(windows):
        assert plan.stop - plan.start == min(window, frames)
        assert len(plan.weights) == plan.stop - plan.start and min(plan.weights) > 0
        assert plan.frames[0] == 0  # z_1 is in every window: the anchor of Eq. 5
        total[plan.start : plan.stop] += torch.tensor(plan.weights, dtype=torch.float64)
        if index + 1 < len(windows):
            following = windows[index + 1]
            assert plan.start < following.start <= plan.stop - overlap  # they overlap by at least `overlap`
            assert plan.keep == (following.start - 1 if following.start > 1 else None)
            assert plan.keep is None or plan.start <= plan.keep < plan.stop
    assert windows[0].start == 0 and windows[-1].stop == frames
    torch.testing.assert_close(total, torch.ones(frames, dtype=torch.float64))


def test_a_training_window_is_a_run_of_consecutive_frames_after_its_context():
    generator = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(300):
        window = draw_training_window(24, 8, generator)
        start = window.frames[-8]
        starts.add(start)
        context = ([0] if start else []) + ([start - 1] if start > 1 else [])
        assert window.frames == (*context, *range(start, start + 8))
        assert window.restart == (1 if start > 1 else None)  # the context frame begins the run
        assert all(position >= len(context) for position in window.counted)  # context is not in the loss
    assert starts == set(range(17))  # every run from z_1 to the last full one
    whole = draw_training_window(8, 8, generator)
    assert whole.frames == tuple(range(8)) and whole.whole and whole.links() is None


@pytest.mark.parametrize(("frames", "window"), [(24, 8), (9, 8), (96, 8), (13, 5)])
def test_every_frame_is_equally_often_in_the_training_loss(frames, window):
    """Over the F+W-1 equally likely draws, each frame, the first and last too, counts in
    exactly W of them with weight 1/W (uniform starts gave the ends about W times fewer)."""
    weight = torch.zeros(frames, dtype=torch.float64)
    for virtual_start in range(1 - window, frames):
        drawn = training_window_at(frames, window, virtual_start)
        assert len(drawn.frames) - len([0 for f in drawn.frames[:2] if f < drawn.frames[-window]]) == window
        for position in drawn.counted:
            weight[drawn.frames[position]] += 1 / drawn.size
    torch.testing.assert_close(weight, torch.ones(frames, dtype=torch.float64))


@pytest.fixture(scope="module")
def fresh_unet():
    """A freshly inflated tiny UNet: its temporal attentions start at zero, so they are off."""
    parts = load_denoiser(resolve_model("tiny"), torch.device("cpu"), torch.float32)
    torch.manual_seed(0)
    return inflate(parts.unet).eval().requires_grad_(False)


def test_a_training_run_s_first_frame_sees_its_true_previous_frame(fresh_unet):
    """The batch [z_1, z_{s-1}, z_s …]: z_s's frame attention takes z_{s-1}'s keys, as over
    the whole clip (only z_{s-1}'s own previous frame is missing), where the run alone made
    z_s its own previous frame. With temporal attention off, the run's predictions come
    several times nearer the whole clip's."""
    generator = torch.Generator().manual_seed(3)
    clip = torch.randn(1, 12, 4, 8, 8, generator=generator)
    text = torch.randn(1, 77, fresh_unet.unet.config.cross_attention_dim, generator=generator)
    drawn = training_window_at(12, 4, 6)
    assert drawn.frames == (0, 5, 6, 7, 8, 9) and drawn.counted == (2, 3, 4, 5)

    def predict(frames, links):
        with torch.inference_mode():
            return fresh_unet(clip[:, frames], torch.tensor([500]), text, temporal=False, prompt=False, links=links)

    whole = predict(list(range(12)), None)[:, 6:10]
    with_context = predict(list(drawn.frames), drawn.links())[:, 2:]
    run_alone = predict([0, 6, 7, 8, 9], WindowLinks(restart=1))[:, 1:]  # z_6 its own previous frame
    assert (with_context - whole).abs().max() * 3 < (run_alone - whole).abs().max()


@pytest.mark.parametrize("latent_prompt", [True, False])
def test_windowed_inversion_equals_the_whole_clip_with_temporal_attention_off(fresh_unet, latent_prompt):
    """Property (b): 24 frames in windows of 8 overlapping by 2; frame attention is exact
    because each window's first frame attends to its previous frame's keys and values
    from the window before, at the same step."""
    generator = torch.Generator().manual_seed(1)
    frames = torch.randn(1, 24, 4, 8, 8, generator=generator)
    prompt = torch.randn(1, 1, 4, 8, 8, generator=generator)
    text = torch.randn(1, 77, fresh_unet.unet.config.cross_attention_dim, generator=generator)
    schedule = ddim.ddim_schedule(
        load_denoiser(resolve_model("tiny"), torch.device("cpu"), torch.float32).noise_scheduler.config, 4
    )

    def unet(latents, timestep, links):
        with torch.inference_mode():
            if not latent_prompt:
                return fresh_unet(latents, timestep, text, temporal=False, prompt=False, links=links)
            return fresh_unet(torch.cat([prompt, latents], 1), timestep, text, temporal=False, links=links)[:, 1:]

    def windowed(windows):
        def predict(latents, timestep, index):
            return windowed_noise(lambda batch, links: unet(batch, timestep, links), latents, windows)

        return torch.stack(ddim.invert(predict, frames, schedule))

    whole = torch.stack(ddim.invert(lambda latents, t, i: unet(latents, t, None), frames, schedule))
    windows = plan_windows(24, 8, 2)
    assert len(windows) == 4
    torch.testing.assert_close(windowed(windows), whole, rtol=0, atol=1e-5)

    # Without the chain a window's first frame would attend to itself as previous: the
    # inversion then differs, so the comparison above can fail.
    def unchained(latents, timestep, index):
        return windowed_noise(
            lambda batch, links: unet(batch, timestep, links and type(links)(restart=links.restart)), latents, windows
        )

    assert (torch.stack(ddim.invert(unchained, frames, schedule)) - whole).abs().max() > 1e-3


def test_one_window_over_the_clip_is_the_whole_clip_computation(trained):
    """Property (a) for inversion and edit: with W at least the clip's length the windowed
    stages equal the whole clip's (the model's noise on every frame at once) bit for bit."""
    project, model, frames = trained
    count = frames.shape[0]
    schedule = ddim.ddim_schedule(model.scheduler_config, 5)
    text = model.encode([PROMPT])
    prompt = model.latent_prompt.unsqueeze(0)

    def whole(latents, timestep, index):
        return model.noise(latents, timestep, schedule.alphas[index], text, prompt)

    reference = torch.stack(ddim.invert(whole, frames.unsqueeze(0), schedule))[:, 0]
    for window in (count, count + 4):
        inverted = invert_latents(model, frames, PROMPT, 5, windows=plan_windows(count, window, 2))
        assert torch.equal(inverted, reference)

    config = EditConfig(replace=("car=<tok>",), steps=5, blend_threshold=0.9, blend_start=0.2)
    start = reference[0]
    alone, _ = run_edit(model, start, config)
    windowed, _ = run_edit(model, start, config, windows=plan_windows(count, count + 4, 2))
    assert torch.equal(alone.edit, windowed.edit) and torch.equal(alone.mask, windowed.mask)


def test_the_windowed_edit_equals_the_whole_clip_edit_with_temporal_attention_off(trained):
    """Word swap, self-attention replacement and local blend work per window as over the
    whole clip: with the temporal attentions zeroed, an edit of 8 frames in windows of 3
    overlapping by 1 equals the edit of the whole clip at once."""
    project, _, frames = trained
    model = Runtime.resolve(project, ModelConfig(model="tiny", device="cpu")).trained()
    for name, param in model.video_unet.unet.named_parameters():
        if ".temporal.attn.to_out" in name:
            param.data.zero_()
    start = invert_latents(model, frames, PROMPT, 5)[0]
    config = EditConfig(replace=("car=<tok>",), steps=5, self_replace=0.6, blend_threshold=0.5, blend_start=0.2)
    whole, _ = run_edit(model, start, config)
    windows = plan_windows(frames.shape[0], 3, 1)
    assert len(windows) == 4
    windowed, _ = run_edit(model, start, config, windows=windows)
    # Guidance (12.5) multiplies the float error of the conditional branch's ε: 1.5e-5 measured.
    tolerance = 1e-5 * config.guidance / 2
    torch.testing.assert_close(windowed.edit, whole.edit, rtol=0, atol=tolerance)
    torch.testing.assert_close(windowed.source, whole.source, rtol=0, atol=tolerance)
    assert 0 < float(whole.mask.mean()) < 1 and torch.equal(windowed.mask, whole.mask)


def test_one_window_is_the_whole_clip_in_the_training_loss(trained, monkeypatch):
    """Property (a) for training: with W at least the clip's length, the video loss on a
    fixed draw is the loss over [z_lp, all frames] computed directly."""
    project, model, frames = trained
    trainer = build_trainer(project, window=frames.shape[0])
    loss = trainer.video_loss(torch.Generator().manual_seed(5), timestep=400)
    generator = torch.Generator().manual_seed(5)
    noise = torch.randn(trainer.frames.shape, generator=generator)
    timestep = torch.tensor([400])
    noisy = trainer.noise_scheduler.add_noise(trainer.frames, noise, timestep)
    videos = torch.cat([trainer.latent_prompt, noisy]).unsqueeze(0)
    predicted = trainer.video_unet(videos, timestep, trainer.source_text)[0, 1:]
    assert torch.equal(loss, F.mse_loss(predicted, noise))


def test_a_training_step_on_a_window_trains_from_a_run_of_the_clip(trained):
    """W below the clip's length: each step sees W frames, with z_1 and the run's previous
    frame in front as context where the run does not begin at z_1 or z_2; the loss falls."""
    project, _, frames = trained
    trainer = build_trainer(project, window=4)
    seen = []
    original = trainer._predict

    def spy(prompt, noisy, timestep, text, temporal, links=None):
        seen.append(noisy.shape[0])
        return original(prompt, noisy, timestep, text, temporal, links)

    trainer._predict = spy
    before = trainer.evaluate(draws=2).video
    for _ in range(12):
        trainer.step()
    after = trainer.evaluate(draws=2).video
    video_calls = seen[::2][:12]  # video and image objective alternate
    assert set(video_calls) <= {4, 5, 6} and 6 in video_calls  # a run of 4, with its context in front
    assert after < before


def build_trainer(project, window: int) -> LiveTrainer:
    from livecli.config import TrainConfig
    from livecli.objectives import MixedPrecision
    from livecli.stages import train as train_stage

    latents = load_file(project.stage_dir(PREPARE) / "latents.safetensors")
    config = TrainConfig(window=window, lr=1e-3)
    precision = MixedPrecision("no", torch.device("cpu"))
    trainer, _ = train_stage.build_trainer(
        resolve_model("tiny"), config, precision, project.manifest(), latents, checkpoint=None
    )
    return trainer
