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
from pathlib import Path

from PIL import Image

from livecli import progress
from livecli.errors import InputError, ProjectError
from livecli.masks import Sampling, read_clip_masks
from livecli.stages import MASKS, PREPARE
from livecli.stages import prepare as prepare_stage
from livecli.store import Project, Record, StageResult, sha256_path
from livecli.video import probe_clip, read_pngs, shown_path, source_problem, write_pngs


def run(project: Project, mask: Path | None, force: bool = False) -> StageResult | None:
    """Read `mask` for the project's prepared frames, unless up to date; None (and an
    earlier run's masks removed) when no mask is given."""
    if mask is not None:
        problem = source_problem(mask, folder_allowed=True)
        if problem:
            raise InputError(
                f"--mask {shown_path(mask)} {problem}",
                hint="pass a mask video, a folder of mask PNGs or one PNG for the first frame",
            )
        mask = mask.resolve()
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
            config = prepare_stage.recorded_config(prepared)
            frames = read_pngs(project.verified(PREPARE, "frames"))
            sampling = Sampling(config.frame_count, config.stride, config.start, config.duration)
            with work.staging() as folder:
                with progress.bar("reading the masks", 1) as advance:
                    given = read_clip_masks(
                        mask, frames, prepare_stage.framing_of(prepared), probe_clip(clip), sampling
                    )
                    advance()
                write_pngs(given.masks, folder)
                work.facts = {"given_as": given.given_as, "coverage": round(given.coverage, 4), "frames": len(frames)}
                if given.coverage >= prepare_stage.WHOLE:
                    progress.say(
                        f"masks: --mask {shown_path(mask)} covers {given.coverage:.0%} of the frames: local blend "
                        "keeps almost nothing of the clip (paint only the object white)"
                    )
        project.update_manifest(sources={**sources, "mask": {"path": str(mask), "sha256": digest}})
    return work.result


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
