"""Frames in and out: PyAV decoding and sampling, framing, audio, PNG, MP4 and GIF.

A clip is a video file (anything FFmpeg decodes: mp4, mov, webm, mkv, gif) or a folder
of images in natural order (1.jpg, 2.jpg, …, 10.jpg), each decoded by its content.
"""

from __future__ import annotations

import re
import stat
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from livecli.errors import InputError, reason
from livecli.words import has_control_character

IMAGE_FOLDER_FPS = 8.0
"""Frame rate given to a folder of images, which carries none."""

_TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}
"""FFmpeg renders text files (.txt, .nfo, …) as ANSI-art "video": not a clip."""

_ROTATIONS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


GIF_MAX_FRAMES = 64
"""edit.gif is written up to this many frames: a longer GIF is tens of MB and plays badly."""


@dataclass
class SampledClip:
    frames: list[Image.Image]
    fps: float
    """Frame rate of the sampled frames: the source's divided by the stride."""
    first_time: float = 0.0
    """When the first sampled frame is shown in the source, in seconds."""

    @property
    def end_time(self) -> float:
        """When the sampled span ends: the first frame's time plus the frames' duration."""
        return self.first_time + len(self.frames) / self.fps


@dataclass(frozen=True)
class ClipInfo:
    """What a clip's container says, read before any frame is decoded."""

    width: int
    height: int
    """The size of a frame as shown (rotation applied)."""
    fps: float
    frames: int | None
    """The frame count, counted or estimated from the duration; None when unknown."""
    duration: float | None
    audio: bool


@dataclass(frozen=True)
class Framing:
    """How a picture becomes a frame: scaled to cover width×height, centred, the rest cropped
    (`square`: the short side to `width`, then the centre square, as before aspect was kept)."""

    width: int
    height: int
    square: bool = False

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.square:
            return fit_square(image, self.width)
        scale = max(self.width / image.width, self.height / image.height)
        box_width, box_height = self.width / scale, self.height / scale
        left, top = (image.width - box_width) / 2, (image.height - box_height) / 2
        return image.resize(
            (self.width, self.height), Image.Resampling.LANCZOS, box=(left, top, left + box_width, top + box_height)
        )


def frame_size(width: int, height: int, size: int | tuple[int, int], multiple: int) -> tuple[int, int]:
    """The frames' size for a source of width×height: `size` (width, height) as given, or
    the short side `size` and the long side scaled to keep the aspect, rounded to the
    nearest multiple of `multiple` (what the model's latents need; the framing then crops
    less than half a multiple)."""
    if isinstance(size, tuple):
        return size
    long_side = max(multiple, round(size * max(width, height) / min(width, height) / multiple) * multiple)
    return (long_side, size) if width >= height else (size, long_side)


def fit_inside(
    image: Image.Image,
    size: tuple[int, int],
    mirror: bool = True,
    resample: Image.Resampling = Image.Resampling.LANCZOS,
) -> Image.Image:
    """The whole image scaled to fit inside `size`, centred, the margins filled by
    mirroring its edges: nothing of the object is cut off and there are no flat bars.
    `mirror` False keeps the image's mode and leaves the margins 0 (a mask's, which are
    not the object)."""
    width, height = size
    scale = min(width / image.width, height / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    fitted = np.asarray((image.convert("RGB") if mirror else image).resize(inner, resample))
    left, top = (width - inner[0]) // 2, (height - inner[1]) // 2
    margins = ((top, height - inner[1] - top), (left, width - inner[0] - left)) + ((0, 0),) * (fitted.ndim - 2)
    padded = np.pad(fitted, margins, mode="symmetric") if mirror else np.pad(fitted, margins)
    return Image.fromarray(padded)


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
    """8-bit RGB of any mode and depth, any transparency composited on white."""
    image = eight_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def shown_path(path: Path) -> str:
    """A path as a message quotes it: as typed, or quoted with its control characters visible."""
    return repr(str(path)) if has_control_character(str(path)) else str(path)


def source_problem(path: Path, folder_allowed: bool) -> str:
    """Why `path` cannot be a clip (`folder_allowed`: a folder of frames too) or an image;
    "" when it can."""
    if has_control_character(str(path)):
        return "holds a control character (a NUL, a newline, a tab…)"
    try:
        mode = path.stat().st_mode  # through a link: what it points to is read
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({reason(exc)})"
    if stat.S_ISREG(mode) or (folder_allowed and stat.S_ISDIR(mode)):
        return ""
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device or a socket"
    return f"is {kind}, not a regular file"


def eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit or 32-bit greyscale image (modes I;16*, I, F) as 8-bit `L`, its full range
    kept: Pillow's own conversion clips every value above 255 to white."""
    if not (image.mode.startswith("I") or image.mode == "F"):
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        peak = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0  # a float image holds 0–1 or 0–255
    else:
        peak = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(np.round(values / peak * 255), 0, 255).astype(np.uint8), "L")


def alpha_channel(image: Image.Image) -> Image.Image | None:
    """An image's transparency as an 8-bit L mask, or None when it has none or is opaque everywhere."""
    if not (image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info):
        return None
    alpha = eight_bit(image).convert("RGBA").getchannel("A")
    return None if alpha.getextrema()[0] == 255 else alpha


def binarized(mask: Image.Image) -> Image.Image:
    """An L mask as 0/255: above half (> 127) is the object."""
    return mask.point(lambda value: 255 if value > 127 else 0)


def same_aspect(size: tuple[int, int], other: tuple[int, int]) -> bool:
    """Whether a picture of `size` (width, height) has the shape of one of `other`, to 1 %:
    a mask of it, or a scaled copy."""
    return abs(size[0] / size[1] - other[0] / other[1]) <= 0.01 * other[0] / other[1]


def as_mask(image: Image.Image) -> Image.Image:
    """A mask picture as L 0/255: its alpha channel where it has one, else its grey levels,
    above half (> 127) being the object."""
    alpha = alpha_channel(image)
    return binarized(alpha if alpha is not None else eight_bit(image).convert("L"))


def load_mask(path: Path) -> Image.Image:
    """A mask file (PNG, or any image) as L 0/255 (`as_mask`), upright."""
    return as_mask(_open_upright(path))


def load_alpha(path: Path) -> Image.Image | None:
    """An image file's alpha channel as L 0/255 (above half: the object), or None when it has none."""
    alpha = alpha_channel(_open_upright(path))
    return None if alpha is None else binarized(alpha)


def frame_reference_mask(mask: Image.Image, size: int | Framing) -> Image.Image:
    """A reference image's mask (L) framed as `load_image` frames the image, L 0/255; the
    margins that mirror the image's edges are not the object, so they are 0 here."""
    if isinstance(size, int) or size.square:
        framed = fit_square(mask, size if isinstance(size, int) else size.width)
    else:
        framed = fit_inside(mask, size.size, mirror=False, resample=Image.Resampling.BILINEAR)
    return binarized(framed)


def load_image(path: Path, size: int | Framing) -> Image.Image:
    """An image file, upright by its EXIF orientation, flattened on white, and framed: a
    square `size` or `Framing(square=True)` as the frames are (centre square); any other
    `Framing` keeps the whole image (`fit_inside`)."""
    image = _open_image(path)
    if isinstance(size, int):
        return fit_square(image, size)
    return size(image) if size.square else fit_inside(image, size.size)


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
"""What a folder of reference images or masks is read for (other files there are left alone)."""

MAX_IMAGE_PIXELS = 64 * 1024 * 1024
"""The largest image read (8192 × 8192): a reference or a frame is scaled to a few hundred
pixels, and a larger one is more likely a decompression bomb than a photograph."""


def _too_large(path: Path, size: str) -> InputError:
    return InputError(
        f"{path} is {size}, more than live reads ({MAX_IMAGE_PIXELS // 2**20} megapixels)",
        hint="scale it down first (it is scaled to --size anyway), e.g. to 2048 pixels on its long side",
    )


def _open_image(path: Path) -> Image.Image:
    return flatten_on_white(_open_upright(path))


def _open_upright(path: Path) -> Image.Image:
    """An image file as it is stored (mode and alpha kept), upright by its EXIF orientation;
    one line for a file that is too large or not an image."""
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: our own limit, below, says it in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)  # reads the header only: the size is known before the pixels
        with opened:
            if opened.width * opened.height > MAX_IMAGE_PIXELS:
                raise _too_large(path, f"{opened.width}×{opened.height} pixels")
            image = ImageOps.exif_transpose(opened)
            image.load()
            return image
    except Image.DecompressionBombError:
        raise _too_large(path, "an image of over twice Pillow's limit") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(
            f"{path} is not an image that can be read ({exc.__class__.__name__})",
            hint="pass a PNG, JPEG, WebP or another common image format",
        ) from None


def probe_clip(clip: Path) -> ClipInfo:
    """The clip's size as shown, frame rate, frame count and audio, from its container and
    its first frame (a folder: its first image)."""
    if clip.is_dir():
        files = folder_files(clip)
        first = _open_image(files[0])
        return ClipInfo(first.width, first.height, IMAGE_FOLDER_FPS, len(files), len(files) / IMAGE_FOLDER_FPS, False)
    with _open_video(clip) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or IMAGE_FOLDER_FPS)
        duration = container.duration / av.time_base if container.duration else None
        if duration is None and stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        frames = stream.frames or (round(duration * rate) if duration else None)
        width, height = stream.width, stream.height
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError:
            first = None
        if first is not None:
            width, height = _upright(first).size
        return ClipInfo(width, height, rate, frames, duration, bool(container.streams.audio))


def sample_frames(
    clip: Path,
    frames: int | None,
    size: int | Framing,
    stride: int = 1,
    start: float = 0.0,
    advance: Callable[[int], None] | None = None,
    duration: float | None = None,
    limit: int | None = None,
) -> SampledClip:
    """Take `frames` frames (None: all), every `stride`-th, from `start` seconds for at most
    `duration` seconds, framed size×size (an int) or by a `Framing`. More than `limit`
    frames is an error (the caller names the flags)."""
    framing = Framing(size, size, square=True) if isinstance(size, int) else size
    wanted = Wanted(frames, stride, start, duration, limit)
    if clip.is_dir():
        return _sample_folder(clip, wanted, framing, advance)
    return _sample_video(clip, wanted, framing, advance)


@dataclass(frozen=True)
class Wanted:
    """Which frames `sample_frames` takes."""

    frames: int | None
    stride: int
    start: float
    duration: float | None
    limit: int | None

    def full(self, picked: int) -> bool:
        return self.frames is not None and picked >= self.frames

    def check_limit(self, clip: Path, picked: int) -> None:
        if self.limit is not None and picked > self.limit:
            raise too_long(clip, f"more than {self.limit}", self.limit)


def too_long(clip: Path, count: str, limit: int) -> InputError:
    return InputError(
        f"{clip} gives {count} frames, over --max-frames {limit}",
        hint="take a part with --duration SECONDS (and --start), fewer frames with --stride N, or raise --max-frames",
    )


def _starts_past_the_end(clip: Path, length: float, start: float) -> InputError:
    return InputError(
        f"{clip} lasts {length:.1f} s: nothing to sample from --start {start:g}",
        hint=f"pass a --start below {length:.1f}",
    )


def _too_few(clip: Path, have: int, frames: int, stride: int, start: float) -> InputError:
    needed = (frames - 1) * stride + 1
    where = f" from {start:g} s" if start else ""
    return InputError(
        f"{clip} has {have} frame{'s' if have != 1 else ''}{where}; "
        f"--frames {frames} with --stride {stride} needs {needed}",
        hint="ask for fewer --frames, a smaller --stride or an earlier --start",
    )


def folder_files(clip: Path) -> list[Path]:
    files = sorted((p for p in clip.iterdir() if p.is_file() and not p.name.startswith(".")), key=natural_key)
    if not files:
        raise InputError(f"{clip} is an empty folder", hint="a folder clip holds one image per frame: 1.jpg, 2.jpg, …")
    return files


def _sample_folder(clip: Path, wanted: Wanted, framing: Framing, advance) -> SampledClip:
    files = folder_files(clip)
    first = round(wanted.start * IMAGE_FOLDER_FPS)
    last = len(files) if wanted.duration is None else first + round(wanted.duration * IMAGE_FOLDER_FPS)
    chosen = files[first : last : wanted.stride][: wanted.frames]
    if wanted.frames is not None and len(chosen) < wanted.frames:
        raise _too_few(clip, max(0, len(files) - first), wanted.frames, wanted.stride, wanted.start)
    if not chosen:
        raise InputError(
            f"{clip} has {len(files)} images: nothing to sample from --start {wanted.start:g}",
            hint=f"pass a --start below {len(files) / IMAGE_FOLDER_FPS:g} (a folder plays at {IMAGE_FOLDER_FPS:g} fps)",
        )
    wanted.check_limit(clip, len(chosen))
    images, size = [], None
    for path in chosen:
        image = _open_image(path)
        size = size or image.size
        if image.size != size:  # framed alike they would be stretched or cropped unlike each other
            raise InputError(
                f"{shown_path(path)} is {image.width}×{image.height}, and the frames before it in {shown_path(clip)} "
                f"{size[0]}×{size[1]}: a clip's frames are all one size",
                hint="resize the folder's frames to one size (or take the odd ones out)",
            )
        images.append(framing(image))
        if advance:
            advance(1)
    return SampledClip(images, IMAGE_FOLDER_FPS / wanted.stride, first / IMAGE_FOLDER_FPS)


def _open_video(clip: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(clip))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{clip} is not a video that FFmpeg can decode ({reason(exc)})",
            hint="pass a video file (mp4, mov, webm, mkv, gif) or a folder of frames",
        ) from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{clip} has no video stream", hint="pass a video file or a folder of frames")
    if container.streams.video[0].codec_context.name in _TEXT_CODECS:
        container.close()
        raise InputError(
            f"{clip} is a text file, not a video",
            hint="pass a video file (mp4, mov, webm, mkv, gif) or a folder of frames",
        )
    return container


def _sample_video(clip: Path, wanted: Wanted, framing: Framing, advance) -> SampledClip:
    start, stride = wanted.start, wanted.stride
    end = None if wanted.duration is None else start + wanted.duration
    with _open_video(clip) as container:
        length = container.duration / av.time_base if container.duration else None
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(IMAGE_FOLDER_FPS)
        if length is not None and start >= length:
            raise _starts_past_the_end(clip, length, start)
        if start > 0 and stream.time_base is not None:
            # Land on the keyframe before `start`; frames before it are skipped below.
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        picked: list[Image.Image] = []
        first_time = None
        seen = 0
        try:
            for frame in container.decode(stream):
                if frame.time is not None and frame.time < start - 1e-6:
                    continue
                if end is not None and frame.time is not None and frame.time >= end - 1e-6:
                    break
                if seen % stride == 0:
                    picked.append(framing(_upright(frame)))
                    wanted.check_limit(clip, len(picked))
                    if first_time is None:
                        first_time = frame.time if frame.time is not None else start
                    if advance:
                        advance(1)
                seen += 1
                if wanted.full(len(picked)):
                    break
        except av.error.FFmpegError as exc:
            raise InputError(
                f"{clip} is damaged: decoding failed after {seen} frames ({reason(exc)})",
                hint="re-encode or re-download the clip",
            ) from None
    if not picked or (wanted.frames is not None and len(picked) < wanted.frames):
        if seen == 0:
            raise InputError(
                f"{clip} has no frame that can be decoded" + (f" after {start:g} s" if start else ""),
                hint="the file may be truncated or damaged; re-encode or re-download it",
            )
        raise _too_few(clip, seen, wanted.frames, stride, start)
    return SampledClip(picked, float(rate) / stride, float(first_time or 0.0))


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


def write_mp4(frames: Sequence[Image.Image], path: Path, fps: float, audio: Path | None = None) -> None:
    """H.264, yuv420p, at `fps` (the source's frame rate divided by the stride), with the
    AAC track of `audio` (an .m4a that `extract_audio` wrote) copied in when given."""
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(_h264_codec(), rate=rate)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        sound = av.open(str(audio)) if audio is not None else None
        try:
            copied = container.add_stream_from_template(sound.streams.audio[0]) if sound is not None else None
            for image in frames:
                for packet in stream.encode(av.VideoFrame.from_image(image.convert("RGB"))):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
            if sound is not None:
                for packet in sound.demux(sound.streams.audio[0]):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = copied
                    container.mux(packet)
        finally:
            if sound is not None:
                sound.close()


AUDIO_RATE_FALLBACK = 48000


def extract_audio(clip: Path, start: float, end: float, path: Path) -> bool:
    """The clip's first audio track from `start` to `end` seconds, re-encoded to AAC into
    `path` (an .m4a), cut to the sample. False when the clip has no audio (or is a folder).
    A track that cannot be decoded raises AudioError."""
    if clip.is_dir():
        return False
    with av.open(str(clip)) as container:
        if not container.streams.audio:
            return False
        source = container.streams.audio[0]
        rate = source.codec_context.sample_rate or AUDIO_RATE_FALLBACK
        layout = "mono" if (source.codec_context.channels or 1) == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        first, last = round(start * rate), round(end * rate)
        pieces, position = [], None
        try:
            if start > 0:
                container.seek(int(start / source.time_base), stream=source, backward=True, any_frame=False)
            for frame in container.decode(source):
                for plain in resampler.resample(frame):
                    if position is None:
                        position = round(plain.time * rate) if plain.time is not None else 0
                    samples = plain.to_ndarray()
                    lo, hi = max(first - position, 0), min(last - position, samples.shape[1])
                    if hi > lo:
                        pieces.append(samples[:, lo:hi])
                    position += samples.shape[1]
                if position is not None and position >= last:
                    break
        except (av.error.FFmpegError, ValueError) as exc:
            raise AudioError(reason(exc)) from None
    if not pieces:
        return False
    samples = np.ascontiguousarray(np.concatenate(pieces, axis=1), dtype=np.float32)
    with av.open(str(path), mode="w", format="mp4") as output:
        stream = output.add_stream("aac", rate=rate, layout=layout)
        frame_size = 1024
        for offset in range(0, samples.shape[1], frame_size):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, offset : offset + frame_size]), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts = rate, offset
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return True


class AudioError(Exception):
    """The clip's audio track cannot be decoded: the edit goes on without sound."""


def write_gif(frames: Sequence[Image.Image], path: Path, fps: float) -> None:
    """An endlessly looping GIF at `fps`."""
    duration = max(20, round(1000 / fps))
    first, *rest = [f.convert("RGB") for f in frames]
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=duration, loop=0)
