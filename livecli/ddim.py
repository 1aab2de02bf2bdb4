"""DDIM sampling and inversion (Song et al., 2021), on the timesteps of diffusers' `DDIMScheduler`.

With ᾱ_t the cumulative product of the noise schedule and ε_θ the predicted noise, the
clean latents a step implies are (DDIM Eq. 9)

    x̂_0 = (x_t − √(1−ᾱ_t) · ε_θ(x_t, t)) / √ᾱ_t

and one sampling step (Eq. 12) moves to the previous timestep s:

    x_s = √ᾱ_s · x̂_0 + √(1−ᾱ_s−σ_t²) · ε_θ(x_t, t) + σ_t · z,
    σ_t = η · √((1−ᾱ_s)/(1−ᾱ_t)) · √(1−ᾱ_t/ᾱ_s)                            (Eq. 16)

With η = 0 the step is deterministic: it is the Euler step of the probability-flow ODE
(Eq. 13), which inversion runs the other way, from x_s up to x_t, with ε_θ evaluated at
x_s and labelled t (the approximation Tune-A-Video and null-text inversion use). The
approximation is the only source of reconstruction error; it shrinks as steps grow, and
fixed-point iterations (`invert(refine=…)`) remove it.

Only the timesteps and ᾱ come from diffusers; both updates are written out here. ᾱ is the
model's own schedule (its scheduler config: scaled-linear betas for SD v1.x), not the
cosine schedule of the paper's §3.1, which the pretrained UNet never learnt.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

NoisePredictor = Callable[[torch.Tensor, int, int], torch.Tensor]
"""(latents x_t, timestep t, the step's index in sampling order) -> ε_θ(x_t, t), the shape
of the latents. Inversion passes the same index as sampling for a timestep, so that a
predictor reads ᾱ_t as `schedule.alphas[index]` either way."""

StepHook = Callable[[int, torch.Tensor], torch.Tensor]
"""(step index, latents after the step) -> the latents to go on with."""


@dataclass(frozen=True)
class DdimSchedule:
    """The timesteps of a DDIM run, highest noise first, with ᾱ at each and after each."""

    timesteps: tuple[int, ...]
    alphas: tuple[float, ...]
    """ᾱ_t at each timestep."""
    previous: tuple[float, ...]
    """ᾱ_s of the timestep each step moves to (the schedule's final ᾱ after the last)."""

    @property
    def steps(self) -> int:
        return len(self.timesteps)


def ddim_schedule(scheduler_config, steps: int) -> DdimSchedule:
    """The schedule of `steps` DDIM steps for a model with this scheduler config."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(steps)
    cumulative = scheduler.alphas_cumprod.double()
    final = float(scheduler.final_alpha_cumprod)
    stride = scheduler.config.num_train_timesteps // steps
    timesteps = tuple(int(t) for t in scheduler.timesteps)
    alphas = tuple(float(cumulative[t]) for t in timesteps)
    previous = tuple(float(cumulative[t - stride]) if t - stride >= 0 else final for t in timesteps)
    return DdimSchedule(timesteps, alphas, previous)


def to_epsilon(output: torch.Tensor, latents: torch.Tensor, alpha: float, prediction_type: str) -> torch.Tensor:
    """The noise ε a model's output stands for (v-prediction: ε = √ᾱ·v + √(1−ᾱ)·x_t)."""
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return math.sqrt(alpha) * output + math.sqrt(1 - alpha) * latents
    raise ValueError(f"unsupported prediction type {prediction_type!r}")


def ddim_step(
    latents: torch.Tensor,
    noise: torch.Tensor,
    alpha: float,
    alpha_next: float,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x_t -> x_s: DDIM Eq. 12, with σ_t of Eq. 16 (η = 0: deterministic).

    Sampling passes (ᾱ_t, ᾱ_s) for s < t; inversion passes them the other way round
    (η must then be 0), which is the same update solved for the later timestep.
    With η > 0 the fresh noise has the shape of one video, `latents.shape[1:]`, and is
    shared by the batch: an edit's source and target branches see the same draws.
    """
    clean = (latents - math.sqrt(1 - alpha) * noise) / math.sqrt(alpha)
    sigma = eta * math.sqrt((1 - alpha_next) / (1 - alpha)) * math.sqrt(1 - alpha / alpha_next) if eta else 0.0
    moved = math.sqrt(alpha_next) * clean + math.sqrt(1 - alpha_next - sigma**2) * noise
    if sigma:
        fresh = torch.randn(latents.shape[1:], generator=generator, dtype=latents.dtype).to(latents.device)
        moved = moved + sigma * fresh
    return moved


def sample(
    predict: NoisePredictor,
    latents: torch.Tensor,
    schedule: DdimSchedule,
    after_step: StepHook | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Denoise x_T down the schedule (Eq. 12 at every step); `after_step` may edit each result."""
    for index, timestep in enumerate(schedule.timesteps):
        noise = predict(latents, timestep, index)
        latents = ddim_step(latents, noise, schedule.alphas[index], schedule.previous[index], eta, generator)
        if after_step is not None:
            latents = after_step(index, latents)
    return latents


def invert(
    predict: NoisePredictor, latents: torch.Tensor, schedule: DdimSchedule, refine: int = 0
) -> list[torch.Tensor]:
    """Run Eq. 12 backwards from the clean latents x_0 up to x_T.

    `refine` > 0 adds fixed-point iterations to each step (AIDI, Pan et al. 2023;
    ReNoise, Garibi et al. 2024): ε is evaluated again at the x_t just found, until x_t
    is the point whose sampling step lands on x_s. Plain DDIM inversion (0, the paper's)
    evaluates ε only at x_s, which is where its reconstruction error comes from.

    Returns the trajectory in sampling order: element k holds the latents at the start of
    sampling step k (element 0 is x_T), and the last element is the x_0 given.
    """
    trajectory = [latents]
    for index in reversed(range(schedule.steps)):
        timestep, alpha_from, alpha_to = schedule.timesteps[index], schedule.previous[index], schedule.alphas[index]
        moved = ddim_step(latents, predict(latents, timestep, index), alpha_from, alpha_to)
        for _ in range(refine):
            moved = ddim_step(latents, predict(moved, timestep, index), alpha_from, alpha_to)
        latents = moved
        trajectory.append(latents)
    return trajectory[::-1]
