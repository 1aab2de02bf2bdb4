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


class FrameChain:
    """Frame attention's keys and values of one frame, handed from a window to the next.

    Windows of a clip run in order at each DDIM step. The frame just before a window's
    first frame ran in the window before, at the same step: every frame-attention layer
    of that window keeps its key and value (`keep`), and the next window's first frame
    attends to them (`before`), so that each frame sees the `[z_lp, z_1, z_{i-1}]` it
    would see over the whole clip. Layers are told apart by their attention module.
    """

    def __init__(self) -> None:
        self._kept: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._handed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def next_window(self) -> None:
        """What the window that just ran kept becomes what the next one reads."""
        self._handed, self._kept = self._kept, {}

    def keep(self, attn: Attention, key: torch.Tensor, value: torch.Tensor) -> None:
        self._kept[id(attn)] = (key, value)

    def before(self, attn: Attention) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self._handed.get(id(attn))


@dataclass(frozen=True)
class WindowLinks:
    """How a window of a longer clip links to the rest: positions count video frames only
    (0 is the clip's first frame z_1, the latent prompt is not counted)."""

    restart: int | None = None
    """The video position of a run of frames whose previous frame is not in the batch: it
    attends to the chain's frame when the chain hands one, else to itself (as z_1 does)."""
    keep: int | None = None
    """The video position whose keys and values the chain keeps for the next window."""
    chain: FrameChain | None = None


@dataclass(frozen=True)
class VideoLayout:
    """How a batch of the video UNet is laid out: `frames` per video, latent prompt first."""

    frames: int
    """Frames per video, the latent prompt included."""
    temporal: bool = True
    """Run the temporal attentions (the textual-inversion objective bypasses them)."""
    prompt: bool = True
    """Frame 0 is the latent prompt; False: every frame is video (no latent prompt)."""
    links: WindowLinks | None = None
    """For a window of a longer clip: where its previous frames come from."""


def key_frames(frames: int) -> list[tuple[int, int, int]]:
    """For each frame i, the frames its keys and values come from: `[z_lp, z_1, z_{i-1}]`.

    Frame i gets (0, 1, max(i-1, 1)): frame 1 uses itself as its previous frame, and the
    latent prompt (frame 0) attends to itself only, (0, 0, 0), which, the three copies
    being equal, is plain self-attention.
    """
    return [(0, 0, 0)] + [(0, 1, max(i - 1, 1)) for i in range(1, frames)]


def gather_key_frames(
    videos: torch.Tensor, prompt: bool = True, restart: int | None = None, before: torch.Tensor | None = None
) -> torch.Tensor:
    """[b, frames, tokens, c] -> [b, frames, 3·tokens, c]: each frame's `key_frames` side by side.

    Without a latent prompt, [b, frames, 2·tokens, c]: `[z_1, z_{i-1}]` (frame 1 its own previous).
    `restart` (a video position, as in `WindowLinks`) begins a run whose previous frame is
    `before` [b, tokens, c] (itself when None).
    Built from slices and broadcasts, not an index: the backward of an index gather
    accumulates in parallel on the CPU and is not bit-reproducible; slices are.
    """
    offset = 1 if prompt else 0
    first_video = videos[:, offset : offset + 1]
    restart = None if restart is None else restart + offset
    # Position p's previous frame is p - 1, but for the latent prompt and z_1 (their own)
    # and a restart (`before`, else its own).
    if restart is None or restart >= videos.shape[1]:
        pieces = [videos[:, : offset + 1], videos[:, offset:-1]]
    else:
        run_start = videos[:, restart : restart + 1] if before is None else before.unsqueeze(1)
        pieces = [videos[:, : offset + 1], videos[:, offset : restart - 1], run_start, videos[:, restart:-1]]
    previous = torch.cat(pieces, dim=1)
    if not prompt:
        return torch.cat([first_video.expand_as(videos), previous], dim=2)
    latent_prompt = videos[:, :1]
    later = videos.shape[1] - 1
    first = torch.cat([latent_prompt, first_video.expand(-1, later, -1, -1)], dim=1)
    return torch.cat([latent_prompt.expand_as(videos), first, previous], dim=2)


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

    links = layout.links or WindowLinks()
    offset = 1 if layout.prompt else 0
    handed = links.chain.before(attn) if links.chain is not None else None
    key_videos = attn.to_k(hidden_states).unflatten(0, (-1, frames))
    value_videos = attn.to_v(hidden_states).unflatten(0, (-1, frames))
    if links.chain is not None and links.keep is not None:
        links.chain.keep(attn, key_videos[:, offset + links.keep], value_videos[:, offset + links.keep])

    def gather(videos: torch.Tensor, before: torch.Tensor | None) -> torch.Tensor:
        return gather_key_frames(videos, layout.prompt, links.restart, before).flatten(0, 1)

    key = gather(key_videos, handed[0] if handed else None)
    value = gather(value_videos, handed[1] if handed else None)
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
