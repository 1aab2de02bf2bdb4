"""The source and target prompts of an edit, and how their tokens line up (paper §3.4).

`--replace A=B` swaps the source word A for B (`<tok>` is the learned token; B may be
several words). Prompt-to-Prompt's word swap needs, for every target token, the source
tokens whose cross-attention maps it takes over; words may tokenize to different
lengths, so the alignment is made word by word:

- a kept word (same text in both prompts) maps token for token;
- a replaced word that the user still asks to keep maps each of its new tokens to the
  mean of the old word's tokens: weights 1 / (the source word's token count), summing to
  1. Prompt-to-Prompt's mapper divides by the target word's token count instead (and maps
  token for token when the counts match), so there a one-token word replaced by three
  tokens hands each a third of its map; the mean keeps every new token's map at the
  scale of the map it replaces, whatever the two lengths;
- the start token maps to itself; every other target token keeps its own map.

The result is Prompt-to-Prompt's `mapper` (source tokens × target tokens) and `alpha`,
1 on the target tokens that take source maps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from livecli.config import EditConfig
from livecli.errors import InputError
from livecli.fields import SettingError
from livecli.words import TOKEN_ALIAS, prompt_words, replace_word


@dataclass(frozen=True)
class Replacement:
    old: str
    new: str

    @classmethod
    def parse(cls, text: str) -> Replacement:
        """`A=B` -> Replacement("a", "B"); A is one word of the source prompt."""
        old, sep, new = text.partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise SettingError(
                EditConfig,
                "{replace:{text!r}} is not A=B",
                "e.g. {replace:motorcycle=<tok>} or {replace:car='red sports car'}",
                text=text,
            )
        if len(old.split()) != 1:
            raise SettingError(
                EditConfig,
                "{replace:{text!r}}: A must be one word of the prompt, got {old!r}",
                "replace one word at a time",
                text=text,
                old=old,
            )
        return cls(old.lower(), new)


def split_words(text: str) -> list[str]:
    """WORDS of --keep and --blend: separated by spaces or commas."""
    return [word for word in re.split(r"[\s,]+", text.strip()) if word]


def edit_words(config: EditConfig) -> tuple[list[Replacement], list[str] | None, list[str] | None]:
    """--replace, --keep and --blend, parsed."""
    keep = split_words(config.keep) if config.keep is not None else None
    blend = split_words(config.blend) if config.blend is not None else None
    return [Replacement.parse(text) for text in config.replace], keep, blend


@dataclass(frozen=True)
class WordSpan:
    text: str
    """The prompt's whitespace-separated piece, as written."""
    words: tuple[str, ...]
    """Its words, lower-cased (a piece like "man's" has two)."""
    start: int
    stop: int
    """Its token positions in the encoded prompt (the start token is position 0)."""


def word_spans(tokenizer, prompt: str) -> list[WordSpan]:
    """Each whitespace-separated piece of `prompt` with the positions of its tokens.

    CLIP's tokenizer splits on whitespace before BPE, so the pieces tokenized one by one
    give the prompt's tokens; this is checked, not assumed.
    """
    spans = _spans(tokenizer, prompt)
    position = spans[-1].stop if spans else 1
    whole = tokenizer(prompt, add_special_tokens=False).input_ids
    if position - 1 != len(whole):
        raise InputError(
            f"cannot line up the tokens of {prompt!r} word by word", hint="write the prompt with plain words and spaces"
        )
    if position + 1 > tokenizer.model_max_length:
        raise _too_long(prompt, position + 1, tokenizer.model_max_length)
    return spans


def check_prompt_fits(tokenizer, prompt: str, word: str, what: str = "the prompt") -> None:
    """`prompt`, with its start and end tokens, within what the text encoder reads (77 for
    CLIP): past that the text is cut off, and a word there (the object, or the learned
    token) is never seen. Checked where a prompt is first given (prepare, train), not after
    the training time is spent."""
    spans = _spans(tokenizer, prompt)
    length = (spans[-1].stop if spans else 1) + 1  # and the end token
    if length > tokenizer.model_max_length:
        position = next((span.start for span in spans if word.lower() in (span.text.lower(), *span.words)), None)
        raise _too_long(prompt, length, tokenizer.model_max_length, what, word, position)


def _spans(tokenizer, prompt: str) -> list[WordSpan]:
    """Each whitespace-separated piece with the token positions it takes after the start token."""
    spans, position = [], 1
    for piece in prompt.split():
        ids = tokenizer(piece, add_special_tokens=False).input_ids
        spans.append(WordSpan(piece, tuple(prompt_words(piece)), position, position + len(ids)))
        position += len(ids)
    return spans


def _too_long(
    prompt: str, length: int, limit: int, what: str = "the prompt", word: str = "", position: int | None = None
) -> InputError:
    shown = prompt if len(prompt) <= 60 else prompt[:57] + "..."
    cut = position is not None and position >= limit - 1  # the end token takes the last place
    lost = f"; {word!r} is token {position}, which it never sees" if cut else ""
    return InputError(
        f"{what} {shown!r} is {length} tokens long and the text encoder reads {limit}{lost}",
        hint=f"shorten it to at most {limit - 2} tokens (about {(limit - 2) * 3 // 4} words)",
    )


@dataclass(frozen=True)
class EditPrompts:
    source: str
    target: str
    mapper: torch.Tensor
    """[77, 77]: target token j takes Σ_i mapper[i, j] · (source map of token i)."""
    alpha: torch.Tensor
    """[77]: 1 where a target token takes the source's map, else 0."""
    keep: tuple[str, ...]
    """The source words whose maps the edit keeps."""
    source_blend: tuple[int, ...]
    target_blend: tuple[int, ...]
    """Token positions of the blend words in each prompt."""


def _check_words(name: str, words: list[str], allowed: set[str], prompt_list: str) -> None:
    """The words of --keep or --blend (`name`, the field) are among `allowed`."""
    missing = [word for word in words if word not in allowed]
    if missing:
        raise SettingError(
            EditConfig,
            f"{{{name}}}: {{missing}} not in {{prompts}}",
            "the words are: {allowed}",
            missing=", ".join(repr(w) for w in missing),
            prompts=prompt_list,
            allowed=", ".join(sorted(allowed)),
        )


def target_prompt(source: str, replacements: list[Replacement], token: str) -> str:
    """The source prompt with every replacement made (`<tok>` becomes the learned token)."""
    words = set(prompt_words(source))
    olds = [r.old for r in replacements]
    twice = sorted({old for old in olds if olds.count(old) > 1})
    if twice:
        raise SettingError(
            EditConfig, "{replace} names {word!r} more than once", "give each word one replacement", word=twice[0]
        )
    for replacement in replacements:
        if replacement.old not in words:
            raise SettingError(
                EditConfig,
                "{replace:{pair}}: {old!r} is not a word of the prompt {source!r}",
                "the prompt's words are: {words}",
                pair=f"{replacement.old}={replacement.new}",
                old=replacement.old,
                source=source,
                words=", ".join(prompt_words(source)),
            )
    return apply_replacements(source, replacements, token)


def apply_replacements(text: str, replacements: list[Replacement], token: str) -> str:
    """`text` with every replacement made, `<tok>` as the learned token."""
    for replacement in replacements:
        text = replace_word(text, replacement.old, replacement.new.replace(TOKEN_ALIAS, token))
    return text


def check_edit_words(
    source: str, replacements: list[Replacement], token: str, keep: list[str] | None, blend: list[str] | None
) -> str:
    """Validate --replace, --keep and --blend against the prompts without a tokenizer; the target prompt."""
    target = target_prompt(source, replacements, token)
    source_words, target_words = set(prompt_words(source)), set(prompt_words(target))
    if keep:
        _check_words("keep", [w.lower() for w in keep], source_words, f"the source prompt {source!r}")
    if blend:
        named = [w.replace(TOKEN_ALIAS, token).lower() for w in blend]
        _check_words(
            "blend", named, source_words | target_words, f"the source prompt {source!r} nor the target {target!r}"
        )
    return target


def _blend_tokens(
    span: WordSpan,
    pieces: list[str],
    target_ids: list[list[int]],
    new_start: int,
    replaced: set[str],
    blend: set | None,
) -> tuple[list[int], list[int]]:
    """The token positions one source word adds to the blend, in the source and the target:
    a replaced word and what replaces it (without --blend), else the words --blend names."""
    if blend is None:
        if replaced.intersection(span.words):
            return list(range(span.start, span.stop)), list(range(new_start, new_start + sum(map(len, target_ids))))
        return [], []
    source = list(range(span.start, span.stop)) if blend.intersection(span.words) else []
    target, start = [], new_start
    for piece, ids in zip(pieces, target_ids, strict=False):
        if blend.intersection(prompt_words(piece)):
            target.extend(range(start, start + len(ids)))
        start += len(ids)
    return source, target


def edit_prompts(
    tokenizer,
    source: str,
    replacements: list[Replacement],
    token: str,
    keep: list[str] | None = None,
    blend: list[str] | None = None,
) -> EditPrompts:
    """Target prompt, token alignment and blend tokens of an edit.

    keep: source words whose cross-attention maps the edit takes over (default: every
    word that is not replaced); blend: words whose maps make the local-blend mask
    (default: the replaced words and what replaces them).
    """
    target = check_edit_words(source, replacements, token, keep, blend)
    check_prompt_fits(tokenizer, target, token, "the target prompt that --replace makes")
    replaced = {r.old for r in replacements}
    source_spans = word_spans(tokenizer, source)
    length = tokenizer.model_max_length
    mapper = torch.zeros(length, length)
    mapper[0, 0] = 1.0  # the start token: the same in both prompts
    keep_words = {w.lower() for w in keep} if keep is not None else set(prompt_words(source)) - replaced
    kept: list[str] = []
    source_blend: list[int] = []
    target_blend: list[int] = []
    blend_words = {w.replace(TOKEN_ALIAS, token).lower() for w in blend} if blend is not None else None

    position = 1
    for span in source_spans:
        pieces = apply_replacements(span.text, replacements, token).split()
        target_ids = [tokenizer(piece, add_special_tokens=False).input_ids for piece in pieces]
        new_start, new_stop = position, position + sum(len(ids) for ids in target_ids)
        changed = pieces != [span.text]
        if keep_words.intersection(span.words):
            kept.extend(w for w in span.words if w in keep_words)
            if changed:  # each new token takes the mean of the old word's maps
                mapper[span.start : span.stop, new_start:new_stop] = 1.0 / (span.stop - span.start)
            else:
                for offset in range(span.stop - span.start):
                    mapper[span.start + offset, new_start + offset] = 1.0
        blended = _blend_tokens(span, pieces, target_ids, new_start, replaced, blend_words)
        source_blend.extend(blended[0])
        target_blend.extend(blended[1])
        position = new_stop
    if word_spans(tokenizer, target)[-1].stop != position:
        raise InputError(
            f"cannot line up the tokens of {target!r} with the source's",
            hint="write the replacement with plain words and spaces",
        )
    alpha = (mapper.sum(0) > 0).float()
    return EditPrompts(
        source, target, mapper, alpha, tuple(dict.fromkeys(kept)), tuple(source_blend), tuple(target_blend)
    )
