"""Clips made with PyAV for the tests: each frame's grey level tells its index."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def level(index: int) -> int:
    """Grey level of frame `index` (uniform frames survive H.264 within a few levels)."""
    return 10 + 20 * index


def index_of(image: Image.Image) -> int:
    """Which frame an (uniform) decoded image was, from its mean grey level."""
    return round((np.asarray(image.convert("L"), dtype=np.float64).mean() - 10) / 20)


def frame_array(index: int, width: int, height: int, marker: bool = False) -> np.ndarray:
    # A ±8 checker keeps the mean at level(index) but gives the VAE texture: on flat
    # frames its GroupNorms divide by a variance of ~0 and amplify rounding noise.
    y, x = np.mgrid[:height, :width]
    checker = np.where((y // 4 + x // 4) % 2, 8, -8)
    array = np.repeat((level(index) + checker)[..., None], 3, axis=2).astype(np.uint8)
    if marker:  # a white block, off every axis of symmetry, to see rotations
        array[: height // 4, width // 4 : width // 2] = 255
    return array


def write_clip(
    path: Path,
    frames: int = 12,
    width: int = 64,
    height: int = 48,
    fps: int = 10,
    times: list[float] | None = None,
    rotation: int | None = None,
    audio: bool = False,
    marker: bool = False,
    codec: str = "libx264",
) -> Path:
    """An H.264 mp4; `times` (seconds) makes the frame rate variable.

    Odd sizes are stored as yuv444p: 4:2:0 chroma needs even ones.
    """
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=TONE_RATE) if audio else None
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_array(index, width, height, marker), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[index] * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            write_tone(container, sound, TONE_RATE * frames // fps)
    return path


TONE_RATE = 16000


def write_tone(container, sound, samples: int) -> None:
    """`samples` of a sine tone through the mono AAC stream `sound` of `container`, muxed."""
    tone = np.sin(np.linspace(0, 400 * np.pi, samples, dtype=np.float32))
    for first in range(0, samples, 1024):
        piece = av.AudioFrame.from_ndarray(tone[None, first : first + 1024], format="fltp", layout="mono")
        piece.sample_rate, piece.pts = sound.codec_context.sample_rate, first
        for packet in sound.encode(piece):
            container.mux(packet)
    for packet in sound.encode():
        container.mux(packet)


def write_frame_folder(folder: Path, frames: int = 10, size: int = 40) -> Path:
    """1.jpg … N.jpg that are really TIFF files, like the rabbit clip in shared/data."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        Image.fromarray(frame_array(index, size, size)).save(folder / f"{index + 1}.jpg", format="TIFF")
    return folder


def write_image(path: Path, size: tuple[int, int] = (80, 60)) -> Path:
    """A red disc on a green gradient."""
    y, x = np.mgrid[: size[1], : size[0]]
    array = np.stack([x * 0 + 30, 80 + y * 150 // size[1], x * 0 + 60], axis=2)
    array[(x - size[0] / 2) ** 2 + (y - size[1] / 2) ** 2 < (min(size) / 3) ** 2] = (210, 30, 30)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path
