"""objectives.py: LIVE's two training losses and one step, as `live train` runs them on the
tiny model: losses that fall, what each objective trains (the token's row alone, the
ablations, the image objective's caption and start word), and mixed precision."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from helpers import PREPARE_ARGS
from livecli.models.loading import load_denoiser, resolve_model
from livecli.models.tiny import tiny_model_dir
from livecli.objectives import MixedPrecision
from livecli.store import read_toml

PROJECT = Path("clip.live")
TRAIN = PROJECT / "train"


def loss_rows(folder: Path) -> list[dict]:
    with open(folder / "losses.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_video_loss_log_falls_when_it_can_overfit(cli, clip, image):
    """At the paper's rates 60 steps move a random tiny UNet less than the per-step noise of the
    loss (each step draws its own timestep); at a higher rate the logged curve falls too (30
    steps at 1e-3: the last ten steps' sum 5 % under the first ten's)."""
    assert cli("train", clip, image, *PREPARE_ARGS, "--steps", "30", "--lr", "1e-3").code == 0
    video = [float(r["video_loss"]) for r in loss_rows(TRAIN)]
    assert sum(video[-10:]) < sum(video[:10])


def test_only_the_token_row_is_learned(cli, clip, image, capture_trainer):
    """Every other row of the embedding matrix stays bit-identical; the file is diffusers' format."""
    from diffusers import StableDiffusionPipeline

    assert cli("train", clip, image, *PREPARE_ARGS, "--steps", "6").code == 0
    trainer = capture_trainer[0]
    pipeline = StableDiffusionPipeline.from_pretrained(
        tiny_model_dir(), safety_checker=None, requires_safety_checker=False
    )
    original = pipeline.text_encoder.get_input_embeddings().weight.detach().clone()
    assert torch.equal(trainer.text_encoder.get_input_embeddings().weight[: len(original)], original)

    pipeline.load_textual_inversion(TRAIN / "token.safetensors")
    learned = pipeline.text_encoder.get_input_embeddings().weight.detach()
    token_id = pipeline.tokenizer.convert_tokens_to_ids("<@#$>")
    assert learned.shape[0] == original.shape[0] + 1 and token_id == original.shape[0]
    assert torch.equal(learned[:-1], original)
    assert torch.equal(learned[token_id], trainer.token_vector.detach())
    init = original[pipeline.tokenizer("car", add_special_tokens=False).input_ids[0]]
    assert not torch.equal(learned[token_id], init), "the token's embedding was trained"


def test_the_ablation_switches_train_what_they_say(cli, clip, image, capture_trainer):
    """--no-latent-prompt trains and writes no latent prompt and edits without one;
    --image-temporal lets the image objective run (and so train against) the temporal attention."""
    result = cli("train", clip, image, *PREPARE_ARGS, "--steps", "4", "--no-latent-prompt", "--lr", "1e-3")
    assert result.code == 0, result.err
    assert not (TRAIN / "latent_prompt.safetensors").exists()
    trainer = capture_trainer[-1]
    assert trainer.latent_prompt is None and "latent_prompt" not in trainer.named_trainables()
    assert read_toml(TRAIN / "record.toml")["settings"]["no_latent_prompt"] is True
    edited = cli("edit", "--replace", "car=<tok>", "--steps", "4")
    assert edited.code == 0, edited.err
    assert len(list((PROJECT / "edits" / "car-tok" / "frames").iterdir())) == 8

    assert cli("train", *("--steps", "4", "--lr", "1e-3", "--image-temporal", "--force")).code == 0
    trainer = capture_trainer[-1]
    for block in (m for m in trainer.video_unet.modules() if hasattr(m, "temporal")):
        torch.nn.init.normal_(block.temporal.attn.to_out[0].weight, std=0.1)
    generator = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    with torch.no_grad():
        with_temporal = trainer.text_loss(generator(), 500).item()
        trainer.config = trainer.config.__class__(**{**trainer.config.__dict__, "image_temporal": False})
        without = trainer.text_loss(generator(), 500).item()
    assert with_temporal != without


def test_image_temporal_trains_the_temporal_attentions_in_the_image_objective(cli, clip, image, capture_trainer):
    """--image-temporal (the paper's Fig. 8 ablation): the image loss reaches the temporal
    weights, so one step with --lambda 1 leaves them other than with --lambda 0; without
    the ablation the image objective bypasses them, and --lambda changes nothing there."""

    def temporal_after_one_step(*flags: str) -> dict[str, torch.Tensor]:
        assert cli("train", clip, image, *PREPARE_ARGS, "--steps", "1", "--force", *flags).code == 0
        trainer = capture_trainer[-1]
        return {n: p.detach().clone() for n, p in trainer.named_trainables().items() if ".temporal." in n}

    ablation = [temporal_after_one_step("--image-temporal", "--lambda", weight) for weight in ("1", "0")]
    assert ablation[0].keys() == ablation[1].keys() and ablation[0]
    assert any(not torch.equal(ablation[0][n], ablation[1][n]) for n in ablation[0])
    method = [temporal_after_one_step("--lambda", weight) for weight in ("1", "0")]
    assert all(torch.equal(method[0][n], method[1][n]) for n in method[0])


def test_the_reference_prompt_and_init_word_are_what_the_image_objective_uses(cli, clip, image, capture_trainer):
    """By default the token replaces the object word of the source prompt and starts from
    its embedding; --reference-prompt and --init-word change both, and only when given do
    they enter the settings (earlier projects stay up to date)."""
    parts = load_denoiser(resolve_model("tiny"), torch.device("cpu"), torch.float32)
    embeddings = parts.text_encoder.get_input_embeddings().weight.detach()

    def _ids(word: str) -> list[int]:
        return parts.tokenizer(word, add_special_tokens=False).input_ids

    def embedding_of(word: str) -> torch.Tensor:
        return embeddings[_ids(word)].mean(dim=0)

    assert cli("train", clip, image, *PREPARE_ARGS, "--steps", "1").code == 0
    trainer = capture_trainer[-1]
    assert trainer.token_prompts[0] == "a jeep <@#$> is moving on the road"
    torch.testing.assert_close(trainer.placeholder.init, embedding_of("car"), rtol=0, atol=0)
    settings = read_toml(TRAIN / "record.toml")["settings"]
    assert "reference_prompt" not in settings and "init_word" not in settings

    result = cli("train", "--steps", "1", "--reference-prompt", "a <tok> on a green lawn", "--init-word", "puppy dog")
    assert result.code == 0, result.err
    trainer = capture_trainer[-1]
    assert trainer.token_prompts[0] == "a <@#$> on a green lawn"
    assert len(_ids("puppy dog")) > 1
    torch.testing.assert_close(trainer.placeholder.init, embedding_of("puppy dog"), rtol=0, atol=1e-7)
    record = read_toml(TRAIN / "record.toml")
    assert (
        record["settings"]["reference_prompt"] == "a <tok> on a green lawn"
        and record["settings"]["init_word"] == "puppy dog"
    )
    assert record["facts"]["token_prompt"] == "a <@#$> on a green lawn"

    # the object word may stand for the token, as in the source prompt
    assert cli("train", "--steps", "1", "--reference-prompt", "a car on a green lawn").code == 0
    assert capture_trainer[-1].token_prompts[0] == "a <@#$> on a green lawn"


def test_auto_mixed_precision_is_fp32_on_the_cpu_and_half_on_a_gpu(monkeypatch):
    from livecli.objectives import resolve_mixed_precision

    assert resolve_mixed_precision("auto", torch.device("cpu")) == "no"
    assert resolve_mixed_precision("bf16", torch.device("cpu")) == "bf16"
    for supported, expected in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda supported=supported: supported)
        assert resolve_mixed_precision("auto", torch.device("cuda")) == expected
    assert resolve_mixed_precision("no", torch.device("cuda")) == "no"


def test_fp16_loss_scaling_clips_true_gradients_and_skips_overflowing_steps():
    """MixedPrecision's fp16 path (run here on the CPU, as torch's GradScaler allows): the
    gradients are scaled for backward, unscaled before clipping, and a step whose
    gradients overflow leaves the weights alone and lowers the scale."""
    weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    precision = MixedPrecision("fp16", torch.device("cpu"))
    scale = precision.scaler.get_scale()
    assert scale > 1

    precision.backward((weight * torch.tensor([3.0, 4.0])).sum(), inputs=[weight])
    assert torch.allclose(weight.grad, scale * torch.tensor([3.0, 4.0]))
    precision.clip_grad_norm_(optimizer, [weight], max_norm=1.0)
    assert torch.allclose(weight.grad, torch.tensor([0.6, 0.8]))  # the true gradient (norm 5), clipped to norm 1
    precision.step(optimizer)
    assert torch.allclose(weight.detach(), torch.tensor([0.94, 1.92]))
    optimizer.zero_grad()

    precision.backward(weight.sum() * float("inf"), inputs=[weight])
    precision.clip_grad_norm_(optimizer, [weight], max_norm=1.0)
    precision.step(optimizer)
    assert torch.allclose(weight.detach(), torch.tensor([0.94, 1.92]))  # skipped
    assert precision.scaler.get_scale() < scale

    assert MixedPrecision("no", torch.device("cpu")).scaler is None
    with MixedPrecision("bf16", torch.device("cpu")).autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
