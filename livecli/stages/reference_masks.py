"""The references' object masks as the training uses them: given to prepare (a mask file,
or a picture's alpha channel), or found by the model itself for a reference without
(`--reference-mask auto`, find_object.py), written to `train/reference_masks/`.

The image objective weights its loss to each reference's mask (objectives.py); eval shows
the first reference's mask on the contact sheet and in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from livecli import progress
from livecli.config import TrainConfig
from livecli.find_object import FoundObject, find_object
from livecli.models.loading import DenoiserParts
from livecli.stages import PREPARE, TRAIN
from livecli.stages import prepare as prepare_stage
from livecli.store import Project, Record

FOLDER = "reference_masks"
"""Under train/: the found masks, `0000.png` … by reference."""


def unmasked(prepared: Record, config: TrainConfig) -> list[int]:
    """The references --reference-mask auto finds a mask for: those prepared without one."""
    if config.reference_mask != "auto":
        return []
    return [index for index, masked in enumerate(prepare_stage.masked_references(prepared)) if not masked]


def find(
    project: Project,
    models: DenoiserParts,
    config: TrainConfig,
    manifest: dict,
    latents: dict[str, torch.Tensor],
    indices: list[int],
) -> dict[int, FoundObject]:
    """The object in each reference of `indices`, found by the base model under a caption
    that names it alone, "a WORD" (--init-word, else the object word): a reference's own
    caption may say what its picture does not show (one caption for several pictures), and
    a wrong background word moves the search to the background. A line for each picture."""
    word = config.init_word or manifest["object"]
    pictures = prepare_stage.reference_pictures(project)
    names = [path.name for path in prepare_stage.recorded_references(manifest).images]
    device = next(models.unet.parameters()).device
    found = {}
    with progress.bar(f"finding the {word} in the references", len(indices)) as advance:
        for index in indices:
            reference = latents["reference"][index : index + 1].to(device)
            found[index] = find_object(
                models.unet, models.tokenizer, models.text_encoder, models.noise_scheduler, reference,
                pictures[index], f"a {word}", word,
            )  # fmt: skip
            advance()
    for index, result in found.items():
        if result.mask is None:
            progress.say(
                f"train: no {word!r} found in reference {index + 1} ({names[index]}): its mask would cover "
                f"{result.coverage:.0%} of the picture, so the whole picture is learnt; give its mask with "
                "--reference-mask, or an --init-word that names what it shows"
            )
        else:
            progress.say(
                f"train: the {word!r} in reference {index + 1} ({names[index]}) covers {result.coverage:.0%} of it"
            )
    return found


def weights(project: Project, found: dict[int, FoundObject], latents: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The image objective's loss weights: each reference's found mask, else its given one,
    else the whole picture; None when no reference has a mask. Made here from the masks, not
    read from prepare, so that a project prepared with another REFERENCE_MARGIN trains alike."""
    given = prepare_stage.reference_mask_pictures(project)
    if given is None and not any(result.mask is not None for result in found.values()):
        return None
    masks = []
    for index, picture in enumerate(prepare_stage.reference_pictures(project)):
        result = found.get(index)
        if result is not None and result.mask is not None:
            masks.append(result.mask)
        elif given is not None:
            masks.append(given[index])
        else:
            masks.append(Image.new("L", picture.size, 255))
    return prepare_stage.loss_weights(masks, tuple(latents["reference"].shape[-2:]))


def write(found: dict[int, FoundObject], folder: Path) -> None:
    """The found masks into the training's staging `folder`, under FOLDER."""
    for index, result in found.items():
        if result.mask is not None:
            (folder / FOLDER).mkdir(exist_ok=True)
            result.mask.save(folder / FOLDER / f"{index:04d}.png")


@dataclass(frozen=True)
class LearntMask:
    """The mask the image objective weighted a reference's loss to."""

    picture: Image.Image
    """L 0/255 at the prepared picture's size."""
    path: Path
    found: bool
    """Found by the model (--reference-mask auto), else given (a file or the picture's alpha)."""


def learnt(project: Project, index: int = 0) -> LearntMask | None:
    """Reference `index`'s mask as the training used it (read verified), or None: learnt whole."""
    record = project.record(TRAIN)
    name = f"{FOLDER}/{index:04d}.png"
    if record is not None and name in record.outputs:
        found, path = True, project.verified(TRAIN, name)
    elif prepare_stage.masked_references(project.record(PREPARE))[index]:
        found, path = False, project.verified(PREPARE, f"{prepare_stage.REFERENCE_MASKS}/{index:04d}.png")
    else:
        return None
    with Image.open(path) as opened:
        return LearntMask(opened.convert("L"), path, found)
