"""Attention processors of the video UNet: LIVE's frame attention (paper Eq. 5) and friends.

The video UNet folds frames into the batch, so a spatial attention layer sees
`[batch · frames, tokens, channels]`. The processors learn the frame count from a
`VideoLayout` passed through diffusers' `cross_attention_kwargs` (`video=`), which
reaches every attention layer of the UNet and survives gradient checkpointing, whose
recomputation gets the same arguments as the forward pass.

Frame 0 of the layout is the latent prompt z_lp and frames 1…F are the video; a model
trained without the latent prompt (the ablation, and Tune-A-Video's sparse-causal
attention) has frames 0…F-1 the video, and each frame attends to `[z_1, z_{i-1}]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0


@dataclass(frozen=True)
class VideoLayout:
    """How a batch of the video UNet is laid out: `frames` per video, latent prompt first."""

    frames: int
    """Frames per video, the latent prompt included."""
    temporal: bool = True
    """Run the temporal attentions (the textual-inversion objective bypasses them)."""
    prompt: bool = True
    """Frame 0 is the latent prompt; False: every frame is video (no latent prompt)."""


def key_frames(frames: int) -> list[tuple[int, int, int]]:
    """For each frame i, the frames its keys and values come from: `[z_lp, z_1, z_{i-1}]`.

    Frame i gets (0, 1, max(i-1, 1)): frame 1 uses itself as its previous frame, and the
    latent prompt (frame 0) attends to itself only, (0, 0, 0), which, the three copies
    being equal, is plain self-attention.
    """
    return [(0, 0, 0)] + [(0, 1, max(i - 1, 1)) for i in range(1, frames)]


def gather_key_frames(videos: torch.Tensor, prompt: bool = True) -> torch.Tensor:
    """[b, frames, tokens, c] -> [b, frames, 3·tokens, c]: each frame's `key_frames` side by side.

    Without a latent prompt, [b, frames, 2·tokens, c]: `[z_1, z_{i-1}]` (frame 1 its own previous).
    Built from slices and broadcasts, not an index: the backward of an index gather
    accumulates in parallel on the CPU and is not bit-reproducible; slices are.
    """
    if not prompt:
        first = videos[:, :1].expand_as(videos)
        previous = torch.cat([videos[:, :1], videos[:, :-1]], dim=1)
        return torch.cat([first, previous], dim=2)
    prompt, rest = videos[:, :1], videos[:, 1:]
    later = rest.shape[1]
    first = torch.cat([prompt, videos[:, 1:2].expand(-1, later, -1, -1)], dim=1)
    previous = torch.cat([prompt, videos[:, 1:2], rest[:, : later - 1]], dim=1)
    return torch.cat([prompt.expand_as(videos), first, previous], dim=2)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[batch, tokens, heads · d] -> [batch, heads, tokens, d]."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[batch, heads, tokens, d] -> [batch, tokens, heads · d]."""
    return x.transpose(1, 2).flatten(2)


def frame_attention_inputs(
    attn: Attention, hidden_states: torch.Tensor, layout: VideoLayout
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q, K, V of Eq. 5, split into heads: Q = W^Q z_i, K = W^K [z_lp, z_1, z_{i-1}], V likewise.

    Keys and values are projected once per frame and then gathered, so each frame's
    projection is computed once, not three times.
    """
    frames = layout.frames
    query = attn.to_q(hidden_states)

    def gather(projected: torch.Tensor) -> torch.Tensor:
        return gather_key_frames(projected.unflatten(0, (-1, frames)), layout.prompt).flatten(0, 1)

    key = gather(attn.to_k(hidden_states))
    value = gather(attn.to_v(hidden_states))
    return split_heads(query, attn.heads), split_heads(key, attn.heads), split_heads(value, attn.heads)


def attention_output(attn: Attention, attended: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Merge heads, project out, and apply the layer's residual and rescale settings."""
    hidden_states = attn.to_out[1](attn.to_out[0](merge_heads(attended)))
    if attn.residual_connection:
        hidden_states = hidden_states + residual
    return hidden_states / attn.rescale_output_factor


def _check_supported(attn: Attention, hidden_states: torch.Tensor) -> None:
    if (
        hidden_states.ndim != 3
        or attn.spatial_norm is not None
        or attn.group_norm is not None
        or attn.norm_q is not None
    ):
        raise NotImplementedError("frame attention supports the self-attention layers of Stable Diffusion v1.x UNets")


class FrameAttnProcessor:
    """The spatial self-attention (`attn1`) of the video UNet: each frame attends to
    the latent prompt, the first frame and its previous frame (Eq. 5), via SDPA.

    Without a `VideoLayout` it is the 2D UNet's self-attention.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        video: VideoLayout | None = None,
    ) -> torch.Tensor:
        _check_supported(attn, hidden_states)
        if video is None:
            query, key, value = (split_heads(p(hidden_states), attn.heads) for p in (attn.to_q, attn.to_k, attn.to_v))
        else:
            query, key, value = frame_attention_inputs(attn, hidden_states, video)
        attended = F.scaled_dot_product_attention(query, key, value)
        return attention_output(attn, attended, hidden_states)


class CrossAttnProcessor(AttnProcessor2_0):
    """The text cross-attention (`attn2`): diffusers' SDPA processor, frame by frame.

    It only takes the `video` argument so that diffusers passes the layout on quietly.
    """

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, video=None):
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class TemporalAttnProcessor(AttnProcessor2_0):
    """The temporal attention over the frame axis: `[batch · tokens, frames, channels]`."""
