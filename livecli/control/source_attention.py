"""The source's attention, recorded while inverting and read back by an edit that runs
one branch (docs/architecture.md, "Editing from the inversion"; FateZero's attention
fusion, Qi et al. 2023).

Prompt-to-Prompt runs a source branch beside the edit only to read its attention. The
inversion has already run the source prompt through the same model at the same
timesteps, unguided, as the source branch's conditional video does. So while inverting,
the source's attention that word swap and local blend will need is stored, step by step
and window by window, in fp16:

- cross-attention (`attn2`): the maps of the start token and the source prompt's words
  (the only columns word swap and the blend read), at the layers --cross-replace-layers
  names for the word-swap steps and at the blend layers for every step;
- frame attention (`attn1`, the layers --self-replace-layers names, self-replace steps): the layer's input, from
  which the edit recomputes the source's queries and keys with the same weights; the
  maps themselves would be ~19× larger (each frame has three frames' keys per query);
- temporal attention (the layers --temporal-replace-layers names, self-replace steps):
  the maps, [positions, heads, F, F], smaller than the input they come from.

Only what the edit replaces is stored, so the layer options decide the store's size: at
512 px the 64×64 layers hold three quarters of the cross-attention and temporal bytes,
and frame attention's inputs at 32×32 most of the rest (`bench/attention_store_size.py`).

One file per step and window, `attention/<step>-<window>.safetensors`, keys
`<window>/<layer>/<kind>` (an earlier store kept a step's windows in one file,
`<step>.safetensors`, and is read as it is). The recorder writes a window's attention when
the window ends and the edit reads one window at a time, so either holds one window's maps,
however long the clip; the edit's source video is the clip's inverted latents. With DDIM
inversion the maps of step t come from ε evaluated at the previous latents (the
approximation inversion makes); with `--refine` they come from the latents the edit's
source branch would start the step from.
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


def layer_tokens(latent_size: tuple[int, int], layers: str) -> int:
    """The most query positions a layer may have for its attention to be replaced by the
    source's under a --*-replace-layers rule: 'all', every layer; 'coarse', every layer
    below the UNet's top resolution (Prompt-to-Prompt's ≤ 32×32 at 512 px, FateZero's);
    'none', no layer."""
    height, width = latent_size
    return {"all": height * width, "coarse": -(-height // 2) * -(-width // 2), "none": 0}[layers]


EVERY_LAYER = 1 << 30
"""A count of query positions above any layer's: what an inversion recorded before the
cross-attention and temporal layer options stored (every layer)."""


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
    """Steps [0, cross_steps) store the word-swap layers' cross-attention maps."""
    self_steps: int
    """Steps [0, self_steps) store the frame-attention inputs and the temporal maps."""
    words: int
    """Columns of the cross-attention maps kept: the start token and the prompt's words."""
    blend_tokens: int
    """Query positions of the blend layers, whose maps are stored at every step (0: no blend)."""
    self_tokens: int = EARLIER_SELF_TOKENS
    """Frame attention is stored at the layers with at most this many query positions."""
    cross_tokens: int = EVERY_LAYER
    """Word swap's cross-attention is stored at the layers with at most this many query positions."""
    temporal_tokens: int = EVERY_LAYER
    """Temporal attention is stored at the layers with at most this many positions."""

    def covers(self, wanted: AttentionPlan) -> bool:
        """Whether what this plan stored is all that `wanted` needs."""
        return (
            self.cross_steps >= wanted.cross_steps
            and self.self_steps >= wanted.self_steps
            and self.words == wanted.words
            and (self.blend_tokens == wanted.blend_tokens or not wanted.blend_tokens)
            and (self.cross_tokens >= wanted.cross_tokens or not wanted.cross_steps)
            and (self.self_tokens >= wanted.self_tokens or not wanted.self_steps)
            and (self.temporal_tokens >= wanted.temporal_tokens or not wanted.self_steps)
        )

    def stores_cross(self, step: int, query_tokens: int) -> bool:
        """Word swap's maps at this step and layer, or the blend's (every step)."""
        return (step < self.cross_steps and query_tokens <= self.cross_tokens) or query_tokens == self.blend_tokens

    def stores_frame(self, step: int, query_tokens: int) -> bool:
        return step < self.self_steps and query_tokens <= self.self_tokens

    def stores_temporal(self, step: int, positions: int) -> bool:
        return step < self.self_steps and positions <= self.temporal_tokens

    def as_facts(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_facts(cls, facts: dict | None) -> AttentionPlan | None:
        """The plan an inversion's record gives (one recorded before `self_tokens` stored the
        earlier rule's layers; before `cross_tokens` and `temporal_tokens`, every layer)."""
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
                if layer.kind == CROSS and plan.stores_cross(step, layer.query_tokens):
                    total += batch * layer.heads * layer.query_tokens * plan.words * size
                elif layer.kind == FRAME and plan.stores_frame(step, layer.query_tokens):
                    total += batch * layer.query_tokens * layer.width * size
                elif layer.kind == TEMPORAL and plan.stores_temporal(step, layer.query_tokens):
                    total += layer.query_tokens * layer.heads * batch * batch * size
    return total


def store_bytes(video_unet: VideoUNet, plan: AttentionPlan, latent_size: tuple[int, int], windows, steps: int) -> int:
    """`stored_bytes` of an inversion of latents of `latent_size` in `windows` (each with its
    `frames`; the latent prompt rides along)."""
    batches = [len(window.frames) + 1 for window in windows]
    return stored_bytes(plan, attention_layers(video_unet, latent_size), batches, steps)


def step_file(folder: Path, step: int, window: int) -> Path:
    """Where one window's attention of one step is stored: `0003-001.safetensors`."""
    return folder / f"{step:04d}-{window:03d}.safetensors"


def file_part(name: str | Path) -> tuple[int, int | None]:
    """(step, window) a store's file holds; an earlier store's `0003.safetensors` holds
    every window of its step (window None)."""
    step, _, window = Path(name).stem.partition("-")
    return int(step), int(window) if window else None


class _Steps:
    """The step and the window of it that the UNet runs now."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.window = -1

    def key(self, layer: str, kind: str) -> str:
        return f"{self.window}/{layer}/{kind}"


class SourceRecorder(_Steps):
    """Collects one window's source attention while inverting and writes it when the window
    ends: memory of one window's maps, however long the clip."""

    def __init__(self, plan: AttentionPlan, folder: Path):
        super().__init__()
        self.plan = plan
        self.folder = folder
        self.tensors: dict[str, torch.Tensor] = {}
        self.bytes = 0
        self.final = True
        """Whether the UNet's evaluation now running is its step's last, whose attention is kept."""

    def begin_step(self, step: int, final: bool = True) -> None:
        """Before each UNet evaluation of `step`. A refined step evaluates again at the
        latents just found: only its last evaluation (`final`) is recorded, and the earlier
        ones run as an unrecorded inversion does."""
        self.flush()
        self.step, self.window, self.final = step, -1, final

    def focus(self, _window=None) -> None:
        """The next window of the step runs."""
        self.flush()
        self.window += 1

    def flush(self) -> None:
        if self.tensors and self.step is not None:
            save_tensors(step_file(self.folder, self.step, self.window), self.tensors)
            self.bytes += sum(t.numel() * t.element_size() for t in self.tensors.values())
        self.tensors = {}

    def wants_cross(self, query_tokens: int) -> bool:
        return self.final and self.plan.stores_cross(self.step, query_tokens)

    def wants_frame(self, query_tokens: int) -> bool:
        return self.final and self.plan.stores_frame(self.step, query_tokens)

    def wants_temporal(self, positions: int) -> bool:
        return self.final and self.plan.stores_temporal(self.step, positions)

    def keep(self, layer: str, kind: str, tensor: torch.Tensor) -> None:
        self.tensors[self.key(layer, kind)] = tensor.detach().to("cpu", CACHE_DTYPE).contiguous()


class CachedSource(_Steps):
    """An inversion's stored source attention, read one window of one step at a time by the edit."""

    def __init__(
        self, plan: AttentionPlan, files: dict[tuple[int, int | None], Path], device: torch.device, dtype: torch.dtype
    ):
        super().__init__()
        self.plan = plan
        self.files = files
        """(step, window) -> its (verified) file (`file_part`); what stored nothing is absent."""
        self.device, self.dtype = device, dtype
        self.chain = FrameChain()
        """The source's frame-attention keys handed from window to window, as the edit's."""
        self._tensors: dict[str, torch.Tensor] = {}

    @classmethod
    def of(cls, plan: AttentionPlan, paths, device: torch.device, dtype: torch.dtype) -> CachedSource:
        """The store whose files are `paths`."""
        return cls(plan, {file_part(path): path for path in paths}, device, dtype)

    def begin_step(self, step: int) -> None:
        self.step, self.window = step, -1
        self._tensors = self._read((step, None))  # an earlier store: the whole step in one file

    def focus(self, _window=None) -> None:
        self.window += 1
        if (self.step, None) not in self.files:
            self._tensors = self._read((self.step, self.window))
        if self.window == 0:
            self.chain = FrameChain()
        else:
            self.chain.next_window()

    def _read(self, part: tuple[int, int | None]) -> dict[str, torch.Tensor]:
        if part not in self.files:
            return {}
        with safe_open(self.files[part], framework="pt") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}

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
        # [positions, frames, c]: the inversion runs one video.
        if not self.recorder.wants_temporal(hidden_states.shape[0]):
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
