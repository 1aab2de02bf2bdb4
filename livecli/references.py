"""The reference images of a project: one or several pictures of the new object, each with
an optional mask of where the object is in it.

`live train clip.mp4 a.jpg b.jpg c.jpg`, or `--reference DIR` (every image in the folder,
in natural order), and `--reference-mask PATH` once per image. Without a mask, a PNG's
(or WebP's) alpha channel is the mask; without either, the whole picture is the object,
as it always was. The image objective weights its loss to the mask (objectives.py), so
the photo's background and the framing's mirrored margins stay out of the learned token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from livecli.config import ReferenceMasking
from livecli.errors import ConfigError, InputError
from livecli.video import IMAGE_SUFFIXES, natural_key, shown_path, source_problem

MASKING_WORDS = get_args(ReferenceMasking)
"""--reference-mask's words instead of files: the training's `reference_mask` (config.py)."""
MAX_REFERENCES = 16
"""More pictures than this teach the token nothing more, and each is encoded and kept."""


@dataclass(frozen=True)
class References:
    """The reference images, in order (the first is the one reports and contact sheets show),
    and per image its mask file, or None (its alpha channel, if any, is then the mask)."""

    images: tuple[Path, ...]
    masks: tuple[Path | None, ...] = ()

    def __post_init__(self) -> None:
        if not self.masks:
            object.__setattr__(self, "masks", (None,) * len(self.images))

    @classmethod
    def of(cls, image: Path | References) -> References:
        return image if isinstance(image, References) else cls((Path(image),))

    @property
    def first(self) -> Path:
        return self.images[0]

    @property
    def single(self) -> bool:
        """One image and no mask file: a project as every earlier version made it."""
        return len(self.images) == 1 and self.masks[0] is None

    def resolved(self) -> References:
        return References(
            tuple(image.resolve() for image in self.images),
            tuple(None if mask is None else mask.resolve() for mask in self.masks),
        )


def gather(
    images: list[Path] | tuple[Path, ...],
    folder: Path | None = None,
    masks: list[Path] | tuple[Path, ...] = (),
    what: str = "IMAGE",
) -> References:
    """The references a command was given: IMAGE arguments and/or `--reference DIR`, and
    `--reference-mask` files, one per image in the same order. Every problem is one line."""
    found = list(images)
    if folder is not None:
        problem = source_problem(folder, folder_allowed=True)
        if problem or not folder.is_dir():
            raise InputError(
                f"--reference {shown_path(folder)} {problem or 'is not a folder'}",
                hint="pass a folder of reference images (or the images themselves as arguments)",
            )
        inside = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
            key=natural_key,
        )
        if not inside:
            raise InputError(
                f"--reference {shown_path(folder)} holds no image",
                hint=f"put the reference pictures there ({', '.join(sorted(IMAGE_SUFFIXES))})",
            )
        found += inside
    if not found:
        raise ConfigError(
            f"no reference image: pass {what} or --reference DIR", hint="e.g. live train clip.mp4 dog.jpg"
        )
    if len(found) > MAX_REFERENCES:
        raise ConfigError(
            f"{len(found)} reference images: at most {MAX_REFERENCES} are taken",
            hint="pick the pictures that show the object from the most different sides",
        )
    for image in found:
        problem = source_problem(image, folder_allowed=False)
        if problem:
            raise InputError(f"reference image {shown_path(image)} {problem}", hint="check the path; pass a plain file")
    if masks and len(masks) != len(found):
        raise ConfigError(
            f"{len(masks)} --reference-mask for {len(found)} reference images",
            hint="pass one --reference-mask per reference image, in the same order (or none: a PNG's alpha channel "
            "is used where there is one)",
        )
    for mask in masks:
        problem = source_problem(mask, folder_allowed=False)
        if problem:
            raise InputError(f"--reference-mask {shown_path(mask)} {problem}", hint="check the path; pass a PNG")
    return References(tuple(found), tuple(masks) if masks else ())


def masking(masks: list[Path] | list[str] | None, flag: str = "--reference-mask") -> dict[str, str]:
    """--reference-mask auto or none, as the training's setting ({} for mask files or nothing)."""
    words = [str(mask) for mask in masks or [] if str(mask) in MASKING_WORDS]
    if words and len(masks) > 1:
        raise ConfigError(
            f"{flag} {words[0]} was given with {len(masks) - 1} more",
            hint=f"give {flag} auto (or none) once, for every reference without a mask file; or one mask file per "
            "reference (./auto for a file of that name)",
        )
    return {"reference_mask": words[0]} if words else {}


def mask_files(masks: list[Path] | None) -> list[Path]:
    """--reference-mask's files: none when it is the word auto or none (`masking`)."""
    return [] if masking(masks) else list(masks or [])
