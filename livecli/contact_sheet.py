"""One PNG that shows an edit at a glance: the reference image, then rows of frames.

┌───────────┬─────────────────────────────────────────┐
│ reference │ title lines (edit, text, scores)        │
│ (masked)  │                                         │
├───────────┼────┬────┬────┬────────────────────────  │
│           │ 1  │ 2  │ 3  │ …      frame numbers      │
│ source    │ ▢  │ ▢  │ ▢  │                          │
│ edit      │ ▢  │ ▢  │ ▢  │                          │
│ mask      │ ▢  │ ▢  │ ▢  │                          │
└───────────┴────┴────┴────┴──────────────────────────┘
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

SHEET_FRAMES = 8
"""A longer clip shows this many frames, spread evenly from its first to its last."""
THUMB_MAX = 160
"""Frames wider than this are shrunk to it; smaller frames keep their size."""
GAP = 6
LABEL_WIDTH = 64
NUMBER_BAND = 18
MIN_WIDTH = 480
BACKGROUND = (250, 250, 248)
INK = (30, 30, 30)
FRAME = (190, 190, 185)
FADED = 0.75
"""How far a reference's background is faded towards the sheet's where its mask leaves it out."""


@dataclass(frozen=True)
class SheetLayout:
    frames: int
    thumb: int
    rows: int

    @property
    def header(self) -> int:
        return GAP + self.thumb + GAP

    @property
    def width(self) -> int:
        return max(LABEL_WIDTH + self.frames * (self.thumb + GAP) + GAP, MIN_WIDTH)

    @property
    def height(self) -> int:
        return self.header + NUMBER_BAND + self.rows * (self.thumb + GAP)

    def cell(self, row: int, frame: int) -> tuple[int, int]:
        """Top-left corner of frame `frame` of row `row` (both from 0)."""
        return LABEL_WIDTH + frame * (self.thumb + GAP), self.header + NUMBER_BAND + row * (self.thumb + GAP)


def layout(frames: int, side: int, rows: int) -> SheetLayout:
    return SheetLayout(frames, min(side, THUMB_MAX), rows)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def spread(frames: int, at_most: int = SHEET_FRAMES) -> list[int]:
    """`at_most` frame indices spread evenly over `frames`, the first and the last included."""
    if frames <= at_most:
        return list(range(frames))
    return [round(k * (frames - 1) / (at_most - 1)) for k in range(at_most)]


def learnt_part(reference: Image.Image, mask: Image.Image) -> Image.Image:
    """The reference as the image objective learns it under `mask` (L): the object as it is,
    the rest faded to the sheet's background."""
    faded = Image.blend(reference.convert("RGB"), Image.new("RGB", reference.size, BACKGROUND), FADED)
    return Image.composite(reference.convert("RGB"), faded, mask.convert("L").resize(reference.size))


def contact_sheet(
    reference: Image.Image, rows: dict[str, list[Image.Image]], title: list[str], mask: Image.Image | None = None
) -> Image.Image:
    """The sheet: `reference` top left (with `mask`, the reference's object mask, the rest of
    it faded: what the token learnt from), `title` beside it, then one labelled row of
    numbered frames per entry of `rows` (all rows the same length and frame size): every
    frame of a short clip, `SHEET_FRAMES` spread evenly over a longer one."""
    first = next(iter(rows.values()))
    shown = spread(len(first))
    rows = {label: [images[index] for index in shown] for label, images in rows.items()}
    shape = layout(len(shown), max(first[0].size), len(rows))
    sheet = Image.new("RGB", (shape.width, shape.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    small, large = _font(12), _font(14)

    sheet.paste(_thumbnail(reference if mask is None else learnt_part(reference, mask), shape.thumb), (GAP, GAP))
    for line, text in enumerate(title):
        draw.text((GAP + shape.thumb + 2 * GAP, GAP + line * 20), text, fill=INK, font=large if line == 0 else small)
    for frame in range(shape.frames):
        x, y = shape.cell(0, frame)
        number = str(shown[frame] + 1)
        draw.text((x + shape.thumb // 2, y - NUMBER_BAND // 2), number, fill=INK, font=small, anchor="mm")
    for row, (label, images) in enumerate(rows.items()):
        _, y = shape.cell(row, 0)
        draw.text((GAP, y + shape.thumb // 2), label, fill=INK, font=large, anchor="lm")
        for frame, image in enumerate(images):
            x, y = shape.cell(row, frame)
            draw.rectangle([x - 1, y - 1, x + shape.thumb, y + shape.thumb], outline=FRAME)  # shows white masks
            sheet.paste(_thumbnail(image, shape.thumb), (x, y))
    return sheet


def _thumbnail(image: Image.Image, side: int) -> Image.Image:
    """The image fit into side × side, letterboxed on the sheet's background."""
    image = image.convert("RGB")
    scale = side / max(image.size)
    if scale != 1:
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS
        )
    if image.size == (side, side):
        return image
    box = Image.new("RGB", (side, side), BACKGROUND)
    box.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return box
