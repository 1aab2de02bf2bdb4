"""Prompts and the learned token (textual inversion, Gal et al. 2022, as LIVE uses it).

The placeholder token (`<@#$>` by default) is added to the tokenizer and given a row in
the text encoder's embedding matrix, initialised from the object word's embedding. While
training, that row is not a row of the matrix but a separate parameter swapped into the
embedding lookup's output (`learned_token`), so no other row can change: not by a
gradient, not by weight decay. `token.safetensors` is `{token: embedding}`, the format
diffusers' `load_textual_inversion` reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from livecli.errors import ConfigError, InputError
from livecli.tensor_files import save_tensors
from livecli.words import DEFAULT_TOKEN


@dataclass(frozen=True)
class Placeholder:
    token: str
    id: int
    """Its id in the tokenizer, after `add_placeholder`."""
    init: torch.Tensor
    """The object word's first sub-token embedding, the learned embedding's start."""


def tokenizer_knows(tokenizer, token: str) -> bool:
    """Whether `token` already means something: an added token or one vocabulary entry."""
    vocab = tokenizer.get_vocab()
    return token in vocab or f"{token.lower()}</w>" in vocab or token in tokenizer.get_added_vocab()


def add_placeholder(tokenizer, text_encoder, token: str, init_word: str) -> Placeholder:
    """Add `token` to the tokenizer and a row for it to the text encoder, set to `init_word`'s
    embedding (the mean of its tokens' when the tokenizer splits it)."""
    if tokenizer_knows(tokenizer, token):
        raise ConfigError(
            f"the tokenizer already knows --token {token!r}, so it cannot become the learned object",
            hint=f"pick a rare string it does not know, e.g. --token '{DEFAULT_TOKEN}'",
        )
    init_ids = tokenizer(init_word, add_special_tokens=False).input_ids
    if not init_ids:
        raise InputError(
            f"the word {init_word!r} that the token starts from gives no token",
            hint="pass a real word with --init-word or --object",
        )
    tokenizer.add_tokens(token)
    token_id = tokenizer.convert_tokens_to_ids(token)
    text_encoder.resize_token_embeddings(len(tokenizer))
    weight = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[token_id] = weight[init_ids].mean(dim=0)
    return Placeholder(token, token_id, weight[token_id].detach().clone())


def install_token(tokenizer, text_encoder, token: str, vector: torch.Tensor) -> int:
    """Add a learned token for inference: its id, whose embedding row is now `vector`."""
    tokenizer.add_tokens(token)
    token_id = tokenizer.convert_tokens_to_ids(token)
    text_encoder.resize_token_embeddings(len(tokenizer))
    weight = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[token_id] = vector.to(device=weight.device, dtype=weight.dtype)
    return token_id


def tokenize(tokenizer, prompts: list[str]) -> torch.Tensor:
    return tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def encode(text_encoder, ids: torch.Tensor) -> torch.Tensor:
    """The per-token embeddings Stable Diffusion conditions on: [n, 77, dim]."""
    return text_encoder(ids.to(text_encoder.device))[0]


@contextmanager
def learned_token(text_encoder, token_id: int, vector: torch.Tensor) -> Iterator[None]:
    """Within the block, the embedding lookup returns `vector` wherever `token_id` appears."""
    embedding = text_encoder.get_input_embeddings()

    def swap(module, args, output):
        hit = (args[0] == token_id).unsqueeze(-1)
        return torch.where(hit, vector.to(output.dtype), output)

    handle = embedding.register_forward_hook(swap)
    try:
        yield
    finally:
        handle.remove()


def save_token(path: Path, token: str, vector: torch.Tensor) -> None:
    save_tensors(
        path, {token: vector.detach().float().cpu().contiguous()}, metadata={"format": "diffusers textual inversion"}
    )


def load_token(path: Path) -> tuple[str, torch.Tensor]:
    ((token, vector),) = load_file(path).items()
    return token, vector
