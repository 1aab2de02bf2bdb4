"""`live prepare` end to end through the CLI, with the tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from clips import write_clip
from helpers import PREPARE_ARGS, SHARED_DATA, tree_digest
from livecli.models.vae import images_to_tensor
from livecli.store import MANIFEST, read_toml, sha256_file, write_toml

PROJECT = Path("clip.live")


@pytest.fixture
def prepared(cli, clip, image) -> Path:
    result = cli("prepare", clip, image, *PREPARE_ARGS)
    assert result.code == 0, result.err
    return PROJECT


def test_prepare_writes_frames_latents_and_manifest(cli, clip, image, tiny_sd):
    result = cli("prepare", clip, image, *PREPARE_ARGS)
    assert result.code == 0, result.err
    assert "prepare: 8 frames 64×64" in result.err

    stage = PROJECT / "prepare"
    frames = sorted((stage / "frames").glob("*.png"))
    assert [f.name for f in frames] == [f"{i:04d}.png" for i in range(8)]
    assert all(Image.open(f).size == (64, 64) for f in frames)
    assert Image.open(stage / "reference.png").size == (64, 64)

    latents = load_file(stage / "latents.safetensors")
    assert latents["frames"].shape == (8, 4, 8, 8) and latents["reference"].shape == (1, 4, 8, 8)
    assert latents["frames"].dtype == torch.float32
    with safe_open(stage / "latents.safetensors", "pt") as handle:
        assert float(handle.metadata()["scaling_factor"]) == pytest.approx(0.18215)

    # Independent computation: the tiny VAE's posterior mean of the written PNGs, scaled.
    pixels = images_to_tensor([Image.open(f) for f in frames] + [Image.open(stage / "reference.png")])
    with torch.no_grad():
        expected = torch.cat([tiny_sd.vae.encode(pixels[i : i + 1]).latent_dist.mean for i in range(9)]) * 0.18215
    torch.testing.assert_close(torch.cat([latents["frames"], latents["reference"]]), expected, atol=1e-5, rtol=1e-4)
    assert (expected - latents["frames"][:1]).abs().amax() > 1e-2, "latents of different frames differ"

    manifest = read_toml(PROJECT / MANIFEST)
    assert manifest["schema"] == 1 and manifest["prompt"] == "a jeep car is moving on the road"
    assert manifest["object"] == "car"
    assert manifest["model"] == {"id": "tiny", "kind": "tiny", "revision": "tiny-v1"}
    assert manifest["sources"]["clip"]["sha256"] == sha256_file(clip)
    record = read_toml(stage / "record.toml")
    assert record["facts"]["frames_shape"] == [8, 4, 8, 8] and record["facts"]["fps"] == pytest.approx(10.0)
    assert set(record["outputs"]) == {*(f"frames/{f.name}" for f in frames), "reference.png", "latents.safetensors"}


def test_the_same_command_again_is_up_to_date_and_encodes_nothing(cli, prepared, clip, image, monkeypatch):
    before = tree_digest(prepared)
    manifest_written = (prepared / MANIFEST).stat().st_mtime_ns

    def must_not_encode(*args, **kwargs):
        raise AssertionError("encoded again")

    monkeypatch.setattr("livecli.stages.prepare.encode_images", must_not_encode)
    monkeypatch.setattr("livecli.stages.prepare.sample_frames", must_not_encode)
    result = cli("prepare", clip, image, *PREPARE_ARGS)
    assert result.code == 0, result.err
    assert "prepare: up to date" in result.err
    assert tree_digest(prepared) == before
    assert (prepared / MANIFEST).stat().st_mtime_ns == manifest_written


def test_changed_settings_or_force_run_again(cli, prepared, clip, image):
    first = read_toml(prepared / "prepare" / "record.toml")
    result = cli("prepare", clip, image, *PREPARE_ARGS, "--force")
    assert result.code == 0 and "up to date" not in result.err
    assert read_toml(prepared / "prepare" / "record.toml")["fingerprint"] == first["fingerprint"]

    result = cli("prepare", clip, image, *PREPARE_ARGS, "--frames", "6", "--stride", "2")
    assert result.code == 0, result.err
    assert len(list((prepared / "prepare" / "frames").glob("*.png"))) == 6
    assert read_toml(prepared / "prepare" / "record.toml")["fingerprint"] != first["fingerprint"]


def test_a_saved_tiny_folder_gives_identical_latents(cli, prepared, clip, image, tiny_sd, tmp_path):
    tiny_sd.save_pretrained(tmp_path / "tiny-folder")
    result = cli("prepare", clip, image, *PREPARE_ARGS, "--model", tmp_path / "tiny-folder", "-p", "folder.live")
    assert result.code == 0, result.err
    ours = load_file(Path("folder.live/prepare/latents.safetensors"))
    theirs = load_file(prepared / "prepare" / "latents.safetensors")
    assert torch.equal(ours["frames"], theirs["frames"]) and torch.equal(ours["reference"], theirs["reference"])
    assert read_toml(Path("folder.live") / MANIFEST)["model"]["kind"] == "folder"


def test_a_single_file_checkpoint_with_its_configs_gives_identical_latents(
    cli, prepared, clip, image, tiny_sd, tmp_path
):
    from safetensors.torch import save_file

    from ldm import ldm_checkpoint

    tiny_sd.save_pretrained(tmp_path / "configs")
    save_file(ldm_checkpoint(tiny_sd), tmp_path / "tiny.safetensors")
    args = ("--model", tmp_path / "tiny.safetensors", "--model-config", tmp_path / "configs", "-p", "file.live")
    result = cli("prepare", clip, image, *PREPARE_ARGS, *args)
    assert result.code == 0, result.err
    ours = load_file(Path("file.live/prepare/latents.safetensors"))
    theirs = load_file(prepared / "prepare" / "latents.safetensors")
    assert torch.equal(ours["frames"], theirs["frames"])
    assert read_toml(Path("file.live") / MANIFEST)["model"]["config"] == str((tmp_path / "configs").resolve())

    # Training reads the UNet and text encoder from the same file (and the project's model
    # without --model): the result equals training the tiny folder model.
    assert cli("train", "-p", "file.live", "--steps", "2").code == 0
    assert cli("train", "-p", prepared, "--steps", "2").code == 0
    for name in ("attention_deltas.safetensors", "token.safetensors", "latent_prompt.safetensors"):
        ours, theirs = load_file(Path("file.live/train") / name), load_file(prepared / "train" / name)
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_folder_of_frames_as_clip(cli, image, tmp_path):
    from clips import write_frame_folder

    folder = write_frame_folder(tmp_path / "shots", frames=10)
    result = cli("prepare", folder, image, *PREPARE_ARGS)
    assert result.code == 0, result.err
    assert load_file(Path("shots.live/prepare/latents.safetensors"))["frames"].shape == (8, 4, 8, 8)


def _corrupt_video(tmp_path: Path) -> Path:
    full = write_clip(tmp_path / "full.mp4", frames=12)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return cut


def _text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("not a video\n" * 50)
    return path


BAD_INPUTS = {
    "missing clip": (
        lambda t, clip, image: ("prepare", t / "nope.mp4", image, *PREPARE_ARGS),
        "nope.mp4 does not exist",
    ),
    "missing image": (
        lambda t, clip, image: ("prepare", clip, t / "nope.png", *PREPARE_ARGS),
        "nope.png does not exist",
    ),
    "text as clip": (
        lambda t, clip, image: ("prepare", _text_file(t), image, *PREPARE_ARGS),
        "notes.txt is a text file, not a video",
    ),
    "truncated clip": (lambda t, clip, image: ("prepare", _corrupt_video(t), image, *PREPARE_ARGS), "cut.mp4"),
    "not an image": (lambda t, clip, image: ("prepare", clip, _text_file(t), *PREPARE_ARGS), "is not an image"),
    "too few frames": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--frames", "20"),
        "has 12 frames",
    ),
    "size": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--size", "60"),
        "--size 60 does not suit the model: its sides must be multiples of 32 px",
    ),
    "size WxH": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS[:-2], "--size", "100x64"),
        "--size 100x64 does not suit the model",
    ),
    "size text": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--size", "big"),
        "--size must be a number or WxH, got 'big'",
    ),
    "frames 0": (lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--frames", "0"), "--frames must be"),
    "frames text": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--frames", "many"),
        "--frames must be a number or 'all'",
    ),
    "duration 0": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--duration", "0"),
        "--duration must be a positive number",
    ),
    "duration past the end": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--frames", "all", "--duration", "5"),
        "--duration 5 from --start 0 runs past the end",
    ),
    "too long": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--frames", "all", "--max-frames", "10"),
        "gives 12 frames, over --max-frames 10",
    ),
    "crop": (lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--crop", "round"), "--crop 'round'"),
    "object": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--object", "truck"),
        "'truck' is not a word of the prompt 'a jeep car is moving on the road'",
    ),
    "no model": (lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--model", t / "none"), "not found"),
    "bad device": (lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--device", "tpu"), "--device 'tpu'"),
    "fifo as clip": (
        lambda t, clip, image: ("prepare", _fifo(t), image, *PREPARE_ARGS),
        "is a FIFO (named pipe), not a",
    ),
    "fifo as image": (
        lambda t, clip, image: ("prepare", clip, _fifo(t), *PREPARE_ARGS),
        "is a FIFO (named pipe), not a",
    ),
    "folder as image": (lambda t, clip, image: ("prepare", clip, t, *PREPARE_ARGS), "is a folder, not a file"),
    "newline in path": (
        lambda t, clip, image: ("prepare", f"{clip}\n", image, *PREPARE_ARGS),
        "clip.mp4\\n' holds a control character",
    ),
    "start inf": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--start", "inf"),
        "--start inf is not a finite number",
    ),
    "start past the end": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--start", "1e300"),
        "lasts 1.2 s: nothing to sample from --start 1e+300",
    ),
    "prompt past 77 tokens": (
        lambda t, clip, image: ("prepare", clip, image, *_long_prompt_args()),
        "tokens long and the text encoder reads 77; 'car' is token",
    ),
    "huge stride": (
        lambda t, clip, image: ("prepare", clip, image, *PREPARE_ARGS, "--stride", str(10**30)),
        "--stride is out of range (1e+30)",
    ),
}


def _long_prompt_args() -> tuple[str, ...]:
    """The object word past CLIP's 77 tokens (the tiny tokenizer reads a token a letter)."""
    return ("--prompt", "a very " * 16 + "jeep car is moving", "--object", "car", "--model", "tiny")


def _fifo(folder: Path) -> Path:
    """A named pipe nobody writes to: reading it would wait for ever."""
    path = folder / "pipe.mp4"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_1_and_leaves_the_project_alone(cli, prepared, clip, image, tmp_path, case):
    make_args, expected = BAD_INPUTS[case]
    before = tree_digest(prepared)
    result = cli(*make_args(tmp_path, clip, image), "-p", prepared)
    assert result.code == 1
    assert len(result.error_lines) == 1 and expected in result.error_lines[0], result.err
    assert "hint:" in result.err
    assert "Traceback" not in result.err
    assert tree_digest(prepared) == before
    assert not [p for p in prepared.iterdir() if p.name.startswith(".") and p.name != ".lock"]


def test_a_newer_project_schema_is_refused(cli, prepared, clip, image):
    manifest = read_toml(prepared / MANIFEST)
    write_toml(prepared / MANIFEST, {**manifest, "schema": 7, "live_version": "3.0.0"})
    before = tree_digest(prepared)
    result = cli("prepare", clip, image, *PREPARE_ARGS)
    assert result.code == 1
    assert (
        "project schema 7 (written by live 3.0.0)" in result.error_lines[0]
        and "reads schema 1" in result.error_lines[0]
    )
    assert tree_digest(prepared) == before
    assert cli("status").code == 1


def test_a_locked_project_fails_at_once(cli, prepared, clip, image):
    import subprocess
    import sys

    from test_store import LOCK_HOLDER

    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(prepared)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = cli("prepare", clip, image, *PREPARE_ARGS, "--force")
    finally:
        holder.kill()
        holder.wait()
    assert result.code == 1
    assert f"is in use by another live process (pid {holder.pid})" in result.error_lines[0]


def test_ctrl_c_in_the_middle_keeps_the_last_state_and_a_rerun_finishes(cli, prepared, clip, image, monkeypatch):
    before = tree_digest(prepared)
    calls = []

    def interrupted(vae, images, batch_size, advance=None):
        calls.append(len(images))
        raise KeyboardInterrupt

    monkeypatch.setattr("livecli.stages.prepare.encode_images", interrupted)
    result = cli("prepare", clip, image, *PREPARE_ARGS, "--frames", "6")
    assert result.code == 130 and calls == [7]
    assert "interrupted" in result.err
    assert tree_digest(prepared) == before
    assert sorted(p.name for p in prepared.iterdir()) == [".lock", MANIFEST, "prepare"]

    monkeypatch.undo()
    result = cli("prepare", clip, image, *PREPARE_ARGS, "--frames", "6")
    assert result.code == 0, result.err
    assert load_file(prepared / "prepare" / "latents.safetensors")["frames"].shape == (6, 4, 8, 8)


def test_a_failed_first_prepare_leaves_no_folder_behind(cli, clip, tmp_path):
    result = cli("prepare", clip, _text_file(tmp_path), *PREPARE_ARGS)
    assert result.code == 1
    assert not PROJECT.exists()


@pytest.mark.skipif(not (SHARED_DATA / "videos").is_dir(), reason="no shared/data beside the checkout")
@pytest.mark.parametrize(
    ("clip_name", "stride"), [("car-turn.mp4", 6), ("rabbit-jump_frames", 1), ("man-skiing.mp4", 2)]
)
def test_real_clips(cli, image, clip_name, stride):
    result = cli("prepare", SHARED_DATA / "videos" / clip_name, image, *PREPARE_ARGS, "--stride", str(stride))
    assert result.code == 0, result.err
    project = Path(f"{Path(clip_name).stem}.live")
    frames = [
        np.asarray(Image.open(p), dtype=np.float64) for p in sorted((project / "prepare" / "frames").glob("*.png"))
    ]
    assert len(frames) == 8
    assert np.mean([np.abs(a - b).mean() for a, b in zip(frames, frames[1:], strict=False)]) > 0.5, (
        "consecutive frames differ"
    )


def test_frames_prepared_past_the_default_max_frames_are_still_usable(cli, image, tmp_path):
    """--max-frames is a guard when preparing, not a setting: the later stages, which bring
    the prepared frames up to date from their record, must not re-check its default."""
    from clips import write_frame_folder
    from livecli.config import ModelConfig, PrepareConfig
    from livecli.fields import default_of
    from livecli.stages import prepare as prepare_stage
    from livecli.store import Project

    count = default_of(PrepareConfig, "max_frames") + 2
    folder = write_frame_folder(tmp_path / "long", frames=count, size=16)
    args = ("--frames", "all", "--size", "32", "--crop", "square", "--max-frames", str(count))
    assert cli("prepare", folder, image, *PREPARE_ARGS, *args).code == 0
    refreshed = prepare_stage.refresh(Project(Path("long.live")), ModelConfig(model="tiny"))
    assert refreshed.skipped and refreshed.record.facts["frames_shape"][0] == count


@pytest.mark.parametrize("name", ["new\n.live", "new.live ", "\tnew.live"])
def test_a_project_folder_no_one_could_type_is_refused(cli, clip, image, tmp_path, name):
    result = cli("prepare", clip, image, *PREPARE_ARGS, "-p", tmp_path / name)
    assert result.code == 1 and "would have a name no one can type" in result.error_lines[0], result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "ref.png"]
