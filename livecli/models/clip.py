"""The CLIP model that `live eval` scores with: a hub id, a local folder, or `tiny`.

`ClipEmbedder` turns texts and images into unit-length CLIP embeddings, batched and
without gradients; every metric of `livecli.metrics` is a cosine between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from PIL import Image

from livecli.errors import ModelError, reason
from livecli.models.loading import download_snapshot, local_revision, looks_like_path, quiet_libraries
from livecli.models.tiny import TINY_CLIP_VERSION, tiny_clip_dir

_HUB_FILES = [
    "config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
]
_HUB_WEIGHTS = [["model.safetensors"], ["pytorch_model.bin"]]
IMAGES_PER_BATCH = 16


@dataclass(frozen=True)
class ClipSource:
    id: str
    kind: Literal["tiny", "folder", "hub"]
    path: Path
    revision: str

    @property
    def key(self) -> str:
        """What fingerprints record: the model's location and revision."""
        return f"{self.path if self.kind == 'folder' else self.id}@{self.revision}"


def resolve_clip(ref: str) -> ClipSource:
    """Where `--clip-model REF` lies on disk, downloading a hub id into the HF cache if needed."""
    quiet_libraries()
    if ref == "tiny":
        return ClipSource("tiny", "tiny", tiny_clip_dir(), TINY_CLIP_VERSION)
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() or not (path / "preprocessor_config.json").is_file():
            raise ModelError(
                f"{path} is not a CLIP model folder (it needs config.json and preprocessor_config.json)",
                hint="pass the folder that CLIPModel.save_pretrained and its processor wrote, or a hub id",
            )
        return ClipSource(ref, "folder", path.resolve(), local_revision(path))
    if looks_like_path(ref) or path.exists():
        raise ModelError(f"CLIP model {ref} not found: no such folder", hint="check the path passed to --clip-model")
    folder = download_snapshot(
        ref,
        None,
        _HUB_FILES,
        _HUB_WEIGHTS,
        what="CLIP model",
        offline_hint=(
            f"with no network, download it elsewhere and pass its folder: --clip-model /path/to/{ref.split('/')[-1]}"
        ),
    )
    if folder is None:
        raise ModelError(f"{ref!r} has no PyTorch CLIP weights", hint="pass a CLIP model in transformers format")
    return ClipSource(ref, "hub", folder, folder.name)


class ClipEmbedder:
    """Unit-length CLIP embeddings of texts and PIL images."""

    def __init__(self, model, tokenizer, processor, device: torch.device, dtype: torch.dtype):
        self.model, self.tokenizer, self.processor = model, tokenizer, processor
        self.device, self.dtype = device, dtype

    @torch.inference_mode()
    def texts(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        )
        features = self.model.get_text_features(
            input_ids=tokens.input_ids.to(self.device), attention_mask=tokens.attention_mask.to(self.device)
        )
        return _unit(features)

    @torch.inference_mode()
    def images(self, images: list[Image.Image]) -> torch.Tensor:
        embeddings = []
        for first in range(0, len(images), IMAGES_PER_BATCH):
            batch = [image.convert("RGB") for image in images[first : first + IMAGES_PER_BATCH]]
            pixels = self.processor(images=batch, return_tensors="pt").pixel_values
            embeddings.append(_unit(self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))))
        return torch.cat(embeddings)


def _unit(features) -> torch.Tensor:
    """transformers 5 wraps the projected embeddings in an output object; 4.x returns them bare."""
    embeddings = features if torch.is_tensor(features) else features.pooler_output
    embeddings = embeddings.float()
    return embeddings / embeddings.norm(dim=-1, keepdim=True)


def load_clip(source: ClipSource, device: torch.device, dtype: torch.dtype) -> ClipEmbedder:
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    quiet_libraries()
    try:
        model = CLIPModel.from_pretrained(source.path, torch_dtype=dtype)
        tokenizer = CLIPTokenizer.from_pretrained(source.path)
        processor = CLIPImageProcessor.from_pretrained(source.path)
    except Exception as exc:  # transformers raises many kinds for a bad folder
        raise ModelError(
            f"cannot load the CLIP model {source.id}: {reason(exc)}",
            hint="pass a CLIP model in transformers format (e.g. openai/clip-vit-large-patch14) with --clip-model",
        ) from None
    return ClipEmbedder(model.to(device).eval().requires_grad_(False), tokenizer, processor, device, dtype)
