"""The inputs a new user's probe got through: each is refused in one line, exit ≠ 0, before
anything is written or made stale, the project and everything outside it unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from clips import write_clip
from helpers import PREPARE_ARGS, SMALL, tree_digest

PROJECT = Path("clip.live")


def refused(result, *words: str) -> str:
    """The one error line of a refused command, which names each of `words`."""
    assert result.code == 1, result.err
    assert "Traceback" not in result.err and len(result.error_lines) == 1, result.err
    line = result.error_lines[0]
    assert all(word in line for word in words), line
    return line


def unchanged(before: dict[str, str], folder: Path) -> None:
    assert tree_digest(folder) == before


# --------------------------------------------------------------------------- clip masks


def test_an_empty_mask_on_a_new_project_records_no_frames(cli, clip, image):
    Image.new("L", (64, 48), 0).save("empty.png")
    refused(cli("prepare", clip, image, *SMALL, "--mask", "empty.png"), "--mask", "empty.png", "empty")
    assert not PROJECT.exists()


def test_a_mask_that_does_not_fit_new_settings_keeps_the_project_as_it_was(cli, edited):
    write_clip(Path("short-mask.mp4"), frames=2)
    before = tree_digest(PROJECT)
    args = ("prepare", "clip.mp4", "ref.png", *PREPARE_ARGS[:6], "--frames", "3", "--size", "64", "--crop", "square")
    refused(cli(*args, "--mask", "short-mask.mp4"), "--mask", "short-mask.mp4", "mask video", "too short")
    unchanged(before, PROJECT)
    states = [row["state"] for row in json.loads(cli("status", "--json").out)["stages"]]
    assert len(states) == 5 and set(states) == {"done"}  # prepare, train, invert, edit, eval: none made stale


# --------------------------------------------------------------------------- the clip's shape


def test_a_clip_whose_long_side_passes_the_bound_is_refused_before_decoding(cli, image):
    Path("wide").mkdir()
    for index in range(3):
        Image.new("RGB", (2048, 16), (index * 60, 0, 0)).save(f"wide/{index}.png")
    args = ("prepare", "wide", image, *PREPARE_ARGS[:6], "--size", "256")
    refused(cli(*args), "2048×16", "32768×256", "up to 256 px")
    assert not Path("wide.live").exists()


def test_a_frame_folder_of_mixed_sizes_is_refused_not_resized(cli, image):
    Path("frames").mkdir()
    for index, size in enumerate([(64, 48), (64, 48), (80, 48)]):
        Image.new("RGB", size, (index * 60, 0, 0)).save(f"frames/{index}.png")
    refused(cli("prepare", "frames", image, *PREPARE_ARGS[:6], "--size", "64"), "2.png", "80×48", "64×48")
    assert not Path("frames.live").exists()


# --------------------------------------------------------------------------- prompts and words


def test_a_target_prompt_past_77_tokens_is_refused_before_any_stage(cli, clip, image, edited):
    long = "car=" + " ".join(["dog"] * 80)
    refused(cli("run", clip, image, *SMALL, "--replace", long, "-p", "new.live"), "target prompt", "77")
    assert not Path("new.live").exists()
    before = tree_digest(PROJECT)
    refused(cli("edit", "--replace", long), "target prompt", "77")  # before the inversion, too
    unchanged(before, PROJECT)


def test_a_replaced_word_also_kept_is_said(monkeypatch):
    from livecli.config import EditConfig
    from livecli.stages import edit

    said: list[str] = []
    monkeypatch.setattr(edit.progress, "say", said.append)
    edit.say_kept_replaced(EditConfig(replace=("car=<tok>",), keep="car road"))
    assert len(said) == 1 and "--keep names 'car', which --replace changes" in said[0]
    edit.say_kept_replaced(EditConfig(replace=("car=<tok>",), keep="road"))
    assert len(said) == 1


def test_a_name_with_an_accent_gets_a_hint_that_says_so(cli, edited):
    result = cli("edit", "--replace", "car=<tok>", "--name", "café")
    refused(result, "--name", "café")
    assert "no accents" in result.err


# --------------------------------------------------------------------------- the cache and the records


@pytest.mark.parametrize("variable", ["LIVE_CACHE_DIR", "XDG_CACHE_HOME"])
def test_an_unusable_cache_folder_is_one_line_naming_it_and_its_variable(cli, clip, image, monkeypatch, variable):
    Path("not-a-folder").write_text("a file")
    monkeypatch.delenv("LIVE_CACHE_DIR", raising=False)
    monkeypatch.setenv(variable, str(Path("not-a-folder").resolve()))
    refused(cli("prepare", clip, image, *SMALL), "not-a-folder", f"${variable}")
    assert not PROJECT.exists() and Path("not-a-folder").read_text() == "a file"


def test_a_record_that_names_a_file_outside_its_folder_is_damaged_not_followed(cli, edited, monkeypatch):
    from livecli import store

    record = PROJECT / "train" / "record.toml"
    record.write_text(record.read_text().replace("[outputs]\n", '[outputs]\n"../../secret.txt" = "0"\n', 1))
    Path("secret.txt").write_text("not the project's")
    read: list[Path] = []
    hash_file = store.sha256_file
    monkeypatch.setattr(store, "sha256_file", lambda path: read.append(Path(path).resolve()) or hash_file(path))
    status = cli("status", "--json")
    train = next(row for row in json.loads(status.out)["stages"] if row["stage"] == "train")
    assert "is damaged" in train["reason"] and "not a file inside its folder" in train["reason"]
    assert Path("secret.txt").resolve() not in read
    refused(cli("edit", "--replace", "car=<tok>"), "record.toml", "damaged", "outputs")


# --------------------------------------------------------------------------- jobs files


def test_a_jobs_value_that_is_not_a_list_of_tables_says_so(cli):
    Path("jobs.toml").write_text("jobs = 5\n")
    refused(cli("batch", "jobs.toml"), "`jobs` must be a list of [[jobs]] tables, got 5")
