"""The stages, one module a stage, each with `run(project, config, ...)` callable from
Python without the CLI, all run by the store's one protocol (`Project.run_stage`).

What the store needs to know of each stage is declared here, in pipeline order: the name
its records carry, its folder, the command that makes it again, for a stage with one
folder a run, what `live status` says before the first, and what the facts of its record
that others read must be (checked whenever the record is read); and what the layers above
loop over: its config and its table in a jobs file, its output files by role, its one
line when it finishes (from its record), whether the gallery shows its time.

A new stage: its module, its `Stage` line and summary here, its config (config.py) and
its command (cli.py); pipeline.py too where `live run` runs it.
"""

from __future__ import annotations

from livecli.config import EditConfig, EvalConfig, InvertConfig, PrepareConfig, TrainConfig
from livecli.progress import size
from livecli.store import COUNT, FLAG, FRACTION, NUMBER, POSITIVE, SHAPE, TABLE, TEXT, TEXTS, Record, Stage, table_of

# --------------------------------------------------------------------------- the lines stages finish with


def clip_facts(record) -> dict:
    """What the prepare record says of the sampled clip: frames, span, frame rate, size, sound."""
    facts = record.facts
    width, height = facts.get("frame_size") or [facts["frames_shape"][-1] * 8] * 2
    span = facts.get("span") or {}
    return {
        "frames": facts["frames_shape"][0],
        "start": span.get("start"),
        "end": span.get("end"),
        "stride": span.get("stride", record.settings.get("stride", 1)),
        "fps": facts.get("fps"),
        "width": width,
        "height": height,
        "audio": bool(facts.get("audio")),
    }


def clip_line(record) -> str:
    """80 frames 512×288, 0.0–8.0 s at 10 fps, with sound."""
    clip = clip_facts(record)
    every = f" every {clip['stride']} frames" if clip["stride"] > 1 else ""
    span = f", {clip['start']:.1f}–{clip['end']:.1f} s{every}" if clip["start"] is not None else ""
    fps = f" at {clip['fps']:g} fps" if clip["fps"] else ""
    sound = "with sound" if clip["audio"] else "silent"
    return f"{clip['frames']} frames {clip['width']}×{clip['height']}{span}{fps}, {sound}"


def prepared(record: Record) -> str:
    facts = record.facts
    count = facts["reference_shape"][0]
    references = "reference" if count == 1 else f"{count} references"
    weighted = (
        f", reference masks cover {facts['reference_mask_coverage']:.0%} of their latents"
        if facts.get("reference_mask_coverage") is not None
        else ""
    )
    latents = f"latents {facts['frames_shape']} + {references} {facts['reference_shape']}"
    return f"{clip_line(record)}; {latents}{weighted}"


def masked(record: Record) -> str:
    facts = record.facts
    return f"{facts['frames']} object masks ({facts['given_as']}), covering {facts['coverage']:.0%} of the pixels"


def trained(record: Record) -> str:
    facts = record.facts
    before, after = facts["fixed_draw_loss_before"], facts["fixed_draw_loss_after"]
    steps = record.settings["steps"]
    if "auto_steps" in facts:
        steps = f"auto: {facts['auto_steps']['stopped_at']} steps, kept step {facts['auto_steps']['kept_step']},"
    else:
        steps = f"{steps} steps,"
    return (
        f"{steps} token {facts['token']}; loss on fixed draws: "
        f"video {before['video']:.4f} -> {after['video']:.4f}, image {before['text']:.4f} -> {after['text']:.4f}"
        + (f"; latent prompt moved {moved:.1%}" if (moved := facts.get("latent_prompt_moved")) is not None else "")
        + found_masks(facts.get("found_reference_masks"))
    )


def found_masks(found: dict[str, float] | None) -> str:
    """'; the object found in reference 1 (13% of it)', for --reference-mask auto."""
    if not found:
        return ""
    shares = [f"{number} ({share:.0%} of it)" for number, share in found.items() if share]
    if not shares:
        return f"; no object found in {'reference' if len(found) == 1 else 'references'} {', '.join(found)}"
    return f"; the object found in reference{'s' if len(shares) > 1 else ''} {', '.join(shares)}"


def inverted(record: Record) -> str:
    settings, facts = record.settings, record.facts
    refined = f", {settings['refine']} fixed-point iterations a step" if settings.get("refine") else ""
    attention = facts.get("attention")
    stored = f", source attention stored ({size(attention['bytes'])})" if attention else ""
    return f"{settings['steps']} DDIM steps{refined} under {settings['prompt']!r}, x_T std {facts['noise_std']}{stored}"


def edited(record: Record) -> str:
    settings, facts = record.settings, record.facts
    blend = "no blend" if facts.get("mask_coverage") is None else f"blend mask covers {facts['mask_coverage']:.0%}"
    return f"{settings['target_prompt']!r}, {settings['steps']} steps, guidance {settings['guidance']:g}, {blend}"


def evaluated(record: Record) -> str:
    facts = record.facts
    if facts.get("background_share") is None:
        psnr = "no blend mask, no background score"
    elif facts.get("background_psnr") is None:
        psnr = "the blend mask covers every pixel, no background score"
    else:
        psnr = f"background PSNR {facts['background_psnr']:.1f} dB over {facts['background_share']:.0%} of the pixels"
    judged = f", object match {facts['object_match']:.0%} (judge)" if facts.get("object_match") is not None else ""
    if facts.get("clip_score") is None:
        clip = f"CLIP score {facts.get('clip_score_note', 'n/a')}"
    else:
        clip = f"CLIP score {facts['clip_score']:.1f} (source {facts['source_clip_score']:.1f})"
    return f"{clip}, CLIP-I {facts['reference_similarity']:.3f}, {psnr}{judged}"


# --------------------------------------------------------------------------- the catalogue

PREPARE = Stage(
    "prepare",
    "prepare",
    remake="`live prepare CLIP IMAGE --prompt TEXT --object WORD` (or `live train`, which prepares again from the "
    "recorded clip and image)",
    facts={
        "frames_shape": SHAPE,
        "reference_shape": SHAPE,
        "scaling_factor": POSITIVE,
        "fps": POSITIVE,
        "source_fps": POSITIVE.or_absent,
        "frame_size": SHAPE.or_absent,
        "source_size": SHAPE.or_absent,
        "audio": FLAG.or_absent,
        "span": table_of(start=NUMBER, end=NUMBER, stride=COUNT).or_absent,
        "reference_weights_shape": SHAPE.or_absent,
        "reference_mask_coverage": FRACTION.or_absent,
    },
    config=PrepareConfig,
    table="prepare",
    outputs={"frames": "frames", "reference": "reference.png"},
    summary=prepared,
    timed=True,
)
MASKS = Stage(
    "masks",
    "masks",
    remake="`live prepare CLIP IMAGE --mask PATH …` (or `live run … --mask PATH`)",
    optional=True,
    facts={"given_as": TEXT, "coverage": FRACTION, "frames": COUNT},
    summary=masked,
)
LOSSES = table_of(video=NUMBER, text=NUMBER)
TRAIN = Stage(
    "train",
    "train",
    remake="`live train`",
    facts={
        "token": TEXT,
        "token_prompt": TEXT.or_absent,
        "token_prompts": TEXTS.or_absent,
        "frames": COUNT.or_absent,
        "latent_prompt_shape": SHAPE.or_absent,
        "latent_prompt_moved": NUMBER.or_absent,
        "fixed_draw_loss_before": LOSSES,
        "fixed_draw_loss_after": LOSSES,
        "found_reference_masks": TABLE.or_absent,
    },
    config=TrainConfig,
    table="train",
    summary=trained,
    timed=True,
)
INVERT = Stage(
    "invert",
    "invert",
    remake="`live edit` (or `live invert`), which inverts again",
    runs=True,
    missing="`live edit` runs it",
    facts={"trajectory_shape": SHAPE, "noise_std": NUMBER.or_absent, "attention": TABLE.or_absent},
    config=InvertConfig,
    summary=inverted,
    timed=True,
)
EDIT = Stage(
    "edit",
    "edits",
    remake="`live edit --name {run} --force` with its --replace",
    runs=True,
    missing="run `live edit --replace A=B`",
    facts={
        "token": TEXT.or_absent,
        "mask_coverage": FRACTION.or_absent,
        "fps": POSITIVE,
        "audio": FLAG.or_absent,
        "video_size": SHAPE.or_absent,
        "peak_stored_attention_bytes": COUNT.or_absent,
    },
    config=EditConfig,
    table="edit",
    outputs={"video": "edit.mp4", "gif": "edit.gif", "compare": "compare.mp4"},
    summary=edited,
    timed=True,
)
EVAL = Stage(
    "eval",
    "eval",
    remake="`live eval --edit {run} --force`",
    runs=True,
    missing="run `live eval`",
    facts={
        "clip_score": NUMBER.or_absent,
        "reference_similarity": NUMBER.or_absent,
        "background_share": FRACTION.or_absent,
        "background_psnr": NUMBER.or_absent,
        "object_match": FRACTION.or_absent,
    },
    config=EvalConfig,
    table="eval",
    outputs={"metrics": "metrics.json", "report": "report.md", "contact_sheet": "contact_sheet.png"},
    summary=evaluated,
    timed=True,
)
STAGES = (PREPARE, MASKS, TRAIN, INVERT, EDIT, EVAL)


def stage_named(name: str) -> Stage:
    """The stage whose records carry `name`."""
    return next(stage for stage in STAGES if stage.name == name)
