"""The source's attention, recorded while inverting and read back by an edit that runs
one branch (docs/architecture.md, "Editing from the inversion"; FateZero's attention
fusion, Qi et al. 2023).

Prompt-to-Prompt runs a source branch beside the edit only to read its attention. The
inversion has already run the source prompt through the same model at the same
timesteps, unguided, as the source branch's conditional video does. So while inverting,
the source's attention that word swap and local blend will need is stored, step by step
and window by window, in fp16:

- cross-attention (`attn2`): the maps of the start token and the source prompt's words
  (the only columns word swap and the blend read), at every layer for the word-swap
  steps and at the blend layers for every step;
- frame attention (`attn1`, the layers --self-replace-layers names, self-replace steps): the layer's input, from
  which the edit recomputes the source's queries and keys with the same weights; the
  maps themselves would be ~19× larger (each frame has three frames' keys per query);
- temporal attention (self-replace steps): the maps, [positions, heads, F, F], smaller
  than the input they come from.

One file per step, `attention/<step>.safetensors`, keys `<window>/<layer>/<kind>`. The
edit reads one step at a time (memory of one step), and its source video is the clip's
inverted latents. With DDIM inversion the maps of step t come from ε evaluated at the
previous latents (the approximation inversion makes); with `--refine` they come from the
latents the edit's source branch would start the step from.
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.models.attention_processor import Attention
from safetensors import safe_open

from livecli.models.attention import (
    CrossAttnProcessor,
    FrameAttnProcessor,
    FrameChain,
    VideoLayout,
    attention_output,
    frame_attention_inputs,
    split_heads,
)
from livecli.models.video_unet import VideoUNet, attention_processors
from livecli.tensor_files import save_tensors

EARLIER_SELF_TOKENS = 32 * 32
"""Before --self-replace-layers, frame-attention maps were replaced at the layers with at
most this many query positions, whatever the frames' size (Prompt-to-Prompt's 32×32 at
512 px): what an inversion recorded before then stored."""


def self_replace_tokens(latent_size: tuple[int, int], layers: str) -> int:
    """The most query positions a frame-attention layer may have for --self-replace to give
    it the source's maps: 'coarse', fewer than the latents' (every layer below the UNet's
    top resolution: Prompt-to-Prompt's ≤ 32×32 at 512 px, FateZero's); 'all', every layer."""
    height, width = latent_size
    return height * width if layers == "all" else -(-height // 2) * -(-width // 2)


def differs_from_earlier(latent_size: tuple[int, int], tokens: int) -> bool:
    """Whether the frame-attention layers with at most `tokens` query positions are another
    set than the earlier rule's (at most EARLIER_SELF_TOKENS), at any level of the UNet."""
    height, width = latent_size
    while True:
        if (height * width <= tokens) != (height * width <= EARLIER_SELF_TOKENS):
            return True
        if height * width == 1:
            return False
        height, width = -(-height // 2), -(-width // 2)


CACHE_DTYPE = torch.float16
CROSS, FRAME, TEMPORAL = "cross", "frame", "temporal"


@dataclass(frozen=True)
class AttentionPlan:
    """What an inversion stores of the source's attention."""

    cross_steps: int
    """Steps [0, cross_steps) store every cross-attention layer's maps (word swap)."""
    self_steps: int
    """Steps [0, self_steps) store the frame- and temporal-attention inputs and maps."""
    words: int
    """Columns of the cross-attention maps kept: the start token and the prompt's words."""
    blend_tokens: int
    """Query positions of the blend layers, whose maps are stored at every step."""
    self_tokens: int = EARLIER_SELF_TOKENS
    """Frame attention is stored at the layers with at most this many query positions."""

    def covers(self, wanted: AttentionPlan) -> bool:
        """Whether what this plan stored is all that `wanted` needs."""
        return (
            self.cross_steps >= wanted.cross_steps
            and self.self_steps >= wanted.self_steps
            and self.words == wanted.words
            and self.blend_tokens == wanted.blend_tokens
            and (self.self_tokens >= wanted.self_tokens or not wanted.self_steps)
        )

    def as_facts(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_facts(cls, facts: dict | None) -> AttentionPlan | None:
        """The plan an inversion's record gives (one recorded before `self_tokens` stored the earlier rule's layers)."""
        if not facts:
            return None
        return cls(*(int(facts.get(f.name, f.default)) for f in dataclasses.fields(cls)))


@dataclass(frozen=True)
class AttentionLayer:
    """One attention layer of the video UNet, as the store sizes what it keeps of it."""

    kind: str
    query_tokens: int
    heads: int
    width: int
    """The width of the layer's input (what frame attention stores)."""


def attention_layers(video_unet: VideoUNet, latent_size: tuple[int, int]) -> list[AttentionLayer]:
    """Every attention layer of the video UNet for latents of `latent_size` (h, w): its
    kind, and its query positions at its block's resolution (halved, rounding up, per level)."""
    unet = video_unet.unet
    levels = len(unet.down_blocks)
    layers = []
    for name in unet.attn_processors:
        block, _, rest = name.partition(".")
        index = int(rest.split(".", 1)[0]) if block != "mid_block" else 0
        level = {"down_blocks": index, "mid_block": levels - 1, "up_blocks": levels - 1 - index}[block]
        height, width = latent_size
        for _ in range(level):
            height, width = -(-height // 2), -(-width // 2)
        attn = unet.get_submodule(name.removesuffix(".processor"))
        kind = TEMPORAL if ".temporal." in name else FRAME if name.endswith("attn1.processor") else CROSS
        layers.append(AttentionLayer(kind, height * width, attn.heads, attn.to_q.in_features))
    return layers


def stored_bytes(plan: AttentionPlan, layers: list[AttentionLayer], batches: list[int], steps: int) -> int:
    """What `SourceRecorder` will write for an inversion of `steps` steps whose windows run
    `batches` latents each (the window's frames and the latent prompt): the size to check
    the disk against before writing any of it."""
    size = CACHE_DTYPE.itemsize
    total = 0
    for step in range(steps):
        for batch in batches:
            for layer in layers:
                if layer.kind == CROSS and (step < plan.cross_steps or layer.query_tokens == plan.blend_tokens):
                    total += batch * layer.heads * layer.query_tokens * plan.words * size
                elif layer.kind == FRAME and step < plan.self_steps and layer.query_tokens <= plan.self_tokens:
                    total += batch * layer.query_tokens * layer.width * size
                elif layer.kind == TEMPORAL and step < plan.self_steps:
                    total += layer.query_tokens * layer.heads * batch * batch * size
    return total


def store_bytes(video_unet: VideoUNet, plan: AttentionPlan, latent_size: tuple[int, int], windows, steps: int) -> int:
    """`stored_bytes` of an inversion of latents of `latent_size` in `windows` (each with its
    `frames`; the latent prompt rides along)."""
    batches = [len(window.frames) + 1 for window in windows]
    return stored_bytes(plan, attention_layers(video_unet, latent_size), batches, steps)


def step_file(folder: Path, step: int) -> Path:
    return folder / f"{step:04d}.safetensors"


class _Steps:
    """The step and the window of it that the UNet runs now."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.window = -1

    def key(self, layer: str, kind: str) -> str:
        return f"{self.window}/{layer}/{kind}"


class SourceRecorder(_Steps):
    """Collects one step's source attention while inverting and writes it when the step ends."""

    def __init__(self, plan: AttentionPlan, folder: Path):
        super().__init__()
        self.plan = plan
        self.folder = folder
        self.tensors: dict[str, torch.Tensor] = {}
        self.bytes = 0

    def begin_step(self, step: int) -> None:
        """Before each UNet evaluation of `step`: a refined step evaluates again, and its
        last evaluation (at the refined latents) is what is kept."""
        if step != self.step:
            self.flush()
            self.step = step
        self.window = -1

    def focus(self, _window=None) -> None:
        """The next window of the step runs."""
        self.window += 1

    def flush(self) -> None:
        if self.tensors and self.step is not None:
            save_tensors(step_file(self.folder, self.step), self.tensors)
            self.bytes += sum(t.numel() * t.element_size() for t in self.tensors.values())
        self.tensors = {}

    def wants_cross(self, query_tokens: int) -> bool:
        return self.step < self.plan.cross_steps or query_tokens == self.plan.blend_tokens

    def wants_frame(self, query_tokens: int) -> bool:
        return self.step < self.plan.self_steps and query_tokens <= self.plan.self_tokens

    def wants_temporal(self) -> bool:
        return self.step < self.plan.self_steps

    def keep(self, layer: str, kind: str, tensor: torch.Tensor) -> None:
        self.tensors[self.key(layer, kind)] = tensor.detach().to("cpu", CACHE_DTYPE).contiguous()


class CachedSource(_Steps):
    """An inversion's stored source attention, read one step at a time by the edit."""

    def __init__(self, plan: AttentionPlan, files: dict[int, Path], device: torch.device, dtype: torch.dtype):
        super().__init__()
        self.plan = plan
        self.files = files
        """Step -> its (verified) file; steps that stored nothing are absent."""
        self.device, self.dtype = device, dtype
        self.chain = FrameChain()
        """The source's frame-attention keys handed from window to window, as the edit's."""
        self._tensors: dict[str, torch.Tensor] = {}

    def begin_step(self, step: int) -> None:
        self.step, self.window = step, -1
        self._tensors = {}
        if step in self.files:
            with safe_open(self.files[step], framework="pt") as handle:
                self._tensors = {name: handle.get_tensor(name) for name in handle.keys()}

    def focus(self, _window=None) -> None:
        self.window += 1
        if self.window == 0:
            self.chain = FrameChain()
        else:
            self.chain.next_window()

    def get(self, layer: str, kind: str) -> torch.Tensor:
        name = self.key(layer, kind)
        if name not in self._tensors:
            raise RuntimeError(f"the inversion stored no {kind} attention for {name!r} at step {self.step}")
        return self._tensors[name].to(self.device, self.dtype)

    def frame_query_key(self, attn: Attention, layer: str, video: VideoLayout) -> tuple[torch.Tensor, torch.Tensor]:
        """The source's frame-attention queries and keys, recomputed from its stored input."""
        links = video.links and dataclasses.replace(video.links, chain=self.chain)
        query, key, _ = frame_attention_inputs(attn, self.get(layer, FRAME), dataclasses.replace(video, links=links))
        return query, key


class RecordingFrameAttn(FrameAttnProcessor):
    def __init__(self, recorder: SourceRecorder, layer: str):
        self.recorder, self.layer = recorder, layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, video=None):
        if video is not None and self.recorder.wants_frame(hidden_states.shape[1]):
            self.recorder.keep(self.layer, FRAME, hidden_states)
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, video)


def explicit_attention(attn: Attention, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """softmax(Q Kᵀ · scale) in fp32, back in the queries' precision."""
    return (query @ key.transpose(-1, -2) * attn.scale).softmax(dim=-1, dtype=torch.float32).to(query.dtype)


class RecordingTemporalAttn:
    def __init__(self, recorder: SourceRecorder, layer: str, inner):
        self.recorder, self.layer, self.inner = recorder, layer, inner

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, video=None):
        if not self.recorder.wants_temporal():
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        query, key, value = (split_heads(p(hidden_states), attn.heads) for p in (attn.to_q, attn.to_k, attn.to_v))
        maps = explicit_attention(attn, query, key)
        self.recorder.keep(self.layer, TEMPORAL, maps)
        return attention_output(attn, maps @ value, hidden_states)


class RecordingCrossAttn(CrossAttnProcessor):
    def __init__(self, recorder: SourceRecorder, layer: str):
        super().__init__()
        self.recorder, self.layer = recorder, layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, video=None):
        if not self.recorder.wants_cross(hidden_states.shape[1]):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        query = split_heads(attn.to_q(hidden_states), attn.heads)
        key = split_heads(attn.to_k(encoder_hidden_states), attn.heads)
        value = split_heads(attn.to_v(encoder_hidden_states), attn.heads)
        maps = explicit_attention(attn, query, key)
        self.recorder.keep(self.layer, CROSS, maps[..., : self.recorder.plan.words])
        return attention_output(attn, maps @ value, hidden_states)


def recording(video_unet: VideoUNet, recorder: SourceRecorder) -> AbstractContextManager:
    """Within the block, the video UNet's attention layers also hand `recorder` what it stores."""

    def make(kind: str, layer: str, processor):
        if kind == "temporal":
            return RecordingTemporalAttn(recorder, layer, processor)
        return (RecordingFrameAttn if kind == "frame" else RecordingCrossAttn)(recorder, layer)

    return attention_processors(video_unet, make)
