"""The stages, one module a stage, each with `run(project, config, ...)` callable from
Python without the CLI, all run by the store's one protocol (`Project.run_stage`).

What the store needs to know of each stage is declared here, in pipeline order: the name
its records carry, its folder, the command that makes it again, for a stage with one
folder a run, what `live status` says before the first, and what the facts of its record
that others read must be (checked whenever the record is read).
"""

from __future__ import annotations

from livecli.store import COUNT, FLAG, FRACTION, NUMBER, POSITIVE, SHAPE, TABLE, TEXT, TEXTS, Stage, table_of

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
)
MASKS = Stage(
    "masks",
    "masks",
    remake="`live prepare CLIP IMAGE --mask PATH …` (or `live run … --mask PATH`)",
    optional=True,
    facts={"given_as": TEXT, "coverage": FRACTION, "frames": COUNT},
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
)
INVERT = Stage(
    "invert",
    "invert",
    remake="`live edit` (or `live invert`), which inverts again",
    runs=True,
    missing="`live edit` runs it",
    facts={"trajectory_shape": SHAPE, "noise_std": NUMBER.or_absent, "attention": TABLE.or_absent},
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
)
STAGES = (PREPARE, MASKS, TRAIN, INVERT, EDIT, EVAL)
