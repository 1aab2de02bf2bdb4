"""The `shapes` model's parts, shaped like Stable Diffusion v1.x but small: what
`bench/shapes/train.py` trains from scratch (development tooling, not in the wheel).

A VAE that downsamples ×4 into 4 latent channels (64×64 scenes become 16×16 latents), a
UNet with cross-attention at 16×16 and 8×8 and a cross-attention mid block, a 3-layer
CLIP text encoder, a CLIP tokenizer whose vocabulary holds each caption word as one
token, and SD's noise schedule.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from livecli.shapes.scenes import caption_words
from livecli.words import byte_characters

TEXT_WIDTH = 128
MAX_TOKENS = 77
"""As SD's tokenizer: the edit's attention maps and word indices assume its 77 positions."""


def vocabulary(words: list[str]) -> tuple[dict[str, int], list[str]]:
    """A BPE vocabulary and merge list that read every word of `words` as one token.

    Each byte alone and word-final keeps any other text readable, letter by letter. The
    merges are learnt as BPE learns them (the most frequent pair first, ties by name) until
    every word is whole: a tokenizer applying them by rank then retraces the same steps.
    """
    symbols = list(byte_characters().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    pieces = {word: [*word[:-1], word[-1] + "</w>"] for word in words}
    merges: list[str] = []
    while True:
        counts: dict[tuple[str, str], int] = {}
        for parts in pieces.values():
            for pair in zip(parts, parts[1:], strict=False):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        left, right = min(counts, key=lambda pair: (-counts[pair], pair))
        for word, parts in pieces.items():
            merged, k = [], 0
            while k < len(parts):
                if k + 1 < len(parts) and (parts[k], parts[k + 1]) == (left, right):
                    merged.append(left + right)
                    k += 2
                else:
                    merged.append(parts[k])
                    k += 1
            pieces[word] = merged
        merges.append(f"{left} {right}")
        if left + right not in tokens:
            tokens.append(left + right)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, merges


def build_tokenizer():
    from transformers import CLIPTokenizer

    vocab, merges = vocabulary(caption_words())
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "vocab.json").write_text(json.dumps(vocab))
        (Path(scratch) / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        return CLIPTokenizer.from_pretrained(scratch, model_max_length=MAX_TOKENS)


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        mid_block_add_attention=False,
        sample_size=64,
    )


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(48, 96, 128),
        layers_per_block=1,
        norm_num_groups=16,
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=4,
    )


def build_text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = tokenizer.get_vocab()
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=TEXT_WIDTH,
            intermediate_size=2 * TEXT_WIDTH,
            num_hidden_layers=3,
            num_attention_heads=4,
            max_position_embeddings=MAX_TOKENS,
            projection_dim=TEXT_WIDTH,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
