"""Frames in and out: PyAV decoding and sampling, square framing, PNG, MP4 and GIF.

A clip is a video file (anything FFmpeg decodes: mp4, mov, webm, mkv, gif) or a folder
of images in natural order (1.jpg, 2.jpg, …, 10.jpg), each decoded by its content.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageOps, UnidentifiedImageError

from livecli.errors import InputError, reason

IMAGE_FOLDER_FPS = 8.0
"""Frame rate given to a folder of images, which carries none."""

_TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}
"""FFmpeg renders text files (.txt, .nfo, …) as ANSI-art "video": not a clip."""

_ROTATIONS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


@dataclass
class SampledClip:
    frames: list[Image.Image]
    fps: float
    """Frame rate of the sampled frames: the source's divided by the stride."""


def natural_key(path: Path) -> list[int | str]:
    """Sort key that puts 2.jpg before 10.jpg."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def fit_square(image: Image.Image, size: int) -> Image.Image:
    """Resize the short side to `size`, then crop the centre to size×size."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))),
        Image.Resampling.LANCZOS,
    )
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def flatten_on_white(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited on white."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def load_image(path: Path, size: int) -> Image.Image:
    """An image file, upright by its EXIF orientation, flattened on white, framed size×size."""
    return fit_square(_open_image(path), size)


def _open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            return flatten_on_white(image)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(
            f"{path} is not an image that can be read ({exc.__class__.__name__})",
            hint="pass a PNG, JPEG, WebP or another common image format",
        ) from None


def sample_frames(
    clip: Path,
    frames: int,
    size: int,
    stride: int = 1,
    start: float = 0.0,
    advance: Callable[[int], None] | None = None,
) -> SampledClip:
    """Take `frames` frames, every `stride`-th, from `start` seconds, framed size×size."""
    if clip.is_dir():
        return _sample_folder(clip, frames, size, stride, start, advance)
    return _sample_video(clip, frames, size, stride, start, advance)


def _too_few(clip: Path, have: int, frames: int, stride: int, start: float) -> InputError:
    needed = (frames - 1) * stride + 1
    where = f" from {start:g} s" if start else ""
    return InputError(
        f"{clip} has {have} frame{'s' if have != 1 else ''}{where}; "
        f"--frames {frames} with --stride {stride} needs {needed}",
        hint="ask for fewer --frames, a smaller --stride or an earlier --start",
    )


def _sample_folder(clip, frames, size, stride, start, advance) -> SampledClip:
    files = sorted((p for p in clip.iterdir() if p.is_file() and not p.name.startswith(".")), key=natural_key)
    if not files:
        raise InputError(f"{clip} is an empty folder", hint="a folder clip holds one image per frame: 1.jpg, 2.jpg, …")
    first = round(start * IMAGE_FOLDER_FPS)
    chosen = files[first::stride][:frames]
    if len(chosen) < frames:
        raise _too_few(clip, max(0, len(files) - first), frames, stride, start)
    images = []
    for path in chosen:
        images.append(fit_square(_open_image(path), size))
        if advance:
            advance(1)
    return SampledClip(images, IMAGE_FOLDER_FPS / stride)


def _sample_video(clip, frames, size, stride, start, advance) -> SampledClip:
    try:
        container = av.open(str(clip))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{clip} is not a video that FFmpeg can decode ({reason(exc)})",
            hint="pass a video file (mp4, mov, webm, mkv, gif) or a folder of frames",
        ) from None
    with container:
        length = container.duration / av.time_base if container.duration else None
        if not container.streams.video:
            raise InputError(f"{clip} has no video stream", hint="pass a video file or a folder of frames")
        stream = container.streams.video[0]
        if stream.codec_context.name in _TEXT_CODECS:
            raise InputError(
                f"{clip} is a text file, not a video",
                hint="pass a video file (mp4, mov, webm, mkv, gif) or a folder of frames",
            )
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(IMAGE_FOLDER_FPS)
        if start > 0 and stream.time_base is not None:
            # Land on the keyframe before `start`; frames before it are skipped below.
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        picked: list[Image.Image] = []
        seen = 0
        try:
            for frame in container.decode(stream):
                if frame.time is not None and frame.time < start - 1e-6:
                    continue
                if seen % stride == 0:
                    picked.append(fit_square(_upright(frame), size))
                    if advance:
                        advance(1)
                seen += 1
                if len(picked) == frames:
                    break
        except av.error.FFmpegError as exc:
            raise InputError(
                f"{clip} is damaged: decoding failed after {seen} frames ({reason(exc)})",
                hint="re-encode or re-download the clip",
            ) from None
    if len(picked) < frames:
        if seen == 0 and length is not None and start >= length:
            raise InputError(
                f"{clip} lasts {length:.1f} s: nothing to sample from --start {start:g}",
                hint=f"pass a --start below {length:.1f}",
            )
        if seen == 0:
            raise InputError(
                f"{clip} has no frame that can be decoded" + (f" after {start:g} s" if start else ""),
                hint="the file may be truncated or damaged; re-encode or re-download it",
            )
        raise _too_few(clip, seen, frames, stride, start)
    return SampledClip(picked, float(rate) / stride)


def _upright(frame: av.VideoFrame) -> Image.Image:
    """The frame as it is meant to be shown: rotation metadata applied (counter-clockwise)."""
    image = frame.to_image()
    degrees = round((getattr(frame, "rotation", 0) or 0) / 90) * 90 % 360
    return image.transpose(_ROTATIONS[degrees]) if degrees else image


# --------------------------------------------------------------------------- writing


def write_pngs(frames: Sequence[Image.Image], folder: Path) -> list[Path]:
    """frames/0000.png, 0001.png, …"""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames):
        path = folder / f"{index:04d}.png"
        frame.save(path)
        paths.append(path)
    return paths


def read_pngs(folder: Path) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"), key=natural_key)]


def _h264_codec() -> str:
    for name in ("libx264", "h264", "libopenh264"):
        if name in av.codecs_available:
            return name
    raise InputError(
        "this FFmpeg build has no H.264 encoder", hint="install PyAV from PyPI (its wheels include libx264)"
    )


def write_mp4(frames: Sequence[Image.Image], path: Path, fps: float) -> None:
    """H.264, yuv420p, at `fps` (the source's frame rate divided by the stride)."""
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(_h264_codec(), rate=rate)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_image(image.convert("RGB"))):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_gif(frames: Sequence[Image.Image], path: Path, fps: float) -> None:
    """An endlessly looping GIF at `fps`."""
    duration = max(20, round(1000 / fps))
    first, *rest = [f.convert("RGB") for f in frames]
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=duration, loop=0)
