"""The trained LIVE model, rebuilt from a project's `train/` artefacts for inversion and editing.

The base model is loaded in fp32, inflated, and given the trained deltas (exact, see
deltas.py) before it is cast to the inference precision; the learned token joins the
tokenizer with its trained embedding; the latent prompt and the reference latents come
from the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from livecli import ddim
from livecli.models import deltas as attention_deltas
from livecli.models import text as text_model
from livecli.models.attention import WindowLinks
from livecli.models.loading import ModelSource, load_denoiser
from livecli.models.video_unet import VideoUNet, compile_blocks, inflate
from livecli.progress import say


@dataclass(frozen=True)
class TrainedFiles:
    """Where a training's artefacts are; the train stage, which writes them, names them."""

    deltas: Path
    """What training changed in the UNet (deltas.py)."""
    token: Path
    """The learned token, `{token: embedding}`."""
    latent_prompt: Path | None
    """The trained latent prompt; None for a model trained without one (--no-latent-prompt)."""


@dataclass
class TrainedModel:
    video_unet: VideoUNet
    tokenizer: object
    text_encoder: torch.nn.Module
    scheduler_config: dict
    latent_prompt: torch.Tensor | None
    """The trained latent prompt [1, 4, h, w]: the conditional branch's; None for a model
    trained without one (--no-latent-prompt)."""
    reference: torch.Tensor
    """The reference image's latents [1, 4, h, w]: the unconditional branch's latent prompt."""
    token: str
    device: torch.device
    dtype: torch.dtype

    @property
    def prediction_type(self) -> str:
        return self.scheduler_config.get("prediction_type", "epsilon")

    @torch.inference_mode()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings [n, 77, dim] in the inference precision."""
        ids = text_model.tokenize(self.tokenizer, prompts)
        return text_model.encode(self.text_encoder, ids).to(self.dtype)

    @torch.inference_mode()
    def noise(
        self,
        latents: torch.Tensor,
        timestep: int,
        alpha: float,
        text: torch.Tensor,
        latent_prompts: torch.Tensor,
        links: WindowLinks | None = None,
    ) -> torch.Tensor:
        """ε_θ for each video: latents [B, F, 4, h, w] (fp32), text [B, 77, dim], latent prompts
        [B, 1, 4, h, w] put in front of the frames (ignored by a model without a latent
        prompt); `links` for a window of a longer clip. Returns fp32 [B, F, 4, h, w]."""
        if self.latent_prompt is None:
            output = self.video_unet(latents.to(self.dtype), timestep, text, prompt=False, links=links).float()
        else:
            videos = torch.cat([latent_prompts, latents.to(self.dtype)], dim=1)
            output = self.video_unet(videos, timestep, text, links=links)[:, 1:].float()
        return ddim.to_epsilon(output, latents, alpha, self.prediction_type)


def load_trained(
    files: TrainedFiles,
    reference: torch.Tensor,
    source: ModelSource,
    device: torch.device,
    dtype: torch.dtype,
    compile_unet: bool = False,
) -> TrainedModel:
    """The base model `source` with the training in `files` applied, on `device` in `dtype`."""
    say(f"loading {source.id} with the trained attention, token and latent prompt")
    parts = load_denoiser(source, device, torch.float32)
    token, vector = text_model.load_token(files.token)
    text_model.install_token(parts.tokenizer, parts.text_encoder, token, vector)
    video_unet = inflate(parts.unet)
    attention_deltas.apply_deltas(video_unet, attention_deltas.load_deltas(files.deltas))
    video_unet.to(dtype).eval().requires_grad_(False)
    if compile_unet:
        compile_blocks(video_unet)
    latent_prompt = load_file(files.latent_prompt)["latent_prompt"] if files.latent_prompt is not None else None
    return TrainedModel(
        video_unet=video_unet,
        tokenizer=parts.tokenizer,
        text_encoder=parts.text_encoder.to(dtype),
        scheduler_config=dict(parts.noise_scheduler.config),
        latent_prompt=latent_prompt.to(device=device, dtype=dtype) if latent_prompt is not None else None,
        reference=reference.to(device=device, dtype=dtype),
        token=token,
        device=device,
        dtype=dtype,
    )
