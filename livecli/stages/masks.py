"""The clip's object masks (`--mask PATH` of prepare, train and run): where the object to
replace is, frame by frame, read and framed as the prepared frames (livecli/masks.py).

Writes `masks/` in the project:

    0000.png …     L 0/255, one per prepared frame, at the frames' size
    record.toml    the prepare it belongs to, the mask source's digest, how it was given,
                   the share of pixels it covers

A stage of its own, after prepare and read only by edit and eval: giving masks to a
trained project (or changing them) retrains and re-inverts nothing. A prepare run without
`--mask` removes an earlier run's masks, as any flag left out returns to its default.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from livecli import progress
from livecli.config import PrepareConfig
from livecli.errors import InputError, ProjectError
from livecli.masks import ClipMasks, Sampling, read_clip_masks
from livecli.stages import MASKS, PREPARE
from livecli.stages import prepare as prepare_stage
from livecli.store import Project, Record, StageResult, sha256_path
from livecli.video import ClipInfo, Framing, probe_clip, read_pngs, shown_path, source_problem, write_pngs


def check_source(mask: Path | None) -> Path | None:
    """`--mask` resolved, or the error for a path that is not a mask (a FIFO, a device, a
    missing file): said before any stage runs."""
    if mask is None:
        return None
    problem = source_problem(mask, folder_allowed=True)
    if problem:
        raise InputError(
            f"--mask {shown_path(mask)} {problem}",
            hint="pass a mask video, a folder of mask PNGs or one PNG for the first frame",
        )
    return mask.resolve()


@dataclass
class Reading:
    """The clip's masks read against the frames prepare has just sampled, inside its staging
    (`prepare.run(check_frames=…)`): a mask that does not fit them fails that prepare, and
    the project keeps the frames, and everything made from them, that it had."""

    path: Path
    sampling: Sampling
    given: ClipMasks | None = None

    @classmethod
    def of(cls, mask: Path | None, config: PrepareConfig) -> Reading | None:
        if mask is None:
            return None
        return cls(mask, Sampling(config.frame_count, config.stride, config.start, config.duration))

    def __call__(self, frames: list[Image.Image], framing: Framing, info: ClipInfo) -> None:
        with progress.bar("reading the masks", 1) as advance:
            self.given = read_clip_masks(self.path, frames, framing, info, self.sampling)
            advance()


def run(project: Project, mask: Path | None, force: bool = False, read: Reading | None = None) -> StageResult | None:
    """Read `mask` for the project's prepared frames, unless up to date; None (and an
    earlier run's masks removed) when no mask is given. `read`: the masks already read
    against the frames as prepared this run."""
    mask = check_source(mask)
    with project.lock():
        prepared = prepare_stage.require(project)
        manifest = project.manifest()
        sources = dict(manifest.get("sources", {}))
        if mask is None:
            if project.stage_dir(MASKS).exists():
                shutil.rmtree(project.stage_dir(MASKS))
                progress.say("masks: no --mask given: the object masks of an earlier run are removed")
            if sources.pop("mask", None) is not None:
                project.update_manifest(sources=sources)
            return None
        digest = sha256_path(mask)
        inputs = {PREPARE.folder: prepared.fingerprint, "mask": digest}
        work = project.run_stage(MASKS, {}, inputs, force=force, reads=(PREPARE,))
        if not work.skipped:
            clip = Path(sources["clip"]["path"])
            given = read.given if read is not None and read.given is not None else _read(project, prepared, mask, clip)
            with work.staging() as folder:
                write_pngs(given.masks, folder)
                work.facts = {
                    "given_as": given.given_as,
                    "coverage": round(given.coverage, 4),
                    "frames": len(given.masks),
                }
                if given.coverage >= prepare_stage.WHOLE:
                    progress.say(
                        f"masks: --mask {shown_path(mask)} covers {given.coverage:.0%} of the frames: local blend "
                        "keeps almost nothing of the clip (paint only the object white)"
                    )
        project.update_manifest(sources={**sources, "mask": {"path": str(mask), "sha256": digest}})
    return work.result


def _read(project: Project, prepared: Record, mask: Path, clip: Path) -> ClipMasks:
    """The masks `mask` gives for the frames as prepared from `clip`."""
    reading = Reading.of(mask, prepare_stage.recorded_config(prepared))
    reading(read_pngs(project.verified(PREPARE, "frames")), prepare_stage.framing_of(prepared), probe_clip(clip))
    return reading.given


def refresh(project: Project) -> StageResult | None:
    """The masks again from the recorded source, when the frames or the mask changed (for
    `live train` without CLIP, which prepares again from the recorded sources)."""
    source = project.manifest().get("sources", {}).get("mask")
    if not isinstance(source, dict) or not Path(source["path"]).exists():
        return None
    return run(project, Path(source["path"]))


def current(project: Project) -> Record | None:
    """The masks record when there are masks for the frames as prepared now; None without
    masks; an error naming the command when they belong to frames prepared since."""
    record = project.record(MASKS)
    if record is None:
        return None
    if record.inputs.get(PREPARE.folder) != prepare_stage.require(project).fingerprint:
        raise ProjectError(
            f"the object masks in {project.stage_dir(MASKS)} are stale: the frames were prepared again since",
            hint=f"give them again: {MASKS.remake_command}",
        )
    return record


def clip_masks(project: Project) -> list[Image.Image] | None:
    """The clip's object masks, L 0/255 per frame, or None when none were given."""
    if current(project) is None:
        return None
    return [mask.convert("L") for mask in read_pngs(project.verified(MASKS))]
