"""The stages, one module a stage, each with `run(project, config, ...)` callable from
Python without the CLI, all run by the store's one protocol (`Project.run_stage`).

What the store needs to know of each stage is declared here, in pipeline order: the name
its records carry, its folder, the command that makes it again, and for a stage with one
folder a run, what `live status` says before the first.
"""

from __future__ import annotations

from livecli.store import Stage

PREPARE = Stage(
    "prepare",
    "prepare",
    remake="`live prepare CLIP IMAGE --prompt TEXT --object WORD` (or `live train`, which prepares again from the "
    "recorded clip and image)",
)
TRAIN = Stage("train", "train", remake="`live train`")
INVERT = Stage(
    "invert",
    "invert",
    remake="`live edit` (or `live invert`), which inverts again",
    runs=True,
    missing="`live edit` runs it",
)
EDIT = Stage(
    "edit",
    "edits",
    remake="`live edit --name {run} --force` with its --replace",
    runs=True,
    missing="run `live edit --replace A=B`",
)
EVAL = Stage("eval", "eval", remake="`live eval --edit {run} --force`", runs=True, missing="run `live eval`")
STAGES = (PREPARE, TRAIN, INVERT, EDIT, EVAL)
