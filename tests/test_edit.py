"""`live invert` and `live edit` as users run them: outputs, reuse, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from helpers import PREPARE_ARGS, SHARED_DATA, copied_here, tree_digest, unwrapped
from livecli.store import read_toml, write_toml

PROJECT = Path("clip.live")
EDIT_OUTPUTS = {"edit.mp4", "edit.gif", "compare.mp4", "record.toml"}


def decoded_frames(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


@pytest.fixture
def trained_here(made, clip, image):
    """`live train clip.mp4 ref.png` on the tiny model, 2 steps: `clip.live` here."""
    return copied_here(made("train", "clip.mp4", "ref.png", *PREPARE_ARGS, "--steps", "2"))


def test_edit_writes_every_output_and_reuses_the_inversion(cli, trained_here):
    result = cli("edit", "--replace", "car=<tok>", "--steps", "10")
    assert result.code == 0, result.err
    folder = PROJECT / "edits" / "car-tok"
    assert EDIT_OUTPUTS <= {p.name for p in folder.iterdir()}
    assert sorted(p.name for p in (folder / "frames").iterdir()) == [f"{i:04d}.png" for i in range(8)]
    assert sorted(p.name for p in (folder / "masks").iterdir()) == [f"{i:04d}.png" for i in range(8)]
    video = decoded_frames(folder / "edit.mp4")
    assert len(video) == 8 and {f.size for f in video} == {(64, 64)}
    assert {f.size for f in decoded_frames(folder / "compare.mp4")} == {(128, 64)}
    with Image.open(folder / "edit.gif") as gif:
        assert gif.n_frames == 8 and gif.size == (64, 64)
    assert Image.open(folder / "masks" / "0000.png").mode == "L"
    record = read_toml(folder / "record.toml")
    assert record["settings"]["target_prompt"] == "a jeep <@#$> is moving on the road"
    assert record["settings"]["guidance"] == 12.5 and record["settings"]["cross_replace"] == 0.6
    assert "invert: 10 DDIM steps" in result.err and "edit: 'a jeep <@#$> is moving on the road'" in result.err

    inversions = list((PROJECT / "invert").iterdir())
    other = cli("edit", "--replace", "car=red bus", "--steps", "10")
    assert other.code == 0, other.err
    assert "invert: up to date" in other.err
    assert list((PROJECT / "invert").iterdir()) == inversions
    assert (PROJECT / "edits" / "car-red-bus" / "edit.mp4").is_file()

    before = tree_digest(PROJECT)
    again = cli("edit", "--replace", "car=<tok>", "--steps", "10")
    assert again.code == 0 and "edit: up to date" in again.err
    assert tree_digest(PROJECT) == before

    status = json.loads(cli("status", "--json").out)
    states = {s["stage"]: s["state"] for s in status["stages"]}
    assert states["edit car-tok"] == states["edit car-red-bus"] == "done"
    assert [s for s in states if s.startswith("invert ")] == [f"invert {inversions[0].name}"]


def test_an_edit_name_with_other_settings_is_refused_unless_forced(cli, trained_here):
    assert cli("edit", "--replace", "car=<tok>", "--steps", "5").code == 0
    before = tree_digest(PROJECT / "edits")
    refused = cli("edit", "--replace", "car=<tok>", "--steps", "5", "--guidance", "3")
    assert refused.code == 1
    assert "edit 'car-tok' exists with other settings (guidance 12.5 -> 3.0)" in refused.error_lines[0]
    assert "--force" in refused.err and tree_digest(PROJECT / "edits") == before
    named = cli("edit", "--replace", "car=<tok>", "--steps", "5", "--guidance", "3", "--name", "soft")
    assert named.code == 0 and (PROJECT / "edits" / "soft" / "edit.mp4").is_file()
    forced = cli("edit", "--replace", "car=<tok>", "--steps", "5", "--guidance", "3", "--force")
    assert forced.code == 0
    assert read_toml(PROJECT / "edits" / "car-tok" / "record.toml")["settings"]["guidance"] == 3.0


def test_frame_attention_is_replaced_below_the_top_resolution_and_earlier_edits_say_why_they_differ(cli, trained_here):
    """--self-replace-layers coarse (the default) leaves the top-resolution frame attention
    (8×8 here) to the edit; it is recorded only where it changes the layers from the earlier
    rule's (≤ 32×32 positions, which here was every layer). An edit the earlier rule made
    is refused under the new default with a hint that keeps it."""
    from livecli.control.attention import AttentionControl
    from livecli.control.source_attention import differs_from_earlier, layer_tokens

    assert layer_tokens((8, 8), "coarse") == 16 and layer_tokens((8, 8), "all") == 64
    assert layer_tokens((64, 64), "coarse") == 32 * 32 and not differs_from_earlier((64, 64), 32 * 32)
    assert differs_from_earlier((64, 112), layer_tokens((64, 112), "coarse"))  # 16:9 at 512 px: 56×32 too
    control = AttentionControl.__new__(AttentionControl)
    control.step, control.self_steps, control.self_tokens = 0, 1, 16
    assert control.replaces_self(16) and not control.replaces_self(64)

    assert cli("edit", "--replace", "car=<tok>", "--steps", "4").code == 0
    assert read_toml(PROJECT / "edits/car-tok/record.toml")["settings"]["self_replace_layers"] == "coarse"
    earlier = cli("edit", "--replace", "car=<tok>", "--steps", "4", "--self-replace-layers", "all", "--name", "old")
    assert earlier.code == 0, earlier.err
    assert "self_replace_layers" not in read_toml(PROJECT / "edits/old/record.toml")["settings"]  # the earlier rule
    before = tree_digest(PROJECT / "edits")
    refused = cli("edit", "--replace", "car=<tok>", "--steps", "4", "--name", "old")
    assert refused.code == 1 and "(self_replace_layers None -> 'coarse')" in refused.error_lines[0]
    assert "--self-replace-layers all keeps it as it is" in refused.err and tree_digest(PROJECT / "edits") == before


def test_invert_command_caches_by_settings(cli, trained_here):
    first = cli("invert", "--steps", "4")
    assert first.code == 0, first.err
    assert "invert: 4 DDIM steps" in first.err
    again = cli("invert", "--steps", "4")
    assert again.code == 0 and "invert: up to date" in again.err
    refined = cli("invert", "--steps", "4", "--refine", "2")
    assert refined.code == 0 and "2 fixed-point iterations" in refined.err
    assert sorted(p.name.split("-")[0] for p in (PROJECT / "invert").iterdir()) == ["ddim4", "ddim4r2"]


def test_edit_before_training_names_live_train(cli, clip, image):
    assert cli("prepare", clip, image, *PREPARE_ARGS).code == 0
    for command in (["edit", "--replace", "car=<tok>"], ["invert"]):
        result = cli(*command)
        assert result.code == 1
        assert "is not trained yet" in result.error_lines[0] and "live train" in result.err
        assert "Traceback" not in result.err


def test_edit_after_the_frames_changed_asks_to_train_again(cli, trained_here, clip, image):
    args = [a if a != "8" else "6" for a in PREPARE_ARGS]
    assert cli("prepare", clip, image, *args).code == 0
    result = cli("edit", "--replace", "car=<tok>")
    assert result.code == 1 and "is stale" in result.error_lines[0] and "live train" in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replace", "car"], "--replace 'car' is not A=B"),
        (["--replace", "=dog"], "--replace '=dog' is not A=B"),
        (["--replace", "car="], "--replace 'car=' is not A=B"),
        (["--replace", "big car=dog"], "A must be one word"),
        (["--replace", "boat=<tok>"], "'boat' is not a word of the prompt"),
        (["--replace", "car=<tok>", "--replace", "car=bus"], "--replace names 'car' more than once"),
        (["--replace", "car=<tok>", "--cross-replace", "1.5"], "--cross-replace must be between 0 and 1, got 1.5"),
        (["--replace", "car=<tok>", "--self-replace", "-0.1"], "--self-replace must be between 0 and 1"),
        (["--replace", "car=<tok>", "--blend-threshold", "2"], "--blend-threshold must be between 0 and 1"),
        (["--replace", "car=<tok>", "--blend-start", "1.2"], "--blend-start must be between 0 and 1"),
        (["--replace", "car=<tok>", "--blend", "boat"], "--blend: 'boat' not in the source prompt"),
        (["--replace", "car=<tok>", "--keep", "boat"], "--keep: 'boat' not in the source prompt"),
        (["--replace", "car=<tok>", "--steps", "0"], "--steps must be between 1 and 1000"),
        (["--replace", "car=<tok>", "--name", "../x"], "--name '../x' is not a plain folder name"),
        (["--replace", "car=<tok>", "--name", "dog\n"], "--name 'dog\\n' is not a plain folder name"),
        (["--replace", "car=<tok>", "--name", "a\tb"], "--name 'a\\tb' is not a plain folder name"),
        (["--replace", "car=<tok>", "--name", "d" * 300], f"--name '{'d' * 40}…' is not a plain folder name"),
        (["--replace", "car=<tok>", "--guidance", "nan"], "--guidance nan is not a finite number"),
        (["--replace", "car=<tok>", "--seed", str(2**64)], "--seed is out of range (1.84e+19)"),
        (["--replace", "car=<tok>", "--blend", "car", "--no-blend"], "--blend and --no-blend"),
        (
            ["--replace", "car=<tok>", "--latent-prompt", "first"],
            "--latent-prompt 'first' is not one of trained, reference",
        ),
        (
            ["--replace", "car=<tok>", "--blend-background", "grey"],
            "--blend-background 'grey' is not one of source, clip",
        ),
        (
            ["--replace", "car=<tok>", "--source-branch", "both"],
            "--source-branch 'both' is not one of sample, inversion",
        ),
        (["--replace", "car=<tok>", "--blend-scale", "min"], "--blend-scale 'min' is not one of range, max"),
        (["--replace", "car=<tok>", "--preset", "ours"], "--preset 'ours' is not one of paper"),
        (
            ["--replace", "car=<tok>", "--preset", "paper", "--latent-prompt", "reference"],
            "--latent-prompt reference contradicts --preset paper (the paper's: trained)",
        ),
        (
            ["--replace", "car=<tok>", "--preset", "paper", "--guidance", "5"],
            "--guidance 5.0 contradicts --preset paper (the paper's: 12.5)",
        ),
        (
            ["--replace", "car=<tok>", "--preset", "paper", "--blend-scale", "range"],
            "--blend-scale range contradicts --preset paper (the paper's: max)",
        ),
        (
            ["--replace", "car=<tok>", "--preset", "paper", "--window", "4"],
            "--window 4 contradicts --preset paper (the paper's: off)",
        ),
        (
            ["--replace", "car=<tok>", "--preset", "paper"],
            "--preset paper edits with the paper's method, but the training was made without it",
        ),
    ],
)
def test_bad_edit_input_is_one_line_and_changes_nothing(cli, trained_here, args, message):
    before = tree_digest(PROJECT)
    result = cli("edit", *args)
    assert result.code == 1, result.err
    assert message in result.error_lines[0]
    assert "Traceback" not in result.err
    assert tree_digest(PROJECT) == before


def test_preset_paper_edits_with_the_papers_settings_and_records_them(cli, trained_here):
    from livecli.config import EditConfig
    from livecli.fields import paper_settings

    record = read_toml(PROJECT / "train" / "record.toml")  # as `live train --preset paper` records it (500 steps)
    write_toml(PROJECT / "train" / "record.toml", {**record, "settings": {**record["settings"], "preset": "paper"}})
    result = cli("edit", "--replace", "car=<tok>", "--preset", "paper", "--steps", "50", "--name", "paper")
    assert result.code == 0, result.err
    settings = read_toml(PROJECT / "edits" / "paper" / "record.toml")["settings"]
    assert settings["preset"] == "paper" and settings["blend_scale"] == "max"
    for name, value in paper_settings(EditConfig).items():  # the defaults a record leaves out are the paper's
        assert settings.get(name, value) == value, name
    assert settings.get("latent_prompt", "trained") == "trained" and settings.get("blend_background") is None


def test_an_edit_from_the_inversion_stores_its_attention_once(cli, trained_here):
    """An inversion made without the source's attention (by a sampled edit) is run again
    to store it, under the same key: the sampled edit stays up to date, and later edits
    from the inversion reuse the store."""
    assert cli("edit", "--replace", "car=<tok>", "--steps", "6", "--name", "sampled").code == 0
    (inversion,) = (PROJECT / "invert").iterdir()
    assert not (inversion / "attention").exists()

    result = cli("edit", "--replace", "car=<tok>", "--steps", "6", "--source-branch", "inversion", "--name", "one")
    assert result.code == 0, result.err
    assert "invert: up to date" not in result.err  # inverted again (the note is hidden under LIVE_QUIET)
    assert list((PROJECT / "invert").iterdir()) == [inversion]
    stored = read_toml(inversion / "record.toml")["facts"]["attention"]
    assert (stored["cross_steps"], stored["self_steps"]) == (3, 1)  # int(0.6 · 6), int(0.3 · 6)
    files = sorted(p.name for p in (inversion / "attention").iterdir())
    assert files == [f"{step:04d}-000.safetensors" for step in range(6)]  # the blend reads every step (one window)
    assert stored["bytes"] > 0 and "source attention stored" in result.err
    edit = read_toml(PROJECT / "edits" / "one" / "record.toml")
    assert edit["settings"]["source_branch"] == "inversion"
    assert "source_branch" not in read_toml(PROJECT / "edits" / "sampled" / "record.toml")["settings"]

    other = cli("edit", "--replace", "car=red bus", "--steps", "6", "--source-branch", "inversion")
    assert other.code == 0 and "invert: up to date" in other.err
    assert cli("edit", "--replace", "car=<tok>", "--steps", "6", "--name", "sampled").err.count("up to date") == 2
    states = {s["stage"]: s["state"] for s in json.loads(cli("status", "--json").out)["stages"]}
    assert states["edit one"] == states["edit sampled"] == states[f"invert {inversion.name}"] == "done"

    # A damaged store makes the inversion stale: the next edit from it inverts again.
    intact = (inversion / "attention" / "0002-000.safetensors").read_bytes()
    (inversion / "attention" / "0002-000.safetensors").write_bytes(b"damaged")
    states = {s["stage"]: s["state"] for s in json.loads(cli("status", "--json").out)["stages"]}
    assert states[f"invert {inversion.name}"] == "stale"
    redone = cli("edit", "--replace", "car=<tok>", "--steps", "6", "--source-branch", "inversion", "--force")
    assert redone.code == 0 and "invert: up to date" not in redone.err
    assert (inversion / "attention" / "0002-000.safetensors").read_bytes() == intact


def test_blend_words_may_come_from_the_target(cli, trained_here):
    result = cli("edit", "--replace", "car=red bus", "--blend", "bus", "--steps", "3")
    assert result.code == 0, result.err
    record = read_toml(PROJECT / "edits" / "car-red-bus" / "record.toml")
    assert record["facts"]["blend_tokens"]["source"] == [] and len(record["facts"]["blend_tokens"]["target"]) == 3


def test_no_blend_writes_no_masks(cli, trained_here):
    result = cli("edit", "--replace", "car=<tok>", "--no-blend", "--steps", "3", "--name", "plain")
    assert result.code == 0, result.err
    assert not (PROJECT / "edits" / "plain" / "masks").exists() and "no blend" in result.err


def test_interrupted_edit_leaves_the_last_complete_state(cli, trained_here, monkeypatch):
    assert cli("edit", "--replace", "car=<tok>", "--steps", "3").code == 0
    before = tree_digest(PROJECT)
    from livecli.stages import edit as edit_stage

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(edit_stage, "write_gif", interrupt)
    result = cli("edit", "--replace", "car=<tok>", "--steps", "3", "--force")
    assert result.code == 130 and "interrupted" in result.err
    assert tree_digest(PROJECT) == before
    assert not list(PROJECT.rglob("*.incomplete"))


def test_edit_help_shows_every_flag(cli):
    result = cli("edit", "--help")
    assert result.code == 0
    for flag in (
        "--replace",
        "--name",
        "--steps",
        "--guidance",
        "--cross-replace",
        "--self-replace",
        "--keep",
        "--blend",
        "--blend-threshold",
        "--blur-sigma",
        "--blend-start",
        "--seed",
        "--refine",
        "--no-blend",
        "--pin-source",
        "--self-replace-layers",
        "--blend-pool",
        "--mask-region",
        "--mask-grow",
        "Examples:",
        "[default: 12.5]",
        "[default: 0.6]",
        "[default: 0.3]",
        "[default: 0.2]",
    ):
        assert flag in unwrapped(result.out), flag
    assert "--steps" in cli("invert", "--help").out and "--prompt" in cli("invert", "--help").out


@pytest.mark.skipif(not (SHARED_DATA / "videos").is_dir(), reason="no shared/data beside the checkout")
def test_a_real_clip_goes_from_train_to_edit(cli, image):
    """car-turn.mp4 from the shared data: the edit's compare video shows the clip's frames on its left."""
    clip = SHARED_DATA / "videos" / "car-turn.mp4"
    assert cli("train", clip, image, *PREPARE_ARGS, "--stride", "6", "--steps", "2").code == 0
    result = cli("edit", "-p", "car-turn.live", "--replace", "car=<tok>", "--steps", "5")
    assert result.code == 0, result.err
    compare = decoded_frames(Path("car-turn.live/edits/car-tok/compare.mp4"))
    source = sorted(Path("car-turn.live/prepare/frames").glob("*.png"))
    assert len(compare) == len(source) == 8
    left = np.asarray(compare[3].crop((0, 0, 64, 64)), dtype=np.float64)
    assert np.abs(left - np.asarray(Image.open(source[3]), dtype=np.float64)).mean() < 8  # H.264 at CRF 18
    evaluated = cli("eval", "-p", "car-turn.live")
    assert evaluated.code == 0, evaluated.err
    metrics = json.loads(Path("car-turn.live/eval/car-tok/metrics.json").read_text())
    assert metrics["rows"]["source"]["consistency_consecutive"] > 0.5 and metrics["frames"] == 8


def test_an_edit_whose_latents_overflow_fails_in_one_line_and_records_nothing(cli, ran):
    before = tree_digest(PROJECT)
    result = cli("edit", "--replace", "car=<tok>", "--name", "hot", "--steps", "4", "--guidance", "1e30")
    assert result.code == 1 and "Traceback" not in result.err
    assert (
        result.error_lines[0]
        == "error: the edit's latents are not finite (the sampling overflowed); nothing was recorded"
    )
    assert "lower --guidance (now 1e+30)" in result.err
    assert tree_digest(PROJECT) == before and not (PROJECT / "edits" / "hot").exists()


def test_a_damaged_upstream_file_is_named_by_the_edit_not_taken_as_up_to_date(cli, ran):
    """`live status` calls the edit stale once the token file changes; the same edit again
    must not say "up to date" but name the file and the command that remakes it."""
    token = PROJECT / "train" / "token.safetensors"
    token.write_bytes(token.read_bytes()[:-4] + b"\0\0\0\0")
    statuses = json.loads(cli("status", "--json").out)["stages"]
    assert {s["stage"]: s["state"] for s in statuses}["train"] == "stale"
    result = cli("edit", "--replace", "car=<tok>", "--steps", "4")
    assert result.code == 1 and "up to date" not in result.out + result.err, result.err
    assert "train/token.safetensors differs from what its record says" in result.error_lines[0]
    assert "live train" in result.err


def test_output_size_source_says_which_part_of_the_clip_the_frames_cover(cli, image, tmp_path, monkeypatch):
    """A rotated 36×64 clip framed at 64×128 (sides the model takes): the frames cover
    32×64 of it, and edit.mp4 is that part at the clip's scale, as the edit says."""
    from clips import write_clip

    monkeypatch.setenv("LIVE_QUIET", "0")
    clip = write_clip(tmp_path / "upright.mp4", frames=6, width=64, height=36, rotation=90)
    args = ("--replace", "car=<tok>", "--train-steps", "1", "--edit-steps", "2", "--no-eval", "--output-size", "source")
    result = cli("run", clip, image, *PREPARE_ARGS[:-6], "--frames", "4", "--size", "64", *args)  # aspect kept
    assert result.code == 0, result.err
    assert "edit.mp4 is 32×64: the part of the 36×64 clip that the 64×128 frames cover" in result.err
    assert {frame.size for frame in decoded_frames(Path("upright.live") / "edits" / "car-tok" / "edit.mp4")} == {
        (32, 64)
    }


def test_source_branch_auto_reads_the_store_only_where_it_pays(cli, made, monkeypatch):
    """`auto`: `sample` on small frames (the store would not pay) or where its store does not
    fit on the disk, else `inversion`; the record keeps what was chosen."""
    monkeypatch.setenv("LIVE_QUIET", "0")
    copied_here(made("train", "clip.mp4", "ref.png", *PREPARE_ARGS, "--steps", "2"))  # 64 px
    small = cli("edit", "--replace", "car=<tok>", "--steps", "3", "--source-branch", "auto")
    assert small.code == 0 and "--source-branch auto: sample (at 64 px the stored attention would not pay)" in small.err
    assert "source_branch" not in read_toml(PROJECT / "edits" / "car-tok" / "record.toml")["settings"]  # the default

    monkeypatch.setattr("livecli.stages.edit.AUTO_MIN_LATENT_SIDE", 8)  # 64 px as if it were 256: seconds, not a minute
    large = cli("edit", "--replace", "car=<tok>", "--steps", "3", "--source-branch", "auto", "--name", "large")
    assert large.code == 0 and "--source-branch auto: inversion (a store of" in large.err, large.err
    assert read_toml(PROJECT / "edits" / "large" / "record.toml")["settings"]["source_branch"] == "inversion"
    monkeypatch.setattr("shutil.disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    full = cli("edit", "--replace", "car=<tok>", "--steps", "3", "--source-branch", "auto", "--name", "full")
    assert full.code == 0 and "auto: sample (the store would take" in full.err, full.err
