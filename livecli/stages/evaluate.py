"""`live eval`: score an edit with CLIP and against its source, and draw it (paper §4).

For each edit evaluated it writes

    eval/<name>/
      metrics.json        schema-versioned: every setting, a row for the edit and one for
                          the source video (the baseline), and per-frame values; on the
                          `shapes` model also the judge's object match
      report.md           the same, readable, with the contact sheet
      contact_sheet.png   the reference image, then rows of source frames, edited
                          frames and blend masks, numbered
      record.toml

An evaluation is keyed by the edit's and the preparation's fingerprints, the CLIP model
and the text, so `live eval` again costs nothing and a re-done edit is scored again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from livecli import __version__, progress
from livecli.config import EvalConfig
from livecli.contact_sheet import contact_sheet
from livecli.errors import ConfigError, ProjectError
from livecli.flow import SourceFlow, source_flows
from livecli.metrics import PSNR_CAP_DB, VideoScores, background, mask_tensor, score_video
from livecli.models.clip import ClipEmbedder, ClipSource, load_clip, resolve_clip
from livecli.models.loading import dtype_name, resolve_device, resolve_dtype
from livecli.scores import catalogue
from livecli.stages import EDIT, EVAL, MASKS, PREPARE, STAGES, TRAIN, reference_masks
from livecli.stages import edit as edit_stage
from livecli.stages import masks as masks_stage
from livecli.stages import prepare as prepare_stage
from livecli.store import Project, Record, Stage, StageResult, atomic_write_bytes
from livecli.video import read_pngs
from livecli.words import TOKEN_ALIAS

METRICS, REPORT, SHEET = (EVAL.outputs[role] for role in ("metrics", "report", "contact_sheet"))
METRICS_SCHEMA = 2
"""Version of metrics.json; bumped when a field changes meaning or goes away (2: the CLIP score is
null when it cannot be trusted, with `clip_score_note` saying why; the default text names the
reference's object)."""


@dataclass
class Evaluation:
    name: str
    result: StageResult
    metrics: dict[str, Any]
    """metrics.json, parsed."""


def edit_names(project: Project) -> list[str]:
    return [stage.run_name for stage, _ in project.runs(EDIT)]


def pick_edits(project: Project, edit: str | None, every: bool) -> list[str]:
    """The edits to evaluate: --edit NAME, --all, or the project's only edit."""
    if edit is not None and every:
        raise ConfigError("--edit and --all contradict each other", hint="pass one of them")
    project.manifest()  # no project: say so, not "no edit"
    names = edit_names(project)
    if not names:
        raise ProjectError(f"{project.root} has no edit to evaluate", hint="make one first: live edit --replace A=B")
    if every:
        return names
    if edit is not None:
        if edit not in names:
            raise ProjectError(
                f"no edit named {edit!r}; the project has: {', '.join(names)}",
                hint="pass one of those to --edit, or --all",
            )
        return [edit]
    if len(names) > 1:
        raise ProjectError(
            f"the project has several edits: {', '.join(names)}",
            hint="pick one with --edit NAME, or score them all with --all",
        )
    return names


RANDOM_CLIP = "n/a (random CLIP)"
"""How a CLIP score of the tiny, random CLIP is shown: its number says nothing of the edit."""


@dataclass(frozen=True)
class ClipText:
    """The text the CLIP score compares the frames with, or None, and why."""

    text: str | None
    why: str


def clip_text(given: str | None, target_prompt: str, token: str, trained: dict[str, Any], object_word: str) -> ClipText:
    """--text; else the edit's prompt, with the learned token (which CLIP does not know) read
    as a word for the *reference's* object: --init-word, else the words of --reference-prompt.
    The source's object word is never read there: it would score a failed edit as a success."""
    if given:
        return ClipText(given, "--text")
    if token not in target_prompt:
        return ClipText(target_prompt, "the edit's prompt")
    source_word = object_word.lower()
    init_word = trained.get("init_word")
    if init_word and init_word.lower() != source_word:
        return ClipText(
            read_token_as(target_prompt, token, init_word), f"the edit's prompt, {token} read as --init-word"
        )
    captions = trained.get("reference_prompt") or ""
    first = captions if isinstance(captions, str) else captions[0]  # the first reference's: the one the edit shows
    reference = first.replace(TOKEN_ALIAS, token).split()
    words = [word for word in reference if token not in word]
    if names_the_object(reference, token) and source_word not in {word.lower().strip(".,;:!?") for word in words}:
        return ClipText(" ".join(words), "the words of --reference-prompt")
    return ClipText(
        None,
        f"no CLIP score: the edit's prompt has {token}, and neither --init-word nor --reference-prompt names the "
        "reference's object in words; pass --text to score it",
    )


LINKING_WORDS = frozenset(
    "a an the on in at by of with near under over above below behind beside before after to from into onto "
    "and or is are was were in front".split()
)
"""Words that cannot name an object: where one follows the token, the token stands for the object alone."""


def names_the_object(reference: list[str], token: str) -> bool:
    """Whether the reference prompt's words still name the object once the token is taken
    out: `a <tok> dog on a beach` does (`dog` follows the token); `a <tok> on a beach`
    does not, the token being the object itself."""
    for index, word in enumerate(reference):
        if token in word:
            after = reference[index + 1].lower().strip(".,;:!?") if index + 1 < len(reference) else ""
            return bool(after) and after not in LINKING_WORDS
    return False


def read_token_as(target_prompt: str, token: str, word: str) -> str:
    """The target prompt with the learned token read as `word`."""
    return " ".join(word if part == token else part.replace(token, word) for part in target_prompt.split())


class Scorer:
    """The CLIP model, loaded on first use and kept for every edit of one run, and the
    embeddings that do not change from edit to edit (source frames, reference image)."""

    def __init__(self, source: ClipSource, device: str = "auto", dtype: str = "auto"):
        self.source = source
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self._embedder: ClipEmbedder | None = None
        self._known: dict[str, torch.Tensor] = {}
        self._flows: dict[str, list[SourceFlow]] = {}

    @classmethod
    def resolve(cls, clip_model: str, device: str = "auto", dtype: str = "auto") -> Scorer:
        return cls(resolve_clip(clip_model), device, dtype)

    @property
    def embedder(self) -> ClipEmbedder:
        if self._embedder is None:
            progress.say(f"loading CLIP {self.source.id}")
            self._embedder = load_clip(self.source, self.device, self.dtype)
        return self._embedder

    def flows_once(self, key: str, frames: list[Image.Image]) -> list[SourceFlow]:
        """The source's optical flow, computed the first time `key` is asked for."""
        if key not in self._flows:
            with progress.bar("source flow (DIS)", 1) as advance:
                self._flows[key] = source_flows(frames)
                advance()
        return self._flows[key]

    def images_once(self, key: str, images: list[Image.Image]) -> torch.Tensor:
        """The embeddings of `images`, computed the first time `key` is asked for."""
        if key not in self._known:
            self._known[key] = self.embedder.images(images)
        return self._known[key]


def run(
    project: Project, config: EvalConfig, names: list[str], scorer: Scorer, force: bool = False
) -> list[Evaluation]:
    """Evaluate each named edit (each skipped when up to date)."""
    manifest = project.manifest()
    with project.lock():
        prepared = prepare_stage.require(project)
        return [_evaluate(project, manifest, prepared, name, config, scorer, force) for name in names]


@dataclass(frozen=True)
class Scoring:
    """What one evaluation scores, and with what: the edit's record, the text the CLIP score
    reads (or the note in its place), and the record's settings and inputs."""

    name: str
    edited: Record
    chosen: ClipText
    clip_note: str | None
    settings: dict[str, Any]
    inputs: dict[str, str]
    reads: tuple[Stage, ...]


@dataclass(frozen=True)
class Pictures:
    frames: list[Image.Image]
    """The edit's."""
    source: list[Image.Image]
    reference: Image.Image
    blend: list[Image.Image] | None
    """The edit's blend masks (None without local blend)."""
    given: list[Image.Image] | None
    """The clip's object masks, where the user gave them."""


def _evaluate(
    project: Project, manifest: dict, prepared: Record, name: str, config: EvalConfig, scorer: Scorer, force: bool
) -> Evaluation:
    scoring = _plan(project, manifest, prepared, name, config, scorer)
    stage = EVAL.run(name)
    work = project.run_stage(stage, scoring.settings, scoring.inputs, force=force, reads=scoring.reads)
    if work.skipped:
        return Evaluation(name, work.result, _load_metrics(project, stage))
    pictures = _read_pictures(project, name)
    rows, share = _score(pictures, prepared, config, scorer, scoring, manifest)
    metrics = {
        "schema": METRICS_SCHEMA,
        "live_version": __version__,
        "edit": name,
        "text": scoring.chosen.text,
        "text_from": scoring.chosen.why,
        "clip_score_note": scoring.clip_note,
        "clip_model": scorer.source.id,
        "settings": {"eval": scoring.settings, "edit": scoring.edited.settings},
        "frames": len(pictures.frames),
        "background_share": share,
        "background_outside": "the given object masks"
        if pictures.given
        else "the blend mask"
        if pictures.blend
        else None,
        "psnr_cap_db": PSNR_CAP_DB,
        "rows": measured_rows(rows, {"edit": pictures.frames, "source": pictures.source}),
        "per_frame": {video: scores.per_frame for video, scores in rows.items()},
    }
    with work.staging() as staged:
        _write(staged, project, scoring, metrics, rows, pictures)
        work.facts = _facts(metrics, scoring.clip_note, scorer)
    return Evaluation(name, work.result, metrics)


def _plan(project: Project, manifest: dict, prepared: Record, name: str, config: EvalConfig, scorer: Scorer) -> Scoring:
    """The edit to score (said when stale), the text, and what the record will say."""
    edit = EDIT.run(name)
    edited = project.record(edit)
    if edited is None:
        raise ProjectError(
            f"no edit named {name!r}; the project has: {', '.join(edit_names(project)) or 'none'}",
            hint="run `live edit` first",
        )
    stale = project.stale_reason(edit, STAGES)
    if stale:
        progress.say(f"[yellow]note[/]: edit {name} is stale ({stale}); scoring it as it is")
    trained = project.record(TRAIN)
    chosen = clip_text(
        config.text,
        edited.settings["target_prompt"],
        edited.facts["token"],
        trained.settings if trained is not None else {},
        manifest["object"],
    )
    clip_note = RANDOM_CLIP if scorer.source.kind == "tiny" else None if chosen.text else "n/a (no text)"
    settings = {
        **config.settings(),
        "text": chosen.text or "",
        "clip_model": scorer.source.key,
        "dtype": dtype_name(scorer.dtype),
        **({"clip_score": clip_note} if clip_note else {}),
    }
    inputs = {edit.folder: edited.fingerprint, PREPARE.folder: prepared.fingerprint}
    reads = (PREPARE, edit)
    masks = masks_stage.current(project)
    if masks is not None:  # the background is scored outside them
        inputs[MASKS.folder] = masks.fingerprint
        reads += (MASKS,)
    return Scoring(name, edited, chosen, clip_note, settings, inputs, reads)


def _score(
    pictures: Pictures, prepared: Record, config: EvalConfig, scorer: Scorer, scoring: Scoring, manifest: dict
) -> tuple[dict[str, VideoScores], float | None]:
    """The edit's and the source's scores, and the share of pixels the background scores cover."""
    scored = pictures.given or pictures.blend
    mask = mask_tensor(scored) if scored else None
    margin = config.mask_margin * latent_cell(prepared)
    frames, source, reference = pictures.frames, pictures.source, pictures.reference
    flows = scorer.flows_once(f"flow {prepared.fingerprint}", source)
    embedder = scorer.embedder
    with progress.bar(f"scoring {scoring.name} (CLIP)", 2) as advance:
        text_embedding = None if scoring.clip_note else embedder.texts([scoring.chosen.text])[0]
        reference_embedding = scorer.images_once(f"reference {prepared.fingerprint}", [reference])[0]
        source_embeddings = scorer.images_once(f"frames {prepared.fingerprint}", source)
        against = (text_embedding, reference_embedding, mask, margin)
        rows = {"edit": score_video(embedder, frames, source, *against, flows=flows)}
        advance()
        rows["source"] = score_video(embedder, source, source, *against, whole=source_embeddings, flows=flows)
        advance()
    if manifest.get("model", {}).get("kind") == "shapes":
        for video, matches in judge_object_match(reference, {"edit": frames, "source": source}).items():
            rows[video].object_match = sum(matches) / len(matches)
            rows[video].per_frame["object_match"] = matches
    share = None if mask is None else round(float(background(mask, margin).float().mean()), 4)
    return rows, share


def _facts(metrics: dict[str, Any], clip_note: str | None, scorer: Scorer) -> dict[str, Any]:
    """What the record says of the scores, for `live status`, the gallery and the stage line."""
    edit_row, source_row = metrics["rows"]["edit"], metrics["rows"]["source"]
    facts = {
        "clip_score": edit_row["clip_score"],
        "source_clip_score": source_row["clip_score"],
        **({"clip_score_note": clip_note} if clip_note else {}),
        "reference_similarity": edit_row["reference_similarity"],
        "background_psnr": edit_row["background_psnr"],
        "background_share": metrics["background_share"],
        "warp_error": edit_row["warp_error"],
        "source_warp_error": source_row["warp_error"],
        "device": str(scorer.device),
    }
    if edit_row.get("object_match") is not None:
        facts["object_match"] = edit_row["object_match"]
    return facts


def _write(
    staged: Path,
    project: Project,
    scoring: Scoring,
    metrics: dict[str, Any],
    rows: dict[str, VideoScores],
    pictures: Pictures,
) -> None:
    """metrics.json, the contact sheet and report.md."""
    atomic_write_bytes(staged / METRICS, (json.dumps(metrics, indent=2) + "\n").encode())
    title = [
        f"{scoring.name}: {scoring.chosen.text or scoring.chosen.why}",
        _headline(rows["edit"], scoring.clip_note),
        f"source: {_headline(rows['source'], scoring.clip_note)}",
    ]
    sheet_rows = {
        "source": pictures.source,
        "edit": pictures.frames,
        **({"mask": pictures.blend} if pictures.blend else {}),
    }
    learnt = reference_masks.learnt(project)
    if learnt is not None:
        title.append(f"reference: its object {'found by the model' if learnt.found else 'as given'} (bright)")
    contact_sheet(pictures.reference, sheet_rows, title, learnt and learnt.picture).save(staged / SHEET)
    atomic_write_bytes(staged / REPORT, render_report(metrics, project, scoring.name, learnt).encode())


def measured_rows(rows: dict[str, VideoScores], videos: dict[str, list[Image.Image]]) -> dict[str, dict]:
    """metrics.json's rows: each video's scores, with those of the catalogue that bring
    their own measure (`scores.Score.measure`) computed against the source."""
    summaries = {video: scores.summary() for video, scores in rows.items()}
    for score in catalogue():
        if score.measure is not None:
            for video, frames in videos.items():
                value = score.measure(frames, videos["source"])
                summaries[video][score.name] = None if value is None else round(float(value), 4)
    return summaries


def latent_cell(prepared: Record) -> int:
    """Image pixels per latent cell: 8 for SD's VAE, 4 for the shapes model's."""
    width = prepared.facts.get("frame_size", [prepared.settings.get("size")])[0]
    return max(1, int(width) // prepared.facts["frames_shape"][-1])


def judge_object_match(reference: Image.Image, videos: dict[str, list[Image.Image]]) -> dict[str, list[float]]:
    """Per frame of each video, 1.0 where the shapes judge reads the shape and colour it reads
    in the reference image, else 0.0: whether the edit shows the reference's object."""
    from livecli.shapes.judge import load_judge
    from livecli.shapes.model import JUDGE_FILE

    judge = load_judge(JUDGE_FILE)
    wanted = judge.read([reference])
    matches = {}
    for video, frames in videos.items():
        answers = judge.read(frames)
        right = (answers["shape"] == wanted["shape"][0]) & (answers["colour"] == wanted["colour"][0])
        matches[video] = [float(hit) for hit in right]
    return matches


def _read_pictures(project: Project, name: str) -> Pictures:
    """The edit's frames, the prepared frames, the reference image, the edit's masks and the
    clip's; an error when the edit's frames do not match the clip's."""
    edit = EDIT.run(name)
    edit_dir = project.stage_dir(edit)
    if not (edit_dir / "frames").is_dir():
        raise ProjectError(
            f"edit {name!r} has no frames (edits/{name}/frames/ was removed)",
            hint=f"make it again: live edit --name {name} --force …",
        )
    frames = read_pngs(project.verified(edit, "frames"))
    source = read_pngs(project.verified(PREPARE, "frames"))
    if len(frames) != len(source) or frames[0].size != source[0].size:
        raise ProjectError(
            f"edit {name!r} has {len(frames)} frames of {frames[0].width} px, the prepared clip {len(source)} of "
            f"{source[0].width} px",
            hint=f"it was made before the clip was prepared again: redo it with `live edit --name {name} --force …`",
        )
    with Image.open(project.verified(PREPARE, "reference.png")) as opened:
        reference = opened.convert("RGB")
    masks = read_pngs(project.verified(edit, "masks")) if (edit_dir / "masks").is_dir() else None
    return Pictures(frames, source, reference, masks, masks_stage.clip_masks(project))


def _load_metrics(project: Project, stage: Stage) -> dict[str, Any]:
    return json.loads((project.stage_dir(stage) / METRICS).read_text())


def _headline(scores: VideoScores, clip_note: str | None) -> str:
    psnr = "n/a" if scores.background_psnr is None else f"{scores.background_psnr:.1f} dB"
    judged = "" if scores.object_match is None else f" · object {scores.object_match:.0%}"
    clip = clip_note or f"{scores.clip_score:.1f}"
    return f"CLIP {clip} · CLIP-I {scores.reference_similarity:.3f} · background PSNR {psnr}{judged}"


def format_value(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def render_report(
    metrics: dict[str, Any], project: Project, name: str, learnt: reference_masks.LearntMask | None = None
) -> str:
    """report.md: the table, what each number means, the learnt reference's mask, the settings and the files."""
    lines = [
        *_report_head(metrics, project, name),
        *_score_table(metrics),
        "",
        *(f"- {line}" for line in _explained(metrics, project, learnt)),
        "",
        "![contact sheet](contact_sheet.png)",
        "",
        *_files_and_settings(metrics, name),
    ]
    return "\n".join(lines) + "\n"


def _report_head(metrics: dict[str, Any], project: Project, name: str) -> list[str]:
    random_clip = [
        "The tiny CLIP is random: its CLIP score says nothing of the edit and is not shown; its CLIP-I and "
        "consistency only show that the scoring runs.",
        "",
    ]
    return [
        f"# Evaluation of edit `{name}`",
        "",
        f"Project `{project.root.name}`, {metrics['frames']} frames, scored by CLIP `{metrics['clip_model']}`"
        + (f" against the text ({metrics['text_from']}):" if metrics["text"] else "."),
        "",
        f"> {metrics['text'] or metrics['text_from']}",
        "",
        *(random_clip if metrics["clip_score_note"] == RANDOM_CLIP else []),
    ]


def _shown(metrics: dict[str, Any]) -> list:
    """The catalogue's scores the report shows (an optional one only where the edit has it)."""
    return [s for s in catalogue() if not s.optional or metrics["rows"]["edit"].get(s.name) is not None]


def _score_table(metrics: dict[str, Any]) -> list[str]:
    lines = ["| metric | edit | source (baseline) |", "| --- | --- | --- |"]
    for score in _shown(metrics):
        edit_value, source_value = (
            format_value(metrics["rows"][video].get(score.name)) for video in ("edit", "source")
        )
        if score.name == "clip_score" and metrics["clip_score_note"]:
            edit_value = source_value = metrics["clip_score_note"]
        lines.append(f"| {score.titled} | {edit_value} | {source_value} |")
    return lines


def _explained(metrics: dict[str, Any], project: Project, learnt: reference_masks.LearntMask | None) -> list[str]:
    """What each score means, and what the reference's mask kept."""
    share = metrics["background_share"]
    filled = {
        "outside": metrics.get("background_outside") or "the mask",
        "margin": metrics["settings"]["eval"]["mask_margin"],
        "share": "" if share is None else f" ({share:.0%} of the pixels)",
        "cap": metrics["psnr_cap_db"],
    }
    lines = [score.about.format(**filled) for score in _shown(metrics) if score.about]
    if learnt is not None:
        lines.append(
            "The reference's object: the token learnt from the part of the reference the mask keeps ("
            + ("found by the model, `--reference-mask auto`" if learnt.found else "as given")
            + f"): ![reference mask](../../{learnt.path.relative_to(project.root).as_posix()}) "
            f"({float(np.asarray(learnt.picture).mean()) / 255:.0%} of the picture); the contact sheet shows "
            "the rest of it faded."
        )
    return lines


def _files_and_settings(metrics: dict[str, Any], name: str) -> list[str]:
    edit_link = f"../../{EDIT.run(name).folder}"
    lines = [
        f"Files: [edit.mp4]({edit_link}/{edit_stage.VIDEO}), [compare.mp4]({edit_link}/{edit_stage.COMPARE}), "
        f"[metrics.json]({METRICS}).",
        "",
        "## Settings",
        "",
    ]
    for stage, settings in metrics["settings"].items():
        lines.append(f"- {stage}: " + ", ".join(f"{key} = `{value}`" for key, value in settings.items()))
    return lines


def outputs(project: Project, name: str) -> dict[str, Path]:
    folder = project.stage_dir(EVAL.run(name))
    return {role: folder / file for role, file in EVAL.outputs.items()}
