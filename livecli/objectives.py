"""LIVE's two training objectives and one optimisation step (paper §3.2–3.3, Eq. 3–4).

    L = L_unet + λ · L_text

- video objective (L_unet): DDPM noise at a uniform timestep on the video latents, the
  clean latent prompt in front, the source prompt; trains the attention queries, the
  temporal attentions and the latent prompt;
- image objective (L_text, textual inversion): `[reference latents as latent prompt,
  noisy reference latents]`, the prompt with the learned token in the object's place,
  temporal attention bypassed; trains only the token's embedding.

Each objective's loss is back-propagated right after its forward pass, into its own
parameters only (`backward(inputs=…)`): the sum of the two backward passes is the
gradient of L = L_UNET + λ·L_text (paper Eq. 5), where L_text trains only the token's embedding, and each
graph is freed before the next is built.

All randomness (noise, timesteps) comes from one CPU generator whose state is part of
the checkpoint, so a resumed run draws what an uninterrupted one would have drawn.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from livecli.augment import STRENGTHS, augment
from livecli.config import TrainConfig
from livecli.models import text as text_model
from livecli.models.attention import WindowLinks
from livecli.models.video_unet import VideoUNet, trainable_names
from livecli.windows import draw_training_window


@dataclass(frozen=True)
class StepLosses:
    video: float
    text: float

    def total(self, text_weight: float) -> float:
        return self.video + text_weight * self.text


@dataclass
class TrainingData:
    frames: torch.Tensor
    """Prepared video latents [F, 4, h, w] (already × the VAE scaling factor)."""
    reference: torch.Tensor
    """Prepared reference-image latents [R, 4, h, w]: one row per reference image."""
    prompt: str
    """The source prompt."""
    token_prompts: tuple[str, ...]
    """Per reference image, the image objective's prompt: its caption with the learned token
    in the object's place (the same for every reference unless each was given its own)."""
    reference_weights: torch.Tensor | None = None
    """[R, 1, h, w] 0/1: where each reference's object is (its mask, grown), the image
    objective's loss weights; None: every cell counts (no reference has a mask)."""


def weighted_mse(predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The mean squared error over the cells `weights` [n, 1, h, w] (0/1) keeps, all channels."""
    kept = weights.expand_as(predicted)
    return ((predicted - target).square() * kept).sum() / kept.sum().clamp_min(1)


def hidden(latents: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """`latents` [1, 4, h, w] with the cells `weights` keeps (the object) set to the mean of
    the others (its background), per channel: a latent prompt that shows where the object is
    not, so that frame attention cannot copy the object into the prediction."""
    background = 1 - weights
    if not background.any():
        return latents
    mean = (latents * background).sum(dim=(2, 3), keepdim=True) / background.sum(dim=(2, 3), keepdim=True)
    return latents * background + mean * weights


class NonFiniteStep(ArithmeticError):
    """A training step's loss or gradient is not finite (what, in the message): the step
    was not taken, so the trained weights are still the last finite ones."""


COMPUTE_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
"""--mixed-precision: the dtype the forward passes compute in (the trained weights stay fp32)."""


def resolve_mixed_precision(mode: str, device: torch.device) -> str:
    """`auto`: bf16 autocast on a CUDA device that supports it, fp16 on another, fp32 ("no")
    on the CPU, where autocast is slower than fp32; any other mode as given."""
    if mode != "auto":
        return mode
    if device.type != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class MixedPrecision:
    """torch's automatic mixed precision for one training run: the forward passes under
    autocast in the compute dtype and, for fp16, the losses scaled so that small gradients
    do not underflow (a step whose gradients overflow is skipped and the scale lowered)."""

    def __init__(self, mode: str, device: torch.device):
        self.device = device
        self.dtype = COMPUTE_DTYPES[mode]
        self.scaler = torch.amp.GradScaler(device.type) if mode == "fp16" else None

    def autocast(self) -> AbstractContextManager:
        return nullcontext() if self.dtype == torch.float32 else torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, inputs: list[torch.Tensor]) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward(inputs=inputs)

    def clip_grad_norm_(self, optimizer: torch.optim.Optimizer, params: list[torch.Tensor], max_norm: float) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        if self.scaler is None and not torch.isfinite(norm):  # fp16's scaler skips such a step itself
            raise NonFiniteStep("the gradient")

    def check_gradients(self, params: list[torch.Tensor]) -> None:
        """Refuse a step whose gradients are not finite (fp16's scaler skips such a step itself)."""
        if self.scaler is None and not all(torch.isfinite(p.grad).all() for p in params if p.grad is not None):
            raise NonFiniteStep("the gradient")

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()


class LiveTrainer:
    """Holds what training changes and runs one step of both objectives at a time."""

    def __init__(
        self,
        video_unet: VideoUNet,
        tokenizer,
        text_encoder,
        noise_scheduler,
        placeholder: text_model.Placeholder,
        data: TrainingData,
        config: TrainConfig,
        precision: MixedPrecision,
    ):
        self.video_unet = video_unet
        self.text_encoder = text_encoder
        self.noise_scheduler = noise_scheduler
        self.placeholder = placeholder
        self.config = config
        self.precision = precision
        device = precision.device
        self.frames = data.frames.to(device)
        self.reference = data.reference.to(device)
        self.reference_weights = None if data.reference_weights is None else data.reference_weights.to(device)
        self.augment = STRENGTHS.get(config.reference_augment)

        self.trainable = trainable_names(video_unet)
        params = dict(video_unet.unet.named_parameters())
        for name in self.trainable:
            params[name].data = params[name].data.float()  # fp32 master weights under mixed precision
            params[name].requires_grad_(True)
        self.latent_prompt = None if config.no_latent_prompt else nn.Parameter(self.frames[:1].clone().float())
        self.token_vector = nn.Parameter(placeholder.init.clone().float().to(device))
        self.video_params = [params[name] for name in self.trainable] + (
            [self.latent_prompt] if self.latent_prompt is not None else []
        )
        # What the image objective trains: the token and, in the --image-temporal ablation
        # (the paper's Fig. 8: temporal attention trained together with the second part),
        # the temporal attentions it then runs through.
        self.text_params = [self.token_vector] + (
            [params[name] for name in self.trainable if ".temporal." in name] if config.image_temporal else []
        )
        groups = [{"params": self.video_params, "lr": config.lr}, {"params": [self.token_vector], "lr": config.ti_lr}]
        if config.lp_lr is not None and self.latent_prompt is not None:  # its own rate: out of the video group
            groups[0]["params"] = self.video_params[:-1]
            groups.append({"params": [self.latent_prompt], "lr": config.lp_lr})
        optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        self.optimizer = optimizer

        # The source prompt's embedding never changes: computed once. (no_grad, not
        # inference_mode: the tensor feeds graphs that autograd saves.)
        with torch.no_grad():
            self.source_text = text_model.encode(text_encoder, text_model.tokenize(tokenizer, [data.prompt])).float()
        self.token_prompts = data.token_prompts
        self.token_ids = text_model.tokenize(tokenizer, list(data.token_prompts))
        self.generator = torch.Generator().manual_seed(config.seed)

    # -- the objectives

    def _noised(
        self, latents: torch.Tensor, generator: torch.Generator, timestep: int | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy latents, timestep, target) for Eq. 3, at a uniform timestep unless given."""
        noise = torch.randn(latents.shape, generator=generator).to(latents.device)
        if timestep is None:
            timestep = int(torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (1,), generator=generator))
        timestep = torch.tensor([timestep], device=latents.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timestep)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            return noisy, timestep, self.noise_scheduler.get_velocity(latents, noise, timestep)
        return noisy, timestep, noise

    def _predict(
        self,
        prompt: torch.Tensor,
        noisy: torch.Tensor,
        timestep,
        text: torch.Tensor,
        temporal: bool,
        links: WindowLinks | None = None,
    ) -> torch.Tensor:
        """The UNet's output on the noisy frames, with `prompt` as latent prompt in front (if the model has one)."""
        if self.latent_prompt is None:
            return self.video_unet(noisy.unsqueeze(0), timestep, text, temporal=temporal, prompt=False, links=links)[0]
        videos = torch.cat([prompt, noisy]).unsqueeze(0)
        return self.video_unet(videos, timestep, text, temporal=temporal, links=links)[0, 1:]

    def video_loss(self, generator: torch.Generator | None = None, timestep: int | None = None) -> torch.Tensor:
        """L_unet: a window of the video (windows.py; the whole clip when it has at most
        --window frames), with the learned latent prompt prepended, under the source prompt.
        In a window of a longer clip only the counted frames are in the loss, each weighing
        1/W, so that every frame of the clip weighs the same over the draws."""
        generator = generator or self.generator
        window = draw_training_window(self.frames.shape[0], self.config.window, generator)
        noisy, timestep, target = self._noised(self.frames[list(window.frames)], generator, timestep)
        with self.precision.autocast():
            predicted = self._predict(
                self.latent_prompt, noisy, timestep, self.source_text, temporal=True, links=window.links()
            )
        if window.whole:
            return F.mse_loss(predicted.float(), target.float())  # video frames only, not the latent prompt
        counted = list(window.counted)  # context frames (z_1, the run's previous frame) are not in the loss
        errors = (predicted[counted].float() - target[counted].float()).square().flatten(1).mean(1)
        return errors.sum() / window.size

    def reference_view(self, generator: torch.Generator) -> tuple[int, torch.Tensor, torch.Tensor | None]:
        """(index, latents [1, 4, h, w], loss weights [1, 1, h, w] or None) of the reference
        the image objective sees this step: one of the references drawn uniformly (no draw
        for one), then a random view of it under --reference-augment (no draw for none)."""
        count = self.reference.shape[0]
        index = 0 if count == 1 else int(torch.randint(0, count, (1,), generator=generator))
        latents = self.reference[index : index + 1]
        weights = None if self.reference_weights is None else self.reference_weights[index : index + 1]
        if self.augment is not None:
            latents, weights = augment(latents, weights, self.augment, generator)
        return index, latents, weights

    def text_loss(self, generator: torch.Generator | None = None, timestep: int | None = None) -> torch.Tensor:
        """L_text: a reference image, itself as latent prompt, under the token prompt; with
        a reference mask, the loss counts the object's latent cells only (and a margin), so
        that the photo's background does not go into the token."""
        generator = generator or self.generator
        index, reference, weights = self.reference_view(generator)
        noisy, timestep, target = self._noised(reference, generator, timestep)
        with (
            self.precision.autocast(),
            text_model.learned_token(self.text_encoder, self.placeholder.id, self.token_vector),
        ):
            token_text = text_model.encode(self.text_encoder, self.token_ids[index : index + 1])
            prompt = reference if weights is None or self.config.show_object else hidden(reference, weights)
            predicted = self._predict(prompt, noisy, timestep, token_text, temporal=self.config.image_temporal)
        if weights is None:
            return F.mse_loss(predicted.float(), target.float())
        return weighted_mse(predicted.float(), target.float(), weights.float())

    @torch.no_grad()
    def evaluate(self, draws: int = 4) -> StepLosses:
        """Both losses on fixed draws: timesteps spread evenly over the schedule, noise from
        a generator of its own (the training generator is not touched). The same before
        and after training but for the weights, they show what training changed, free of
        the per-step sampling noise of the loss log."""
        generator = torch.Generator().manual_seed(0)
        steps = self.noise_scheduler.config.num_train_timesteps
        video = text = 0.0
        for k in range(draws):
            timestep = int((k + 0.5) * steps / draws)
            video += self.video_loss(generator, timestep).item()
            text += self.text_loss(generator, timestep).item()
        return StepLosses(video / draws, text / draws)

    def step(self) -> StepLosses:
        """One optimisation step of L = L_unet + λ·L_text."""
        video = self.video_loss()
        self.precision.backward(video, inputs=self.video_params)
        text = self.text_loss()
        self.precision.backward(self.config.text_weight * text, inputs=self.text_params)
        losses = StepLosses(video.item(), text.item())
        if not (math.isfinite(losses.video) and math.isfinite(losses.text)):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteStep(f"the loss (video {losses.video:.4g}, image {losses.text:.4g})")
        self.precision.clip_grad_norm_(self.optimizer, self.video_params, self.config.max_grad_norm)
        self.precision.check_gradients(self.text_params)
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        return losses

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of every trained tensor, on the CPU: the step `--steps auto` may keep."""
        return {name: value.detach().float().cpu().clone() for name, value in self.named_trainables().items()}

    def restore_snapshot(self, snapshot: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, value in self.named_trainables().items():
                value.copy_(snapshot[name].to(value.device, value.dtype))

    def latent_prompt_moved(self) -> float | None:
        """How far the latent prompt is from the first frame it started as: ‖p − z₁‖ / ‖z₁‖."""
        if self.latent_prompt is None:
            return None
        start = self.frames[:1].float()
        return float((self.latent_prompt.detach() - start).norm() / start.norm())

    # -- state, for checkpoints

    def named_trainables(self) -> dict[str, torch.Tensor]:
        """Every trained tensor by a stable name: the optimizer's state is keyed by these."""
        params = dict(self.video_unet.unet.named_parameters())
        named = {name: params[name] for name in self.trainable}
        if self.latent_prompt is not None:
            named["latent_prompt"] = self.latent_prompt
        named["token"] = self.token_vector
        return named

    def optimizer_state(self) -> dict[str, torch.Tensor]:
        """AdamW's moments and step counts, flat, keyed `<trainable name>.<field>`."""
        ids = {id(p): name for name, p in self.named_trainables().items()}
        flat = {}
        for param, state in self.optimizer.state.items():
            for field, value in state.items():
                flat[f"{ids[id(param)]}.{field}"] = torch.as_tensor(value).detach().cpu().contiguous()
        return flat

    def load_optimizer_state(self, flat: dict[str, torch.Tensor]) -> None:
        device = self.precision.device
        for name, param in self.named_trainables().items():
            fields = {key[len(name) + 1 :]: value for key, value in flat.items() if key.rsplit(".", 1)[0] == name}
            if fields:
                self.optimizer.state[param] = {
                    key: value if key == "step" else value.to(device) for key, value in fields.items()
                }
