"""Inflating a Stable Diffusion UNet into LIVE's video UNet (paper §3.2–3.3, after Tune-A-Video).

`inflate(unet)` changes a diffusers `UNet2DConditionModel` in place, without copying its code:

- frames are folded into the batch, so ResNets, GroupNorms and LayerNorms work frame by
  frame (every norm stays per frame);
- every spatial self-attention (`attn1`) gets `FrameAttnProcessor`: frame i attends to
  `[z_lp, z_1, z_{i-1}]` (Eq. 5);
- every `BasicTransformerBlock` is wrapped in a `VideoTransformerBlock` that runs a
  temporal attention over the frame axis after the block's feed-forward (pre-norm,
  residual). Its output projection's weight *and* bias start at zero, so a freshly
  inflated UNet fed identical frames returns the 2D UNet's output on every frame.

`VideoUNet` takes `[batch, frames, 4, h, w]` latents whose frame 0 is the latent prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from torch import nn

from livecli.models.attention import (
    CrossAttnProcessor,
    FrameAttnProcessor,
    TemporalAttnProcessor,
    VideoLayout,
    WindowLinks,
)

TRAINABLE_QUERIES = ("attn1.to_q", "attn2.to_q")
"""The spatial and cross-attention query projections the video objective trains (Tune-A-Video's set)."""


class TemporalAttention(nn.Module):
    """Self-attention across frames at each spatial position: x + attn(norm(x))."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(
            query_dim=dim, heads=heads, dim_head=head_dim, bias=False, processor=TemporalAttnProcessor()
        )
        nn.init.zeros_(self.attn.to_out[0].weight)
        nn.init.zeros_(self.attn.to_out[0].bias)

    def forward(self, hidden_states: torch.Tensor, frames: int) -> torch.Tensor:
        # [b·frames, tokens, c] -> [b·tokens, frames, c]: each position's frames form a sequence.
        videos = hidden_states.unflatten(0, (-1, frames))
        batch, _, tokens, channels = videos.shape
        sequences = videos.transpose(1, 2).reshape(batch * tokens, frames, channels)
        sequences = sequences + self.attn(self.norm(sequences))
        return sequences.reshape(batch, tokens, frames, channels).transpose(1, 2).reshape_as(hidden_states)


class VideoTransformerBlock(nn.Module):
    """A diffusers `BasicTransformerBlock` followed by a temporal attention.

    Its `forward` has the block's signature, positional order included: diffusers'
    gradient checkpointing calls blocks with positional arguments.
    """

    def __init__(self, block: BasicTransformerBlock):
        super().__init__()
        self.block = block
        attn = block.attn1
        self.temporal = TemporalAttention(attn.query_dim, attn.heads, attn.inner_dim // attn.heads)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
        cross_attention_kwargs: dict | None = None,
        class_labels: torch.Tensor | None = None,
        added_cond_kwargs: dict | None = None,
    ) -> torch.Tensor:
        hidden_states = self.block(
            hidden_states,
            attention_mask=attention_mask,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            timestep=timestep,
            cross_attention_kwargs=cross_attention_kwargs,
            class_labels=class_labels,
            added_cond_kwargs=added_cond_kwargs,
        )
        layout: VideoLayout | None = (cross_attention_kwargs or {}).get("video")
        if layout is None or not layout.temporal:
            return hidden_states
        return self.temporal(hidden_states, layout.frames)


class VideoUNet(nn.Module):
    """The inflated UNet: `[batch, frames, 4, h, w]` in and out, frame 0 the latent prompt."""

    def __init__(self, unet: UNet2DConditionModel):
        super().__init__()
        self.unet = unet

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor | int,
        text: torch.Tensor,
        temporal: bool = True,
        prompt: bool = True,
        links: WindowLinks | None = None,
    ) -> torch.Tensor:
        """Predict the noise of every frame.

        latents: [batch, frames, c, h, w], frame 0 the latent prompt unless `prompt` is
        False; timestep: a scalar or one per video; text: [batch, tokens, dim], the
        prompt embedding of each video; links: for a window of a longer clip, how it
        links to the frames outside it.
        """
        batch, frames = latents.shape[:2]
        timestep = torch.as_tensor(timestep, device=latents.device).reshape(-1).expand(batch)
        out = self.unet(
            latents.flatten(0, 1),
            timestep.repeat_interleave(frames),
            encoder_hidden_states=text.repeat_interleave(frames, dim=0),
            cross_attention_kwargs={"video": VideoLayout(frames, temporal, prompt, links)},
        ).sample
        return out.unflatten(0, (batch, frames))


DOMINANT_RESOLUTIONS = 2
"""Checkpointing `on` covers the UNet's blocks at the latents' resolution and half of it:
the most activations per frame (SD's 64×64 and 32×32 at 512 px), the ones checkpointing
saves most memory on for the time it costs. bench/train_step.py, SD at 256 px, 8 frames:
the first resolution alone takes the peak from 11.2 to 9.7 GB, the two to 8.1 GB, every
block to 7.2 GB."""


def dominant_blocks(unet: nn.Module) -> tuple[str, ...]:
    """Name prefixes of the down and up blocks at the DOMINANT_RESOLUTIONS highest resolutions."""
    ups = len(unet.up_blocks)
    return tuple(f"down_blocks.{i}." for i in range(DOMINANT_RESOLUTIONS)) + tuple(
        f"up_blocks.{i}." for i in range(max(0, ups - DOMINANT_RESOLUTIONS), ups)
    )


def enable_checkpointing(video_unet: VideoUNet, everywhere: bool = False) -> None:
    """Gradient checkpointing (activations recomputed in the backward pass) of the blocks at
    the two highest resolutions, or of every block (`everywhere`)."""
    unet = video_unet.unet
    unet.enable_gradient_checkpointing()
    if everywhere:
        return
    kept = dominant_blocks(unet)
    for name, module in unet.named_modules():
        if name and hasattr(module, "gradient_checkpointing") and not f"{name}.".startswith(kept):
            module.gradient_checkpointing = False


def compile_blocks(video_unet: VideoUNet) -> int:
    """`--compile`: torch.compile the UNet's ResNet blocks and feed-forwards in place; the
    number compiled. The attention layers stay eager: an edit swaps their processors and
    they read its step, which a compiled graph would have to guard on and recompile for."""
    from diffusers.models.attention import FeedForward
    from diffusers.models.resnet import ResnetBlock2D

    compiled = 0
    for module in video_unet.unet.modules():
        if isinstance(module, ResnetBlock2D | FeedForward):
            module.compile()
            compiled += 1
    return compiled


ProcessorMaker = Callable[[str, str, object], object]
"""(kind: "temporal", "frame" or "cross"; the layer's name; its processor now) -> the processor to use."""


@contextmanager
def attention_processors(video_unet: VideoUNet, make: ProcessorMaker) -> Iterator[None]:
    """Within the block, every attention layer of the UNet runs the processor `make` gives
    it (edit control, the inversion's recording); the processors before come back after."""
    unet = video_unet.unet
    original = unet.attn_processors
    processors = {}
    for name, processor in original.items():
        kind = "temporal" if ".temporal." in name else "frame" if name.endswith("attn1.processor") else "cross"
        processors[name] = make(kind, name.removesuffix(".processor"), processor)
    unet.set_attn_processor(processors)
    try:
        yield
    finally:
        unet.set_attn_processor(dict(original))


def transformer_blocks(unet: nn.Module) -> Iterator[tuple[nn.ModuleList, int]]:
    """(list, index) of every `BasicTransformerBlock` in the UNet's `transformer_blocks` lists."""
    for name, module in list(unet.named_modules()):
        if name.endswith("transformer_blocks") and isinstance(module, nn.ModuleList):
            for index, block in enumerate(module):
                if isinstance(block, BasicTransformerBlock):
                    yield module, index


def inflate(unet: UNet2DConditionModel) -> VideoUNet:
    """Turn `unet` (modified in place) into the video UNet, with fresh temporal attentions.

    The temporal attentions' query/key/value weights are drawn from torch's global RNG:
    seed it first for a reproducible model.
    """
    found = list(transformer_blocks(unet))
    if not found:
        raise ValueError("the UNet has no transformer blocks to inflate (is it a Stable Diffusion UNet?)")
    reference = next(unet.parameters())
    for blocks, index in found:
        blocks[index] = VideoTransformerBlock(blocks[index]).to(device=reference.device, dtype=reference.dtype)
    processors = {}
    for name in unet.attn_processors:
        if ".temporal." in name:
            processors[name] = TemporalAttnProcessor()
        elif name.endswith("attn1.processor"):
            processors[name] = FrameAttnProcessor()
        else:
            processors[name] = CrossAttnProcessor()
    unet.set_attn_processor(processors)
    return VideoUNet(unet)


def trainable_names(video_unet: VideoUNet) -> list[str]:
    """The parameters the video objective trains: the query projections of `attn1` and
    `attn2` and the temporal attentions (Tune-A-Video trains `attn_temp`; its norm stays)."""
    return [
        name
        for name, _ in video_unet.unet.named_parameters()
        if any(f".{part}." in name for part in TRAINABLE_QUERIES) or ".temporal.attn." in name
    ]
