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
from livecli import demo
from livecli.augment import Strength, augment
from livecli.config import EditConfig, TrainConfig
from livecli.control.blend import LocalBlend
from livecli.masks import latent_cells, object_region
from livecli.models.loading import resolve_model
from livecli.objectives import MixedPrecision, hidden, weighted_mse
from livecli.shapes import scenes
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
    touched = torch.nn.functional.max_pool2d(torch.from_numpy(mask > 0).float()[None, None], 8)
    assert torch.equal(weights.cpu(), touched)  # the cells the object touches, no ring of background around them
    seen = {}
    original = trainer._predict

    def spy(prompt, noisy, timestep, text, temporal, links=None):
        seen["prompt"] = prompt
        seen["predicted"] = original(prompt, noisy, timestep, text, temporal, links)
        return seen["predicted"]

    trainer._predict = spy
    generator = torch.Generator().manual_seed(4)
    loss = trainer.text_loss(generator, timestep=300)
    noise = torch.randn(trainer.reference.shape, generator=torch.Generator().manual_seed(4))
    kept = weights.expand_as(noise).bool()
    expected = (seen["predicted"].float() - noise)[kept].square().mean()  # the object's cells only
    torch.testing.assert_close(loss, expected)
    # the latent prompt shows the reference with its object hidden; --show-object shows it whole (the paper)
    assert torch.equal(seen["prompt"], hidden(trainer.reference, weights))
    shown = trainer_of(Project(PROJECT), show_object=True)
    shown._predict = spy
    shown.text_loss(torch.Generator().manual_seed(4), timestep=300)
    assert torch.equal(seen["prompt"], shown.reference)


def found_left_half(calls: list):
    """A stand-in for find_object that finds the left half of every picture, and notes what it was asked."""
    from livecli.find_object import FoundObject

    def find(unet, tokenizer, text_encoder, scheduler, latents, picture, caption, word):
        calls.append((caption, word, picture.size, tuple(latents.shape)))
        mask = Image.new("L", picture.size, 0)
        mask.paste(255, (0, 0, picture.width // 2, picture.height))
        return FoundObject(mask, 0.5)

    return find


def test_a_reference_without_a_mask_is_masked_by_the_model_and_the_loss_weighted_to_it(
    cli, clip, image, monkeypatch, capture_trainer
):
    """--reference-mask auto (the default): the object found in the reference (here a stand-in
    finds its left half) is written beside the training and weights the image objective;
    --reference-mask none learns the whole picture, as trainings made before it did."""
    from livecli.stages import prepare as prepare_stage
    from livecli.stages import reference_masks

    calls = []
    monkeypatch.setattr(reference_masks, "find_object", found_left_half(calls))
    monkeypatch.setenv("LIVE_QUIET", "0")  # the line that says what was found is chatter that quiet mode hides
    result = cli("train", clip, image, *PREPARE_ARGS, "--steps", "2")
    assert result.code == 0, result.err
    assert calls == [("a car", "car", (64, 64), (1, 4, 8, 8))]  # the object's word alone, "a WORD"
    assert "the 'car' in reference 1 (ref.png) covers 50% of it" in result.err
    record = read_toml(PROJECT / "train" / "record.toml")
    assert record["settings"]["reference_mask"] == "auto" and record["facts"]["found_reference_masks"] == {"1": 0.5}
    assert record["settings"]["hide_object"] is True  # the object is hidden from the image objective's latent prompt
    found = Image.open(PROJECT / "train" / "reference_masks" / "0000.png")
    assert np.asarray(found)[:, :32].min() == 255 and np.asarray(found)[:, 32:].max() == 0
    expected = prepare_stage.loss_weights([found], (8, 8))
    assert torch.equal(capture_trainer[-1].reference_weights, expected) and 0 < float(expected.mean()) < 1

    again = cli("train", "--reference-mask", "none", "--steps", "2")
    assert again.code == 0, again.err
    assert len(calls) == 1 and capture_trainer[-1].reference_weights is None  # nothing looked for: the whole picture
    record = read_toml(PROJECT / "train" / "record.toml")
    assert not {"reference_mask", "hide_object"} & set(record["settings"])  # as a training before either
    assert not (PROJECT / "train" / "reference_masks").exists()


def test_a_reference_the_model_finds_nothing_in_is_learnt_whole_and_named(cli, clip, image, monkeypatch):
    from livecli.find_object import FoundObject
    from livecli.stages import reference_masks

    monkeypatch.setattr(reference_masks, "find_object", lambda *args: FoundObject(None, 0.99))
    monkeypatch.setenv("LIVE_QUIET", "0")
    result = cli("train", clip, image, *PREPARE_ARGS, "--steps", "2")
    assert result.code == 0, result.err
    warning = next(line for line in result.err.splitlines() if "no 'car' found" in line)
    assert "reference 1 (ref.png)" in warning and "99%" in warning and "--reference-mask" in warning
    assert read_toml(PROJECT / "train" / "record.toml")["facts"]["found_reference_masks"] == {"1": 0.0}
    assert not (PROJECT / "train" / "reference_masks").exists()


def test_a_reference_with_its_own_mask_is_not_looked_at(cli, clip, image, monkeypatch):
    from livecli.stages import reference_masks

    calls = []
    monkeypatch.setattr(reference_masks, "find_object", found_left_half(calls))
    result = cli("train", clip, with_alpha(image), *PREPARE_ARGS, "--steps", "2")
    assert result.code == 0, result.err
    assert calls == [] and "reference_mask" not in read_toml(PROJECT / "train" / "record.toml")["settings"]


def test_a_hidden_object_leaves_the_latent_prompt_its_background_only():
    latents = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    weights = torch.zeros(1, 1, 6, 6)
    weights[..., 2:4, 1:5] = 1
    shown = hidden(latents, weights)
    outside = (1 - weights).bool().expand_as(latents)
    assert torch.equal(shown[outside], latents[outside])  # the background as it was
    means = latents[outside].view(4, -1).mean(dim=1)
    torch.testing.assert_close(shown[..., 2:4, 1:5], means.view(1, 4, 1, 1).expand(1, 4, 2, 4))
    assert torch.equal(hidden(latents, torch.ones(1, 1, 6, 6)), latents)  # all object: nothing to show instead


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


def test_a_grown_region_holds_the_old_object_and_a_new_one_of_another_shape():
    """The demo's cross becomes a star on the same path: the region grown from the cross's
    mask (the default box, and the hull) holds the cross, and the box holds the star too,
    which the cross's outline does not."""
    pair = scenes.clip_pair(demo.DEMO_SEED, frames=8)
    grow = EditConfig.mask_grow
    star_outside_outline = 0
    for old, new in zip(pair.source_masks, pair.truth_masks, strict=True):
        old, new = np.asarray(old) > 127, np.asarray(new) > 127
        for shape in ("box", "hull"):
            region = np.asarray(object_region(Image.fromarray(old), shape, grow)) > 0
            assert not (old & ~region).any(), shape
        box = np.asarray(object_region(Image.fromarray(old), "box", grow)) > 0
        assert not (new & ~box).any()
        star_outside_outline += int((new & ~old).sum())
    assert star_outside_outline > 0  # the star does not fit the cross's outline


def test_a_region_is_the_box_or_hull_scaled_and_an_occluder_does_not_cut_it():
    mask = Image.new("L", (40, 30), 0)
    mask.paste(255, (10, 8, 20, 14))  # 10 × 6 pixels: x 10–19, y 8–13
    mask.paste(0, (14, 8, 16, 14))  # a bar hides two columns of it
    box = np.asarray(object_region(mask, "box", 0.0)) > 0
    assert box.sum() == 60 and box[8:14, 10:20].all()  # the whole box, the hidden columns too
    grown = np.asarray(object_region(mask, "box", 0.5)) > 0  # each side moves out by half the box's side
    ys, xs = np.nonzero(grown)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (5, 24, 5, 16)
    hull = np.asarray(object_region(mask, "hull", 0.0)) > 0
    assert hull[8:14, 10:20].all() and hull.sum() == 60  # a rectangle is its own hull
    assert not np.asarray(object_region(Image.new("L", (8, 8), 0), "box", 0.3)).any()  # no object: no region


def test_the_region_bounds_the_attention_and_the_given_mask_is_always_in():
    given = torch.zeros(2, 1, 4, 4)
    given[:, :, 1, 1] = 1
    region = torch.zeros(2, 1, 4, 4)
    region[:, :, :3, :3] = 1
    maps = torch.zeros(2, 1, 16, 77)
    maps[:, :, 2 * 4 + 2, 1] = 1  # the blend word's attention inside the region …
    maps[:, :, 3 * 4 + 3, 1] = 1  # … and outside it
    blend = LocalBlend(
        2, (4, 4), 1, (1,), (1,), 0.5, 0.0, latent_prompt=False, given=given, mode="given", region=region
    )
    blend.record(maps, maps)
    attention = LocalBlend(2, (4, 4), 1, (1,), (1,), 0.5, 0.0, latent_prompt=False)
    attention.record(maps, maps)
    alone = attention.mask()
    assert alone[0, 0, 3, 3] == 1 and alone[0, 0, 0, 0] == 0  # the attention alone reaches past the region
    expected = torch.maximum(alone * region, given)
    assert torch.equal(blend.mask(), expected) and blend.mask()[0, 0, 3, 3] == 0
    outline = LocalBlend(2, (4, 4), 1, (1,), (1,), 0.5, 0.0, latent_prompt=False, given=given, mode="given")
    assert torch.equal(outline.mask(), given)  # --mask-region outline: the given mask alone


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


def test_a_mask_that_is_all_object_is_said_with_its_name(cli, clip, image, tmp_path, monkeypatch):
    """A clip mask or a reference mask that covers the whole picture keeps nothing out: each
    runs, with a warning that names it (an empty one is an error: above)."""
    monkeypatch.setenv("LIVE_QUIET", "0")
    white = tmp_path / "white.png"
    Image.new("L", (64, 48), 255).save(white)
    result = cli("prepare", clip, image, "--mask", white, *PREPARE_ARGS)
    assert result.code == 0, result.err
    assert "masks: --mask" in result.err and "white.png covers 100% of the frames" in result.err
    whole = tmp_path / "whole.png"
    Image.new("L", (80, 60), 255).save(whole)
    result = cli("prepare", clip, image, "--reference-mask", whole, *PREPARE_ARGS)
    assert result.code == 0, result.err
    assert "the mask of reference image" in result.err and "ref.png covers all of it" in result.err


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


def test_the_steering_settings_reach_train_run_and_a_jobs_file(cli, clip, image, tmp_path):
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(
        '[[jobs]]\nclip = "clip.mp4"\nimage = "ref.png"\nprompt = "a jeep car is moving on the road"\n'
        'object = "car"\nreplace = "car=<tok>"\nmodel = "tiny"\nreference_mask = "none"\n'
        '[jobs.edit]\nmask_region = "hull"\nmask_grow = 0.5\n'
        '[[jobs]]\nclip = "clip.mp4"\nimage = "ref.png"\nprompt = "a jeep car is moving on the road"\n'
        'object = "car"\nreplace = "car=<tok>"\nmodel = "tiny"\nname = "other"\n[jobs.train]\nreference_mask = "none"\n'
    )
    from livecli.batch import load_jobs

    first, second = load_jobs(jobs)
    assert first.train.reference_mask == second.train.reference_mask == "none" and first.references.masks == (None,)
    assert (first.edit.mask_region, first.edit.mask_grow) == ("hull", 0.5)
    jobs.write_text(
        jobs.read_text().replace(
            'reference_mask = "none"\n[jobs.edit]', 'reference_mask = ["none", "m.png"]\n[jobs.edit]'
        )
    )
    refused = cli("batch", jobs, "--dry-run")
    assert refused.code == 1 and "job 1: `reference_mask` none was given with 1 more" in refused.error_lines[0]

    result = cli(
        "run", clip, image, *RUN_ARGS, "--reference-mask", "none", "--mask-region", "hull", "--mask-grow", "0.5"
    )
    assert result.code == 0, result.err
    assert "reference_mask" not in read_toml(PROJECT / "train/record.toml")["settings"]  # none: as before it existed
    assert "mask_region" not in read_toml(PROJECT / "edits/car-tok/record.toml")["settings"]  # no masks: no region
    words = cli("prepare", clip, image, *PREPARE_ARGS, "--reference-mask", "auto")
    assert words.code == 1 and "is the training's: give it to live train or live run" in words.error_lines[0]
    assert "PATH|auto|none" in cli("train", "--help").out


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
    result = cli(
        "run", clip, image, "--mask", masks, *RUN_ARGS, "--blur-sigma", "0", "--mask-region", "outline", "--force"
    )
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
    boxed = cli("edit", "--replace", "car=<tok>", "--blur-sigma", "0", "--steps", "4", "--name", "boxed")
    assert boxed.code == 0, boxed.err  # the default region: each mask's box, grown
    regions = [object_region(Image.open(p), "box", EditConfig.mask_grow) for p in prepared]
    region = F.interpolate(latent_cells(regions, (8, 8), grow=0), size=(64, 64), mode="nearest")
    written = torch.stack(
        [
            torch.from_numpy(np.asarray(Image.open(p), np.float32) / 255)[None]
            for p in sorted(PROJECT.glob("edits/boxed/masks/*.png"))
        ]
    )
    assert torch.equal(torch.maximum(written, expected), written)  # the old object is always in …
    assert torch.equal(
        torch.maximum(written, torch.maximum(region, expected)), torch.maximum(region, expected)
    )  # … and no more than its region
    assert read_toml(PROJECT / "edits/boxed/record.toml")["settings"]["mask_region"] == "box"
    metrics = json.loads((PROJECT / "eval/car-tok/metrics.json").read_text())
    assert metrics["background_outside"] == "the given object masks" and 0 < metrics["background_share"] < 1
    no_blend = cli("edit", "--replace", "car=<tok>", "--no-blend", "--steps", "4", "--name", "whole", "--model", "tiny")
    assert no_blend.code == 0, no_blend.err  # masks are there, but an edit without local blend reads none

    result = cli("run", clip, image, *RUN_ARGS, "--force")
    assert result.code == 0, result.err  # without --mask the earlier masks go, as a flag left out is its default
    assert not (PROJECT / "masks").exists() and "mask" not in read_toml(PROJECT / "live.toml")["sources"]
    assert "blend_mask" not in read_toml(PROJECT / "edits/car-tok/record.toml")["settings"]
