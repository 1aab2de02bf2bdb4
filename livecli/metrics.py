"""What `live eval` measures about an edited video (paper §4, "Quantitative results").

- CLIP score: text–video alignment, per frame `100 · max(cos(text, frame), 0)` and
  averaged over frames, the paper's frame-level CLIP score.
- Frame consistency: mean cosine of consecutive frames' CLIP image embeddings, and of
  all pairs of frames.
- Reference similarity (CLIP-I): mean cosine between each frame and the reference
  image, on whole frames and on a square crop around the blend mask.
- Background preservation: PSNR and SSIM against the source frames, on the pixels
  outside the blend mask grown by a margin, where the edit should have changed nothing.
- Warp error (TokenFlow, RAVE): frame t+1 warped back to frame t along the *source's*
  optical flow, mean absolute difference where the flow is trusted (flow.py); lower is
  steadier. The source's own is the flow's residual: the baseline.

PSNR and SSIM come from torchmetrics; PSNR is capped at `PSNR_CAP_DB` so that identical
backgrounds give a finite number that JSON can hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from livecli.flow import SourceFlow, warp_error

PSNR_CAP_DB = 100.0
"""Identical pixels have infinite PSNR; they score this (one 8-bit level off on a
whole 512×512 frame already scores 107 dB, so nothing real is cut)."""


# --------------------------------------------------------------------------- CLIP embeddings


def clip_scores(text: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """[F]: 100 · max(cos, 0) of each unit-length frame embedding with the text's."""
    return 100 * (frames @ text).clamp(min=0)


def consecutive_consistency(frames: torch.Tensor) -> float | None:
    """Mean cosine of frames i and i+1 (unit-length embeddings [F, D]); None for one frame."""
    if len(frames) < 2:
        return None
    return float((frames[:-1] * frames[1:]).sum(dim=1).mean())


def all_pairs_consistency(frames: torch.Tensor) -> float | None:
    """Mean cosine over all pairs i < j; None for one frame."""
    if len(frames) < 2:
        return None
    cosines = frames @ frames.T
    upper = torch.triu(torch.ones_like(cosines, dtype=torch.bool), diagonal=1)
    return float(cosines[upper].mean())


# --------------------------------------------------------------------------- masks


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """RGB images -> [F, 3, H, W] float in [0, 1]."""
    return torch.stack(
        [
            torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
            for image in images
        ]
    )


def mask_tensor(masks: list[Image.Image]) -> torch.Tensor:
    """Grey mask images -> [F, 1, H, W] float in [0, 1]."""
    return torch.stack(
        [torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.float32) / 255)[None] for mask in masks]
    )


def background(mask: torch.Tensor, margin: int) -> torch.Tensor:
    """[F, 1, H, W] bool: the pixels farther than `margin` pixels (max norm) from any
    pixel where the mask is above 0, i.e. where local blend kept the source."""
    touched = (mask > 0).float()
    if margin > 0:
        touched = F.max_pool2d(touched, kernel_size=2 * margin + 1, stride=1, padding=margin)
    return touched == 0


def mask_box(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """The square (left, top, right, bottom) around a frame's mask [H, W] above 0, grown to
    a square inside the frame so that CLIP's centre crop keeps all of it; None when empty."""
    rows, cols = torch.nonzero(mask > 0, as_tuple=True)
    if len(rows) == 0:
        return None
    height, width = mask.shape
    top, bottom, left, right = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    side = min(max(bottom - top, right - left), height, width)
    left = min(max((left + right - side) // 2, 0), width - side)
    top = min(max((top + bottom - side) // 2, 0), height - side)
    return left, top, left + side, top + side


# --------------------------------------------------------------------------- pixels


def masked_psnr(edit: torch.Tensor, source: torch.Tensor, keep: torch.Tensor) -> list[float | None]:
    """Per frame, the PSNR (dB, pixels in [0, 1]) over the pixels where `keep` [F, 1, H, W]
    is true, all channels; None for a frame with no such pixel."""
    scores = []
    for e, s, k in zip(edit, source, keep, strict=False):
        if not k.any():
            scores.append(None)
            continue
        selected = k.expand_as(e)
        value = float(peak_signal_noise_ratio(e[selected], s[selected], data_range=1.0))
        scores.append(min(value, PSNR_CAP_DB))
    return scores


def masked_ssim(edit: torch.Tensor, source: torch.Tensor, keep: torch.Tensor) -> list[float | None]:
    """Per frame, the mean of the SSIM map (Gaussian window 11, σ 1.5, averaged over
    channels) over the pixels where `keep` is true; None for a frame with no such pixel."""
    scores = []
    for e, s, k in zip(edit, source, keep, strict=False):  # a frame at a time: SSIM's padded stacks are 15× a frame
        if not k.any():
            scores.append(None)
            continue
        _, full = structural_similarity_index_measure(e[None], s[None], data_range=1.0, return_full_image=True)
        scores.append(float(full[0].mean(dim=0)[k[0]].mean()))
    return scores


# --------------------------------------------------------------------------- one video


@dataclass
class VideoScores:
    """The metrics of one video; None where a metric does not apply (no mask, one frame)."""

    clip_score: float | None
    """None without a text to trust (no text names the new object, or the CLIP is random)."""
    consistency_consecutive: float | None
    consistency_all_pairs: float | None
    reference_similarity: float
    reference_similarity_crop: float | None
    background_psnr: float | None
    background_ssim: float | None
    per_frame: dict[str, list[float | None]] = field(default_factory=dict)
    warp_error: float | None = None
    """None for one frame."""
    object_match: float | None = None
    """`shapes` projects: the share of frames where the judge reads the reference's object."""

    def summary(self) -> dict[str, float | None]:
        values = asdict(self)
        del values["per_frame"]
        return {name: _round(value) for name, value in values.items()}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def score_video(
    embedder,
    frames: list[Image.Image],
    source: list[Image.Image],
    text: torch.Tensor | None,
    reference: torch.Tensor,
    mask: torch.Tensor | None,
    margin: int,
    whole: torch.Tensor | None = None,
    flows: list[SourceFlow] | None = None,
) -> VideoScores:
    """Every metric of `frames` against the text (None: no CLIP score) and reference embeddings, and against
    `source` outside the mask [F, 1, H, W] (no mask: no crop and no background scores).
    `whole`: the frames' embeddings when they are known already; `flows`: the source's
    optical flow (flow.source_flows), for the warp error."""
    boxes = [mask_box(m[0]) for m in mask] if mask is not None else []
    crops = [frame.crop(box) for frame, box in zip(frames, boxes, strict=False) if box is not None]
    if whole is None:
        embeddings = embedder.images(frames + crops)
        whole, cropped = embeddings[: len(frames)], embeddings[len(frames) :]
    else:
        cropped = embedder.images(crops) if crops else reference.new_zeros(0, len(reference))
    per_frame = {
        **({} if text is None else {"clip_score": [float(v) for v in clip_scores(text, whole)]}),
        "reference_similarity": [float(v) for v in whole @ reference],
    }
    crop_similarity = [float(v) for v in cropped @ reference]
    psnr = ssim = None
    if mask is not None:
        keep = background(mask, margin)
        edited, original = to_tensor(frames), to_tensor(source)
        per_frame["background_psnr"] = masked_psnr(edited, original, keep)
        per_frame["background_ssim"] = masked_ssim(edited, original, keep)
        psnr, ssim = _mean(per_frame["background_psnr"]), _mean(per_frame["background_ssim"])
    if flows:
        per_frame["warp_error"] = warp_error(frames, flows)
    return VideoScores(
        clip_score=_mean(per_frame.get("clip_score", [])),
        consistency_consecutive=consecutive_consistency(whole),
        consistency_all_pairs=all_pairs_consistency(whole),
        reference_similarity=_mean(per_frame["reference_similarity"]),
        reference_similarity_crop=_mean(crop_similarity),
        background_psnr=psnr,
        background_ssim=ssim,
        warp_error=_mean(per_frame.get("warp_error", [])),
        per_frame={name: [_round(v) for v in values] for name, values in per_frame.items()},
    )
