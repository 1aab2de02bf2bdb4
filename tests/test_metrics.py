"""Each metric of `live eval` against an independent computation, and the contact sheet."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from livecli.contact_sheet import GAP, LABEL_WIDTH, MIN_WIDTH, NUMBER_BAND, contact_sheet
from livecli.metrics import (
    PSNR_CAP_DB,
    all_pairs_consistency,
    background,
    clip_scores,
    consecutive_consistency,
    mask_box,
    mask_tensor,
    masked_psnr,
    masked_ssim,
    score_video,
    to_tensor,
)
from livecli.models.clip import load_clip, resolve_clip


@pytest.fixture(scope="module")
def embedder():
    return load_clip(resolve_clip("tiny"), torch.device("cpu"), torch.float32)


def unit(*rows: list[float]) -> torch.Tensor:
    vectors = torch.tensor(rows, dtype=torch.float32)
    return vectors / vectors.norm(dim=1, keepdim=True)


def frames_of(array: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(frame) for frame in array]


# --------------------------------------------------------------------------- CLIP-space metrics


def test_clip_score_is_100_times_the_clamped_cosine():
    text = unit([1.0, 0.0])[0]
    frames = unit([1.0, 0.0], [1.0, 1.0], [-1.0, 0.2])
    scores = clip_scores(text, frames)
    assert torch.allclose(scores, torch.tensor([100.0, 100 / math.sqrt(2), 0.0]))


def test_consistency_of_known_embeddings():
    a, b = unit([1.0, 0.0, 0.0])[0], unit([0.0, 1.0, 0.0])[0]
    frames = torch.stack([a, b, a])
    assert consecutive_consistency(frames) == pytest.approx(0.0)  # (a·b + b·a) / 2
    assert all_pairs_consistency(frames) == pytest.approx(1 / 3)  # (a·b + a·a + b·a) / 3
    same = torch.stack([a, a, a, a])
    assert consecutive_consistency(same) == pytest.approx(1.0) and all_pairs_consistency(same) == pytest.approx(1.0)
    assert consecutive_consistency(same[:1]) is None and all_pairs_consistency(same[:1]) is None


# --------------------------------------------------------------------------- masks


def test_background_is_the_mask_grown_by_the_margin():
    mask = torch.zeros(1, 1, 32, 32)
    mask[0, 0, 10, 20] = 0.01  # any weight above 0 counts as the object
    keep = background(mask, margin=3)[0, 0]
    expected = torch.ones(32, 32, dtype=torch.bool)
    expected[7:14, 17:24] = False
    assert torch.equal(keep, expected)
    assert torch.equal(background(mask, margin=0)[0, 0], mask[0, 0] == 0)


def test_mask_box_is_a_square_around_the_mask_inside_the_frame():
    mask = torch.zeros(64, 64)
    mask[10:20, 30:50] = 1  # 10 high, 20 wide
    left, top, right, bottom = mask_box(mask)
    assert right - left == bottom - top == 20
    assert (left, right) == (30, 50) and top <= 10 and bottom >= 20
    corner = torch.zeros(64, 64)
    corner[60:64, 0:30] = 1  # a square of 30 would leave the frame at the bottom: it is shifted in
    assert mask_box(corner) == (0, 34, 30, 64)
    assert mask_box(torch.zeros(8, 8)) is None


# --------------------------------------------------------------------------- pixels


def test_psnr_outside_the_mask_follows_the_formula():
    rng = np.random.default_rng(0)
    source = rng.uniform(0.2, 0.8, size=(2, 3, 16, 16)).astype(np.float32)
    keep = np.ones((2, 1, 16, 16), dtype=bool)
    keep[:, :, 4:12, 4:12] = False
    offset = np.where(keep, 0.1, 0.7).astype(np.float32)  # the masked pixels are far off: they must not count
    offset[1] *= np.where(keep[1], 0.5, 1.0)
    edit = source + offset
    scores = masked_psnr(torch.from_numpy(edit), torch.from_numpy(source), torch.from_numpy(keep))
    assert scores[0] == pytest.approx(10 * math.log10(1 / 0.1**2), abs=1e-3)  # 20 dB
    assert scores[1] == pytest.approx(10 * math.log10(1 / 0.05**2), abs=1e-3)  # 26.02 dB


def test_identical_pixels_score_the_cap_and_an_empty_background_none():
    video = torch.rand(2, 3, 16, 16)
    keep = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    keep[1] = False
    assert masked_psnr(video, video.clone(), keep) == [PSNR_CAP_DB, None]
    assert masked_ssim(video, video.clone(), keep)[0] == pytest.approx(1.0, abs=1e-6)
    assert masked_ssim(video, video.clone(), keep)[1] is None


def reference_ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SSIM (Wang et al. 2004) per pixel: Gaussian window 11, σ 1.5, reflect padding, by loops."""
    radius, sigma = 5, 1.5
    g = np.exp(-((np.arange(-radius, radius + 1)) ** 2) / (2 * sigma**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    px, py = np.pad(x, radius, mode="reflect"), np.pad(y, radius, mode="reflect")
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            a, b = px[i : i + 11, j : j + 11], py[i : i + 11, j : j + 11]
            ma, mb = (window * a).sum(), (window * b).sum()
            va, vb = (window * a * a).sum() - ma**2, (window * b * b).sum() - mb**2
            cov = (window * a * b).sum() - ma * mb
            out[i, j] = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return out


def test_ssim_outside_the_mask_equals_a_direct_computation():
    rng = np.random.default_rng(1)
    source = rng.uniform(0, 1, size=(1, 3, 24, 24)).astype(np.float64)
    edit = np.clip(source + rng.normal(0, 0.08, size=source.shape), 0, 1)
    keep = np.ones((1, 1, 24, 24), dtype=bool)
    keep[:, :, 6:14, 8:20] = False
    edit[:, :, 6:14, 8:20] = 1 - source[:, :, 6:14, 8:20]  # the edited object: it must not count
    maps = np.mean([reference_ssim_map(edit[0, c], source[0, c]) for c in range(3)], axis=0)
    expected = maps[keep[0, 0]].mean()
    (measured,) = masked_ssim(torch.from_numpy(edit).float(), torch.from_numpy(source).float(), torch.from_numpy(keep))
    assert measured == pytest.approx(expected, abs=1e-4)
    assert 0.2 < measured < 0.99  # the noise is seen


# --------------------------------------------------------------------------- one video


def test_score_video_against_itself_and_against_an_edit(embedder):
    rng = np.random.default_rng(2)
    source_array = rng.integers(0, 256, size=(3, 48, 48, 3), dtype=np.uint8)
    source = frames_of(source_array)
    mask_array = np.zeros((3, 48, 48), dtype=np.uint8)
    mask_array[:, 16:32, 16:32] = 255
    mask = mask_tensor([Image.fromarray(m, mode="L") for m in mask_array])
    edited_array = source_array.copy()
    edited_array[:, 8:40, 8:40] = 0  # inside the mask grown by 8 px: the background is untouched
    edited_array[:, 0:4, :] = np.clip(edited_array[:, 0:4, :].astype(int) + 10, 0, 255)  # a known background change
    edited = frames_of(edited_array)
    reference = Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8))
    text, ref = embedder.texts(["a red square"])[0], embedder.images([reference])[0]

    itself = score_video(embedder, source, source, text, ref, mask, margin=8)
    assert itself.background_psnr == PSNR_CAP_DB and itself.background_ssim == pytest.approx(1.0, abs=1e-6)
    source_embeddings = embedder.images(source)
    assert itself.consistency_consecutive == pytest.approx(consecutive_consistency(source_embeddings), abs=1e-6)
    assert itself.consistency_all_pairs == pytest.approx(all_pairs_consistency(source_embeddings), abs=1e-6)

    scores = score_video(embedder, edited, source, text, ref, mask, margin=8)
    keep = background(mask, 8)
    diff = to_tensor(edited) - to_tensor(source)
    mse = [float((d[k.expand_as(d)] ** 2).mean()) for d, k in zip(diff, keep, strict=False)]
    assert scores.background_psnr == pytest.approx(np.mean([10 * math.log10(1 / m) for m in mse]), abs=1e-3)

    whole = embedder.images(edited)
    assert scores.clip_score == pytest.approx(float((100 * (whole @ text).clamp(min=0)).mean()), abs=1e-4)
    assert scores.reference_similarity == pytest.approx(float((whole @ ref).mean()), abs=1e-5)
    crops = embedder.images([frame.crop((16, 16, 32, 32)) for frame in edited])
    assert scores.reference_similarity_crop == pytest.approx(float((crops @ ref).mean()), abs=1e-5)
    assert scores.consistency_consecutive == pytest.approx(consecutive_consistency(whole), abs=1e-6)
    assert len(scores.per_frame["background_psnr"]) == 3

    known = score_video(embedder, edited, source, text, ref, mask, margin=8, whole=whole)
    assert known.summary() == pytest.approx(scores.summary(), abs=1e-4)

    unmasked = score_video(embedder, edited, source, text, ref, None, margin=8)
    assert unmasked.background_psnr is None and unmasked.reference_similarity_crop is None


# --------------------------------------------------------------------------- contact sheet


def test_contact_sheet_has_the_expected_size_and_rows():
    frames, side = 5, 64
    rows = {
        "source": [Image.new("RGB", (side, side), (200, 10 * i, 0)) for i in range(frames)],
        "edit": [Image.new("RGB", (side, side), (0, 10 * i, 200)) for i in range(frames)],
        "mask": [Image.new("L", (side, side), 255 if i % 2 else 0) for i in range(frames)],
    }
    reference = Image.new("RGB", (side, side), (0, 180, 0))
    ImageDraw.Draw(reference).rectangle([10, 10, 30, 30], fill=(255, 255, 0))
    sheet = contact_sheet(reference, rows, ["title", "scores"])

    width = max(LABEL_WIDTH + frames * (side + GAP) + GAP, MIN_WIDTH)
    height = (GAP + side + GAP) + NUMBER_BAND + 3 * (side + GAP)
    assert sheet.size == (width, height)
    assert sheet.crop((GAP, GAP, GAP + side, GAP + side)).tobytes() == reference.tobytes()
    top = GAP + side + GAP + NUMBER_BAND
    for row, images in enumerate(rows.values()):
        for frame, image in enumerate(images):
            x, y = LABEL_WIDTH + frame * (side + GAP), top + row * (side + GAP)
            assert sheet.crop((x, y, x + side, y + side)).tobytes() == image.convert("RGB").tobytes(), (row, frame)


def test_contact_sheet_shrinks_large_frames():
    rows = {
        "source": [Image.new("RGB", (512, 512), (9, 9, 9))] * 2,
        "edit": [Image.new("RGB", (512, 512), (250, 0, 0))] * 2,
    }
    sheet = contact_sheet(Image.new("RGB", (300, 200), (0, 0, 255)), rows, ["t"])
    assert sheet.size == (MIN_WIDTH, (GAP + 160 + GAP) + NUMBER_BAND + 2 * (160 + GAP))
    x, y = LABEL_WIDTH, GAP + 160 + GAP + NUMBER_BAND + (160 + GAP)
    assert sheet.getpixel((x + 80, y + 80)) == (250, 0, 0)


def test_default_clip_text_of_a_token_edit_names_the_reference_object_never_the_source_one():
    from livecli.stages.evaluate import clip_text

    edit = "a man riding a <@#$>"

    def text(trained, given=None):
        return clip_text(given, edit, "<@#$>", trained, "motorcycle").text

    assert text({"init_word": "horse"}) == "a man riding a horse"
    assert text({"reference_prompt": "a <tok> horse on a beach"}) == "a horse on a beach"
    assert text({"init_word": "motorcycle", "reference_prompt": "a brown <@#$> horse"}) == "a brown horse"
    lone = ({"reference_prompt": "a <tok> on a beach"}, {"reference_prompt": "a photo of my <tok>"})  # it is the object
    for trained in ({}, {"init_word": "motorcycle"}, {"reference_prompt": "a <tok> motorcycle"}, *lone):
        assert text(trained) is None and "pass --text" in clip_text(None, edit, "<@#$>", trained, "motorcycle").why
    assert text({}, given="a man riding a zebra") == "a man riding a zebra"
    assert clip_text(None, "a man riding a bus", "<@#$>", {}, "motorcycle").text == "a man riding a bus"  # a word edit
