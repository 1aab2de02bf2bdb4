"""Classical optical flow on the source: a first-frame mask carried over a clip, and warp error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from livecli.flow import carry_mask, source_flows, warp_error
from livecli.shapes.scenes import clip_pair


def iou(a: Image.Image, b: Image.Image) -> float:
    first, second = np.asarray(a) > 0, np.asarray(b) > 0
    return float((first & second).sum() / max((first | second).sum(), 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_first_frame_mask_carried_over_a_glide_clip_overlaps_the_true_masks(seed):
    pair = clip_pair(seed, frames=8, kind="glide")
    carried = carry_mask(pair.source_masks[0], pair.source)
    assert len(carried) == 8 and carried[0].mode == "L"
    overlaps = [iou(mask, truth) for mask, truth in zip(carried, pair.source_masks, strict=True)]
    assert overlaps[0] == 1.0
    assert min(overlaps) >= 0.8, overlaps
    assert set(np.unique(np.asarray(carried[-1]))) <= {0, 255}


def shifted(frame: Image.Image, pixels: int) -> Image.Image:
    return Image.fromarray(np.roll(np.asarray(frame), pixels, axis=1))


def test_warp_error_is_zero_for_a_still_clip_and_grows_with_a_jitter():
    pair = clip_pair(0, frames=6, kind="glide")
    still = [pair.source[0]] * 4
    assert warp_error(still, source_flows(still)) == [0.0, 0.0, 0.0]

    flows = source_flows(pair.source)
    own = np.mean(warp_error(pair.source, flows))
    assert own < 0.005  # the source against its own flow: the flow's residual only
    errors = [own]
    for pixels in (1, 3, 6):  # every other frame moved sideways: motion the source does not have
        jittered = [frame if k % 2 == 0 else shifted(frame, pixels) for k, frame in enumerate(pair.source)]
        errors.append(np.mean(warp_error(jittered, flows)))
    assert errors == sorted(errors) and errors[-1] > 10 * own


def test_the_forward_backward_check_drops_pixels_that_are_covered():
    """A grey bar that covers part of the second frame: the first frame's pixels under it
    have no match, and the check drops most of them, so the score is not their colour
    difference."""
    texture = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    covered = texture.copy()
    covered[:, 24:40] = 60
    frames = [Image.fromarray(texture), Image.fromarray(covered)]
    valid = source_flows(frames)[0].valid
    assert valid[:, :16].mean() > 0.9 and valid[:, 44:].mean() > 0.9  # away from the bar, kept
    assert valid[:, 26:38].mean() < 0.5  # under it, mostly dropped
