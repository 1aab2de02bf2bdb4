"""Steering the swap: several reference images, reference masks and augmentation for the
image objective, object masks for the clip and local blend (references.py, augment.py,
masks.py, prepare, objectives, control/blend.py, eval)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clips import write_image
from helpers import PREPARE_ARGS, RUN_ARGS, tree_digest
from livecli.augment import Strength, augment
from livecli.config import TrainConfig
from livecli.control.blend import LocalBlend
from livecli.models.loading import resolve_model
from livecli.objectives import MixedPrecision, weighted_mse
from livecli.store import Project, read_toml

PROJECT = Path("clip.live")


def write_views(folder: Path, count: int) -> list[Path]:
    """`count` reference pictures of other sizes (a red disc on a gradient each)."""
    folder.mkdir(exist_ok=True)
    return [write_image(folder / f"view{k}.png", size=(60 + 10 * k, 50 + 5 * k)) for k in range(count)]


def with_alpha(path: Path) -> Path:
    """A copy of the picture whose alpha is opaque on a centre box only: its object."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    alpha = np.zeros(rgb.shape[:2], np.uint8)
    height, width = alpha.shape
    alpha[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 255
    out = path.with_name(path.stem + "-alpha.png")
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(out)
    return out


def trainer_of(project: Project, **settings):
    from livecli.stages import prepare as prepare_stage
    from livecli.stages import train as train_stage

    precision = MixedPrecision("no", torch.device("cpu"))
    trainer, _ = train_stage.build_trainer(
        resolve_model("tiny"),
        TrainConfig(**settings),
        precision,
        project.manifest(),
        prepare_stage.latents(project),
        checkpoint=None,
    )
    return trainer


# --------------------------------------------------------------------------- several references


def test_several_references_are_prepared_kept_and_drawn_by_the_image_objective(cli, clip, image, tmp_path):
    views = write_views(tmp_path / "refs", 2)
    result = cli("prepare", clip, image, *views, *PREPARE_ARGS)
    assert result.code == 0, result.err
    assert "3 references [3, 4, 8, 8]" in result.err
    prepared = PROJECT / "prepare"
    assert sorted(p.name for p in (prepared / "references").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert (prepared / "reference.png").read_bytes() == (prepared / "references" / "0000.png").read_bytes()
    manifest = read_toml(PROJECT / "live.toml")
    assert [Path(entry["path"]).name for entry in manifest["references"]] == ["ref.png", "view0.png", "view1.png"]
    record = read_toml(prepared / "record.toml")
    assert len(record["inputs"]["references"].split(",")) == 3

    trainer = trainer_of(Project(PROJECT))
    generator = torch.Generator().manual_seed(0)
    drawn = [trainer.reference_view(generator)[0] for _ in range(40)]
    assert set(drawn) == {0, 1, 2}  # each picture is drawn
    index, latents, weights = trainer.reference_view(torch.Generator().manual_seed(1))
    assert torch.equal(latents, trainer.reference[index : index + 1]) and weights is None

    # --reference DIR takes every image of the folder, in natural order.
    assert cli("prepare", clip, "--reference", tmp_path / "refs", *PREPARE_ARGS, "-p", "other.live").code == 0
    other = read_toml(Path("other.live/prepare/record.toml"))["inputs"]["references"].split(",")
    assert other == record["inputs"]["references"].split(",")[1:]


CAPTIONS = ("a <tok> on a gradient", "a <tok> on a red wall", "a <tok> on green grass")


def test_each_reference_may_have_its_own_caption_which_the_image_objective_reads_with_it(
    cli, clip, image, tmp_path, monkeypatch
):
    from livecli.models import text as text_model

    views = write_views(tmp_path / "refs", 2)
    assert cli("prepare", clip, image, *views, *PREPARE_ARGS).code == 0
    trainer = trainer_of(Project(PROJECT), reference_prompt=CAPTIONS)
    assert trainer.token_prompts == tuple(c.replace("<tok>", "<@#$>") for c in CAPTIONS)
    encoded = []
    original = text_model.encode
    monkeypatch.setattr(text_model, "encode", lambda encoder, ids: encoded.append(ids) or original(encoder, ids))
    from livecli.models.loading import load_tokenizer

    tokenizer = load_tokenizer(resolve_model("tiny"))
    tokenizer.add_tokens(["<@#$>"])
    generator, drawn = torch.Generator().manual_seed(5), set()
    for _ in range(12):
        index = trainer.reference_view(torch.Generator().set_state(generator.get_state()))[0]
        trainer.text_loss(generator, timestep=300)
        expected = text_model.tokenize(tokenizer, [trainer.token_prompts[index]])
        assert torch.equal(encoded[-1], expected), index  # the caption of the picture drawn
        drawn.add(index)
    assert drawn == {0, 1, 2}

    before = tree_digest(PROJECT)
    wrong = cli("train", "--steps", "1", "--reference-prompt", CAPTIONS[0], "--reference-prompt", CAPTIONS[1])
    assert wrong.code != 0 and "Traceback" not in wrong.err
    assert wrong.error_lines == ["error: --reference-prompt was given 2 times for 3 reference images"]
    assert tree_digest(PROJECT) == before
    captions = [arg for caption in CAPTIONS for arg in ("--reference-prompt", caption)]
    assert cli("train", "--steps", "1", *captions).code == 0
    record = read_toml(PROJECT / "train" / "record.toml")
    assert record["settings"]["reference_prompt"] == list(CAPTIONS)
    assert record["facts"]["token_prompts"] == list(trainer.token_prompts)


def test_one_reference_draws_nothing_and_keeps_the_manifest_it_always_had(cli, clip, image):
    assert cli("prepare", clip, image, *PREPARE_ARGS).code == 0
    manifest = read_toml(PROJECT / "live.toml")
    assert "references" not in manifest and set(manifest["sources"]) == {"clip", "image"}
    assert set(read_toml(PROJECT / "prepare" / "record.toml")["inputs"]) == {"clip", "image", "model"}
    trainer = trainer_of(Project(PROJECT))
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    trainer.reference_view(generator)
    assert torch.equal(generator.get_state(), state)  # no draw: training stays bit for bit as before


# --------------------------------------------------------------------------- reference masks


def test_a_png_s_alpha_channel_weights_the_image_objective_to_the_object(cli, clip, image):
    assert cli("prepare", clip, with_alpha(image), *PREPARE_ARGS).code == 0
    prepared = PROJECT / "prepare"
    record = read_toml(prepared / "record.toml")
    assert record["inputs"]["reference_masks"] == "alpha" and record["facts"]["reference_weights_shape"] == [1, 1, 8, 8]
    mask = np.asarray(Image.open(prepared / "reference_masks" / "0000.png"))
    assert mask[:, :8].max() == 0 and mask[32, 32] == 255  # the object box in; the mirrored margins out

    trainer = trainer_of(Project(PROJECT))
    weights = trainer.reference_weights
    assert weights.shape == (1, 1, 8, 8) and 0 < float(weights.mean()) < 1
    seen = {}
    original = trainer._predict

    def spy(prompt, noisy, timestep, text, temporal, links=None):
        seen["predicted"] = original(prompt, noisy, timestep, text, temporal, links)
        return seen["predicted"]

    trainer._predict = spy
    generator = torch.Generator().manual_seed(4)
    loss = trainer.text_loss(generator, timestep=300)
    noise = torch.randn(trainer.reference.shape, generator=torch.Generator().manual_seed(4))
    kept = weights.expand_as(noise).bool()
    expected = (seen["predicted"].float() - noise)[kept].square().mean()  # the object's cells only
    torch.testing.assert_close(loss, expected)


def test_weighted_mse_counts_the_kept_cells_only():
    predicted, target = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    weights = torch.zeros(1, 1, 6, 6)
    weights[..., 1:4, 2:5] = 1
    manual = (predicted - target)[..., 1:4, 2:5].square().mean()
    torch.testing.assert_close(weighted_mse(predicted, target, weights), manual)
    changed = target.clone()
    changed[..., 5, :] += 10  # outside the kept cells: the loss does not move
    assert torch.equal(weighted_mse(predicted, changed, weights), weighted_mse(predicted, target, weights))


def test_bad_reference_masks_are_one_line_and_write_nothing(cli, clip, image, tmp_path):
    cli("prepare", clip, image, *PREPARE_ARGS)
    before = tree_digest(PROJECT)
    empty = tmp_path / "empty.png"
    Image.new("L", (80, 60), 0).save(empty)
    wrong = tmp_path / "wrong.png"
    Image.new("L", (30, 90), 255).save(wrong)
    cases = [
        (("--reference-mask", empty, "--reference-mask", empty), "2 --reference-mask for 1 reference images"),
        (("--reference-mask", empty), "is empty"),
        (("--reference-mask", wrong), "is 30×90, its reference image 80×60"),
        (("--reference-mask", tmp_path / "none.png"), "does not exist"),
    ]
    for extra, message in cases:
        result = cli("prepare", clip, image, *extra, *PREPARE_ARGS)
        assert result.code == 1 and len(result.error_lines) == 1 and message in result.error_lines[0], result.err
        assert "Traceback" not in result.err
    assert tree_digest(PROJECT) == before


# --------------------------------------------------------------------------- augmentation


def test_augmentation_without_motion_is_the_picture_or_its_mirror():
    latents = torch.randn(1, 4, 8, 12, generator=torch.Generator().manual_seed(0))
    weights = (torch.rand(1, 1, 8, 12, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    still = Strength(scale=(1.0, 1.0), degrees=0.0, shift=0.0)
    flips = set()
    for seed in range(8):
        viewed, moved = augment(latents, weights, still, torch.Generator().manual_seed(seed))
        flipped = torch.allclose(viewed, latents.flip(-1), atol=1e-5)
        assert flipped or torch.allclose(viewed, latents, atol=1e-5)
        assert torch.equal(moved, weights.flip(-1) if flipped else weights)
        flips.add(flipped)
    assert flips == {True, False}


def test_augmentation_moves_the_weights_with_the_picture_and_keeps_its_colours():
    latents = torch.zeros(1, 4, 16, 16)
    latents[..., 6:10, 6:10] = torch.tensor([1.0, -2.0, 0.5, 3.0]).view(1, 4, 1, 1)
    weights = (latents[:, :1] != 0).float()
    strong = Strength(scale=(0.75, 1.25), degrees=15.0, shift=0.1)
    for seed in range(6):
        viewed, moved = augment(latents, weights, strong, torch.Generator().manual_seed(seed))
        inside = moved[0, 0].bool()
        assert inside.any()
        # The object's cells hold the object's own values (bilinear edges aside): no colour change.
        core = F.max_pool2d(1 - moved, 3, stride=1, padding=1)[0, 0] == 0
        if core.any():
            torch.testing.assert_close(
                viewed[0, :, core].mean(1), torch.tensor([1.0, -2.0, 0.5, 3.0]), atol=0.05, rtol=0
            )


def test_reference_augment_draws_a_new_view_each_step(cli, clip, image):
    cli("prepare", clip, image, *PREPARE_ARGS)
    trainer = trainer_of(Project(PROJECT), reference_augment="light")
    generator = torch.Generator().manual_seed(0)
    first, second = (trainer.reference_view(generator)[1] for _ in range(2))
    assert not torch.equal(first, second) and not torch.equal(first, trainer.reference)


# --------------------------------------------------------------------------- clip masks and local blend


def write_masks(folder: Path, count: int, box=(20, 10, 44, 38), size=(64, 48)) -> Path:
    folder.mkdir(exist_ok=True)
    for k in range(count):
        mask = Image.new("L", size, 0)
        mask.paste(255, box)
        mask.save(folder / f"{k + 1}.png")
    return folder


def test_both_masks_keep_what_either_says():
    given = torch.zeros(2, 1, 4, 4)
    given[:, :, 0, 0] = 1
    blend = LocalBlend(2, (4, 4), 1, (1,), (1,), 0.5, 0.0, latent_prompt=False, given=given, mode="both")
    maps = torch.zeros(2, 1, 16, 77)
    maps[:, :, 15, 1] = 1  # the blend word's attention on the last cell
    blend.record(maps, maps)
    attention = LocalBlend(2, (4, 4), 1, (1,), (1,), 0.5, 0.0, latent_prompt=False)
    attention.record(maps, maps)
    mask, alone = blend.mask(), attention.mask()
    assert alone[:, 0, 0, 0].tolist() == [0.0, 0.0] and alone[:, 0, 3, 3].tolist() == [1.0, 1.0]
    assert torch.equal(mask, torch.maximum(alone, given))
    only_given = LocalBlend(2, (4, 4), 1, (), (), 0.5, 0.0, latent_prompt=False, given=given, mode="given")
    assert torch.equal(only_given.mask(), given)


def test_bad_clip_masks_are_one_line_and_write_nothing(cli, clip, image, tmp_path):
    cli("prepare", clip, image, *PREPARE_ARGS)
    before = tree_digest(PROJECT)
    empty = tmp_path / "empty.png"
    Image.new("L", (64, 48), 0).save(empty)
    tall = tmp_path / "tall.png"
    Image.new("L", (48, 64), 255).save(tall)
    cases = [
        (write_masks(tmp_path / "five", 5), "holds 5 masks; the sampled clip has 8 frames"),
        (empty, "is empty"),
        (tall, "is 48×64, the clip 64×48"),
        (tmp_path / "nothere.png", "does not exist"),
    ]
    for mask, message in cases:
        result = cli("prepare", clip, image, "--mask", mask, *PREPARE_ARGS)
        assert result.code == 1 and len(result.error_lines) == 1 and message in result.error_lines[0], result.err
    assert tree_digest(PROJECT) == before
    result = cli("edit", "--replace", "car=<tok>", "--blend-mask", "given", "--model", "tiny")
    assert result.code == 1 and "--blend-mask given needs object masks" in result.error_lines[0]


def test_a_mask_video_and_a_first_frame_mask_are_read(cli, clip, image, tmp_path):
    from clips import write_clip

    video = write_clip(tmp_path / "mask.mp4", frames=12)
    result = cli("prepare", clip, image, "--mask", video, *PREPARE_ARGS)
    assert result.code == 0, result.err
    assert "8 object masks (a mask video)" in result.err and len(list((PROJECT / "masks").glob("*.png"))) == 8
    first = write_masks(tmp_path / "one", 1) / "1.png"
    result = cli("prepare", clip, image, "--mask", first, *PREPARE_ARGS)
    assert result.code == 0 and "first frame, carried by optical flow" in result.err


def test_train_takes_references_and_masks_only_with_a_clip(cli, clip, image):
    result = cli("train", "--mask", "m.png", "--model", "tiny")
    assert result.code == 1 and "go with CLIP" in result.error_lines[0]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('image = ["ref.png", "nothere.png"]', "reference image"),
        ("image = 3", "`image` must be a path or a list of paths"),
        ('reference_mask = ["m.png"]\nimage = ["ref.png", "ref.png"]', "1 --reference-mask for 2 reference images"),
        (
            'image = ["ref.png", "ref.png"]\n[jobs.train]\nreference_prompt = ["a <tok>", "a <tok>", "a <tok>"]',
            "`train.reference_prompt` was given 3 times for 2 reference images",
        ),
        ('image = "ref.png"\ntrain = { reference_prompt = "a dog" }', "names neither <tok> nor the object word"),
    ],
)
def test_a_jobs_file_s_references_are_checked_before_any_job_runs(cli, clip, image, tmp_path, keys, message):
    (tmp_path / "m.png").write_bytes(b"")
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(
        '[[jobs]]\nclip = "clip.mp4"\nprompt = "a jeep car is moving on the road"\nobject = "car"\n'
        f'replace = "car=<tok>"\nmodel = "tiny"\n{keys}\n'
    )
    result = cli("batch", jobs, "--dry-run")
    assert result.code == 1 and message in result.error_lines[0], result.err


def test_a_jobs_file_takes_several_images_and_a_mask(cli, clip, image, tmp_path):
    masks = write_masks(tmp_path / "masks", 12)
    views = write_views(tmp_path / "refs", 1)
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(
        f'[[jobs]]\nclip = "clip.mp4"\nimage = ["ref.png", "refs/{views[0].name}"]\nmask = "masks"\n'
        'prompt = "a jeep car is moving on the road"\nobject = "car"\nreplace = "car=<tok>"\nmodel = "tiny"\n'
    )
    from livecli.batch import load_jobs

    (job,) = load_jobs(jobs)
    assert [p.name for p in job.references.images] == ["ref.png", "view0.png"] and job.mask == masks


def test_masks_given_to_a_trained_project_retrain_nothing_and_leave_with_the_flag(cli, ran, clip, image, tmp_path):
    """Masks (one per frame of the whole clip) given to a trained project: only the edit and
    its evaluation run again, and local blend keeps exactly the cells the masks say (grown
    by one, with --blur-sigma 0); without --mask again, they go."""
    masks = write_masks(tmp_path / "masks", 12)
    result = cli("run", clip, image, "--mask", masks, *RUN_ARGS, "--blur-sigma", "0", "--force")
    assert result.code == 0, result.err
    lines = result.err.splitlines()
    assert any(line.startswith("masks: 4 object masks (a folder of masks)") for line in lines)
    assert not any(line.startswith(("train: loading", "inverting")) for line in lines)  # trained and inverted before
    status = json.loads(cli("status", "--json").out)
    assert ("masks", "done") in [(stage["stage"], stage["state"]) for stage in status["stages"]]

    prepared = sorted((PROJECT / "masks").glob("*.png"))
    given = torch.stack([torch.from_numpy(np.asarray(Image.open(p), np.float32) / 255)[None] for p in prepared])
    cells = (F.adaptive_avg_pool2d(given, (8, 8)) > 0).float()
    grown = F.max_pool2d(cells, 3, stride=1, padding=1)  # by one cell, as the attention's maps are
    expected = F.interpolate(grown, size=(64, 64), mode="nearest")
    edit = PROJECT / "edits" / "car-tok"
    written = torch.stack(
        [torch.from_numpy(np.asarray(Image.open(p), np.float32) / 255)[None] for p in sorted(edit.glob("masks/*.png"))]
    )
    assert torch.equal(written, expected)
    assert read_toml(edit / "record.toml")["settings"]["blend_mask"] == "given"
    metrics = json.loads((PROJECT / "eval/car-tok/metrics.json").read_text())
    assert metrics["background_outside"] == "the given object masks" and 0 < metrics["background_share"] < 1
    no_blend = cli("edit", "--replace", "car=<tok>", "--no-blend", "--steps", "4", "--name", "whole", "--model", "tiny")
    assert no_blend.code == 0, no_blend.err  # masks are there, but an edit without local blend reads none

    result = cli("run", clip, image, *RUN_ARGS, "--force")
    assert result.code == 0, result.err  # without --mask the earlier masks go, as a flag left out is its default
    assert not (PROJECT / "masks").exists() and "mask" not in read_toml(PROJECT / "live.toml")["sources"]
    assert "blend_mask" not in read_toml(PROJECT / "edits/car-tok/record.toml")["settings"]
