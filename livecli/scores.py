"""The scores `live eval` gives an edit, declared once: what each is called, in what unit,
which way is better, and what the source video's score beside it means.

Everything that shows scores loops over `SCORES`: `live eval`'s rows in metrics.json
(`stages/evaluate.py`), report.md, the table `live eval` prints and `--json`
(`render.py`), the gallery's table and cards (`gallery.py`) and the app's (`ui.py`).

A new score is an entry here and its measure (in `metrics.py`): either a field of
`metrics.VideoScores`, which `metrics.score_video` fills (the CLIP scores share one pass
of embeddings), or a `measure` of its own, which eval calls on each video beside its
source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

Measure = Callable[[list[Image.Image], list[Image.Image]], float | None]
"""(the video's frames, the source's frames) -> the score; the source is scored against itself too."""


@dataclass(frozen=True)
class Score:
    name: str
    """Its key in metrics.json's rows, `--json`'s metrics and the gallery's data."""
    label: str
    """Its name in report.md, the gallery and the app."""
    column: str | None
    """Its header in `live eval`'s table (short: the table has many); None: not in the table."""
    unit: str = ""
    higher_is_better: bool = True
    baseline: str = "the source video's own score"
    """What the source's row beside the edit's means."""
    optional: bool = False
    """Shown only where an edit has it (the judge's, on `shapes` projects)."""
    measure: Measure | None = None
    """How eval computes it; None: a field of `metrics.VideoScores`."""
    about: str = ""
    """What the number means, report.md's line under the table ("" where an earlier
    score's line says it); `{outside}`, `{margin}`, `{share}` and `{cap}` are filled in."""

    @property
    def titled(self) -> str:
        """The label with its unit: 'background PSNR (dB)'."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


SCORES: tuple[Score, ...] = (
    Score(
        "clip_score",
        "CLIP score",
        "CLIP",
        baseline="the source's frames against the same text",
        about="CLIP score: per frame 100 · max(cos(text, frame), 0), averaged (higher: the frames match the text).",
    ),
    Score(
        "consistency_consecutive",
        "consistency (consecutive)",
        "consist.",
        about="Consistency: mean cosine of CLIP embeddings of consecutive frames, and of all pairs (higher: steadier).",
    ),
    Score("consistency_all_pairs", "consistency (all pairs)", None),
    Score(
        "reference_similarity",
        "CLIP-I reference",
        "CLIP-I",
        about="CLIP-I reference: mean cosine of each frame with the reference image; the crop is the square around "
        "the blend mask.",
    ),
    Score("reference_similarity_crop", "CLIP-I reference, object crop", "CLIP-I crop"),
    Score(
        "background_psnr",
        "background PSNR",
        "bg PSNR",
        unit="dB",
        baseline="the cap (the source is itself)",
        about="Background: PSNR and SSIM against the source outside {outside} grown by {margin} latent cells{share}; "
        "PSNR is capped at {cap:g} dB (identical pixels). The source row compares the source with itself.",
    ),
    Score("background_ssim", "background SSIM", "bg SSIM", baseline="1 (the source is itself)"),
    Score(
        "warp_error",
        "warp error (source flow)",
        "warp err",
        higher_is_better=False,
        about="Warp error: frame t+1 warped back to frame t along the source's optical flow (OpenCV DIS), mean "
        "absolute difference (RGB 0–1) where the flow passes the forward–backward check (lower: steadier); the "
        "source's own is the flow's residual.",
    ),
    Score(
        "object_match",
        "object match (judge, shapes only)",
        "object",
        optional=True,
        about="Object match: the share of frames in which the shapes judge reads the shape and colour it reads in "
        "the reference image.",
    ),
)


def catalogue() -> tuple[Score, ...]:
    """The scores, in the order every view shows them (read at each call: a test may add one)."""
    return SCORES
