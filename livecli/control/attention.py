"""Word swap for video (paper §3.4, Eq. 6, after Prompt-to-Prompt): attention processors
that give the edit the source's attention maps during the first steps.

The edit runs the source and the edit through the video UNet in one batch. In the
conditional branch (Prompt-to-Prompt leaves the unconditional one alone):

- cross-attention (`attn2`), steps [0, int(cross·steps)), at the layers
  `--cross-replace-layers` names (every layer: Prompt-to-Prompt's; `coarse`: below the
  top resolution, FateZero's): the target tokens that `EditPrompts.alpha` marks take the
  source's maps through `mapper`; the others keep their own. These layers compute their
  maps explicitly; every other layer and step uses fused SDPA;
- frame attention (`attn1`) and temporal attention, steps [0, int(self·steps)): the
  edit takes the source's maps whole. softmax(Q_s K_sᵀ)·V_e is SDPA run on the source's
  queries and keys with the edit's values, so no map is ever materialised. As in
  Prompt-to-Prompt (32×32 at 512 px) and FateZero, frame attention is replaced only below
  the UNet's top resolution (`--self-replace-layers coarse`): replaced there too, the
  source's maps bring the old object's outline and colour into the new one (measured:
  docs/shapes.md); `--self-replace-layers none` replaces none. Temporal maps (frames ×
  frames) are replaced at the layers `--temporal-replace-layers` names (by default every one);
- the local blend's layers record their blend-word maps as they are produced.

An edit from the inversion (`--source-branch inversion`) has no source video in the
batch: the source's maps, queries and keys come from what the inversion stored
(control/source_attention.py) instead, and the same replacements follow.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

from livecli.control.blend import LocalBlend
from livecli.control.prompts import EditPrompts
from livecli.control.source_attention import CROSS, EARLIER_SELF_TOKENS, EVERY_LAYER, TEMPORAL, CachedSource
from livecli.models.attention import (
    CrossAttnProcessor,
    TemporalAttnProcessor,
    VideoLayout,
    attention_output,
    frame_attention_inputs,
    split_heads,
)
from livecli.models.video_unet import VideoUNet, attention_processors


@dataclass(frozen=True)
class Batch:
    """Where the branches sit in the UNet's batch of videos."""

    videos: int
    source: int | None
    """The source's conditional video (None: the source's attention comes from the inversion)."""
    edit: int
    """The edit's conditional video."""


class AttentionControl:
    """What to replace at the current step, and the local blend's running maps."""

    def __init__(
        self,
        prompts: EditPrompts,
        steps: int,
        cross_replace: float,
        self_replace: float,
        batch: Batch,
        blend: LocalBlend | None = None,
        cached: CachedSource | None = None,
        self_tokens: int = EARLIER_SELF_TOKENS,
        cross_tokens: int = EVERY_LAYER,
        temporal_tokens: int = EVERY_LAYER,
    ):
        self.cross_steps = int(cross_replace * steps)
        self.self_steps = int(self_replace * steps)
        self.self_tokens = self_tokens
        """Frame attention is replaced at the layers with at most this many query positions
        (sampling.py gives --self-replace-layers' count; by default Prompt-to-Prompt's 32×32)."""
        self.cross_tokens = cross_tokens
        """Word swap reaches the layers with at most this many query positions (--cross-replace-layers)."""
        self.temporal_tokens = temporal_tokens
        """Temporal maps are replaced at the layers with at most this many positions (--temporal-replace-layers)."""
        self.mapper = prompts.mapper
        self.alpha = prompts.alpha
        self.batch = batch
        self.blend = blend
        self.cached = cached
        """The inversion's stored source attention, for a batch without a source video."""
        self.step = 0
        self.peak_stored_bytes = 0
        """The most bytes of attention maps kept between UNet calls at any time."""

    def replaces_cross(self, query_tokens: int) -> bool:
        """Word swap at this step, at a cross-attention layer of `query_tokens` positions."""
        return self.step < self.cross_steps and query_tokens <= self.cross_tokens

    def replaces_self(self, query_tokens: int) -> bool:
        """At this step, for a frame-attention layer of `query_tokens` positions."""
        return self.step < self.self_steps and query_tokens <= self.self_tokens

    def replaces_temporal(self, positions: int) -> bool:
        """At this step, for a temporal-attention layer over `positions` positions."""
        return self.step < self.self_steps and positions <= self.temporal_tokens

    def wants_cross_maps(self, query_tokens: int) -> bool:
        return self.replaces_cross(query_tokens) or (self.blend is not None and self.blend.wants(query_tokens))

    def begin_step(self, step: int) -> None:
        self.step = step
        if self.cached is not None:
            self.cached.begin_step(step)

    def take_source(self, tensor: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """A batch-first tensor of all videos, with the edit's part replaced by the source's
        (`source`, the source video's part, when the batch has no source video)."""
        videos = tensor.unflatten(0, (self.batch.videos, -1)).clone()
        videos[self.batch.edit] = videos[self.batch.source] if source is None else source
        return videos.flatten(0, 1)

    def cross_maps(self, source: torch.Tensor, edit: torch.Tensor, query_tokens: int) -> torch.Tensor:
        """The edit's cross-attention maps [frames, heads, queries, 77] after word swap;
        records the blend layers' maps."""
        if self.replaces_cross(query_tokens):
            # The inversion stores the start token's and the words' columns only: no other
            # source token is ever mapped.
            mapper = self.mapper[: source.shape[-1]].to(device=source.device, dtype=source.dtype)
            alpha = self.alpha.to(device=source.device, dtype=source.dtype)
            swapped = torch.einsum("fhqs,st->fhqt", source, mapper)
            edit = swapped * alpha + edit * (1 - alpha)
        if self.blend is not None and self.blend.wants(query_tokens):
            self.blend.record(source, edit)
            self.peak_stored_bytes = max(self.peak_stored_bytes, self.blend.stored_bytes)
        return edit


class ControlledFrameAttn:
    """Frame attention (Eq. 5) whose edit video may attend with the source's maps."""

    def __init__(self, control: AttentionControl, layer: str):
        self.control, self.layer = control, layer

    def __call__(
        self,
        attn: Attention,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        video: VideoLayout | None = None,
    ):
        query, key, value = frame_attention_inputs(attn, hidden_states, video)
        control = self.control
        if control.replaces_self(query.shape[2]):
            if control.cached is None:
                query, key = control.take_source(query), control.take_source(key)
            else:
                source_query, source_key = control.cached.frame_query_key(attn, self.layer, video)
                query, key = control.take_source(query, source_query), control.take_source(key, source_key)
        return attention_output(attn, F.scaled_dot_product_attention(query, key, value), hidden_states)


class ControlledTemporalAttn(TemporalAttnProcessor):
    """Temporal attention whose edit video may attend with the source's maps."""

    def __init__(self, control: AttentionControl, layer: str):
        super().__init__()
        self.control, self.layer = control, layer

    def __call__(
        self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, video=None
    ):
        control = self.control
        # [videos · positions, frames, c]: the videos are the outer part of the batch.
        if not control.replaces_temporal(hidden_states.shape[0] // control.batch.videos):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        query, key, value = (split_heads(p(hidden_states), attn.heads) for p in (attn.to_q, attn.to_k, attn.to_v))
        if control.cached is None:
            query, key = control.take_source(query), control.take_source(key)
            return attention_output(attn, F.scaled_dot_product_attention(query, key, value), hidden_states)
        batch = control.batch
        query, key, value = (t.unflatten(0, (batch.videos, -1)) for t in (query, key, value))
        others = [index for index in range(batch.videos) if index != batch.edit]
        attended = torch.empty_like(query)
        if others:
            attended[others] = F.scaled_dot_product_attention(query[others], key[others], value[others])
        attended[batch.edit] = control.cached.get(self.layer, TEMPORAL) @ value[batch.edit]
        return attention_output(attn, attended.flatten(0, 1), hidden_states)


class ControlledCrossAttn(CrossAttnProcessor):
    """Text cross-attention whose maps are computed explicitly where word swap or the blend needs them."""

    def __init__(self, control: AttentionControl, layer: str):
        super().__init__()
        self.control, self.layer = control, layer

    def __call__(
        self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, video=None
    ):
        query_tokens = hidden_states.shape[1]
        if not self.control.wants_cross_maps(query_tokens):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        batch = self.control.batch
        query = split_heads(attn.to_q(hidden_states), attn.heads).unflatten(0, (batch.videos, -1))
        key = split_heads(attn.to_k(encoder_hidden_states), attn.heads).unflatten(0, (batch.videos, -1))
        value = split_heads(attn.to_v(encoder_hidden_states), attn.heads).unflatten(0, (batch.videos, -1))
        pair = [batch.edit] if batch.source is None else [batch.source, batch.edit]
        others = [index for index in range(batch.videos) if index not in pair]

        attended = query.new_empty(*query.shape[:-1], value.shape[-1])
        if others:
            attended[others] = F.scaled_dot_product_attention(query[others], key[others], value[others])
        scores = query[pair] @ key[pair].transpose(-1, -2) * attn.scale
        maps = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
        if batch.source is None:
            source_maps = self.control.cached.get(self.layer, CROSS)
            attended[batch.edit] = self.control.cross_maps(source_maps, maps[0], query_tokens) @ value[batch.edit]
        else:
            edit_maps = self.control.cross_maps(maps[0], maps[1], query_tokens)
            attended[pair] = torch.stack([maps[0], edit_maps]) @ value[pair]
        return attention_output(attn, attended.flatten(0, 1), hidden_states)


CONTROLLED = {"temporal": ControlledTemporalAttn, "frame": ControlledFrameAttn, "cross": ControlledCrossAttn}


def controlled(video_unet: VideoUNet, control: AttentionControl) -> AbstractContextManager:
    """Within the block, the video UNet's attention layers follow `control`."""
    return attention_processors(video_unet, lambda kind, layer, _: CONTROLLED[kind](control, layer))


def cross_attention_factors(video_unet: VideoUNet) -> set[int]:
    """How much each cross-attention layer's resolution is below the latents' (1, 2, 4, …)."""
    unet = video_unet.unet
    downs, ups = len(unet.down_blocks), len(unet.up_blocks)
    factors = set()
    for name in unet.attn_processors:
        if not name.endswith("attn2.processor"):
            continue
        place, _, rest = name.partition(".")
        if place == "down_blocks":
            factors.add(2 ** int(rest.split(".")[0]))
        elif place == "up_blocks":
            factors.add(2 ** (ups - 1 - int(rest.split(".")[0])))
        elif place == "mid_block":
            factors.add(2 ** (downs - 1))
    return factors
