"""The words of a prompt: how `live` splits, matches and replaces them, the token's strings,
and the byte-level characters CLIP's tokenizers spell words with.

Below the configs (which check that --object is a word of --prompt), the prompt
alignment of an edit and the text model (which put the learned token in a word's place).
"""

from __future__ import annotations

import re

DEFAULT_TOKEN = "<@#$>"
"""The placeholder string that learns the reference object (the paper's)."""
TOKEN_ALIAS = "<tok>"
"""Stands for the project's learned token in --replace, --keep, --blend and --reference-prompt."""


def prompt_words(prompt: str) -> list[str]:
    """The prompt's words, lower-cased, punctuation dropped."""
    return re.findall(r"[\w<>@#$*-]+", prompt.lower())


def prompt_has_word(prompt: str, word: str) -> bool:
    return word.lower() in prompt_words(prompt)


def replace_word(prompt: str, word: str, replacement: str) -> str:
    """`prompt` with every whole-word occurrence of `word` (any case) replaced."""
    return re.sub(rf"(?<![\w]){re.escape(word)}(?![\w])", replacement, prompt, flags=re.IGNORECASE)


def byte_characters() -> dict[int, str]:
    """CLIP's reversible map from bytes to printable characters (GPT-2's byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=False))


def has_control_character(text: str) -> bool:
    """Whether `text` holds a character no one types in a name or path: a NUL, a newline,
    a tab, another C0 or C1 control."""
    return any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)
