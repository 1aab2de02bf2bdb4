"""Video I/O on clips generated here: sampling, framing, rotation, VFR, audio, folders, encoding."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from clips import frame_array, index_of, write_clip, write_frame_folder
from livecli.errors import InputError
from livecli.video import fit_square, load_image, natural_key, sample_frames, write_gif, write_mp4


def test_sampling_takes_every_stride_th_frame(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", frames=12, fps=10)
    sampled = sample_frames(clip, frames=4, size=32, stride=3)
    assert [index_of(f) for f in sampled.frames] == [0, 3, 6, 9]
    assert sampled.fps == pytest.approx(10 / 3)


@pytest.mark.parametrize(("name", "codec"), [("c.mov", "libx264"), ("c.mkv", "mpeg4"), ("c.webm", "libvpx-vp9")])
def test_other_containers_and_codecs(tmp_path, name, codec):
    clip = write_clip(tmp_path / name, frames=6, codec=codec)
    assert [index_of(f) for f in sample_frames(clip, frames=3, size=32, stride=2).frames] == [0, 2, 4]


def test_a_gif_clip(tmp_path):
    frames = [Image.fromarray(frame_array(i, 48, 48)) for i in range(6)]
    write_gif(frames, tmp_path / "c.gif", fps=10)
    sampled = sample_frames(tmp_path / "c.gif", frames=3, size=32, stride=2)
    assert [index_of(f) for f in sampled.frames] == [0, 2, 4]
    assert sampled.fps == pytest.approx(5, rel=0.05)


def test_sampling_starts_at_the_given_time(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", frames=12, fps=10)
    sampled = sample_frames(clip, frames=3, size=32, stride=2, start=0.5)
    assert [index_of(f) for f in sampled.frames] == [5, 7, 9]


@pytest.mark.parametrize(("width", "height"), [(97, 61), (50, 90), (64, 64)])
def test_odd_sizes_are_resized_on_the_short_side_and_centre_cropped(tmp_path, width, height):
    clip = write_clip(tmp_path / "c.mp4", frames=2, width=width, height=height)
    with av.open(str(clip)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (width, height)
    sampled = sample_frames(clip, frames=2, size=40)
    assert all(f.size == (40, 40) for f in sampled.frames)
    assert [index_of(f) for f in sampled.frames] == [0, 1]


def test_fit_square_keeps_the_centre():
    array = np.zeros((60, 120, 3), np.uint8)
    array[:, 30:90] = 255  # the centre 60 columns are white
    framed = fit_square(Image.fromarray(array), 30)
    assert framed.size == (30, 30)
    assert np.asarray(framed).min() > 240


def test_rotation_metadata_is_applied(tmp_path):
    plain = write_clip(tmp_path / "plain.mp4", frames=2, width=64, height=32, marker=True)
    rotated = write_clip(tmp_path / "rotated.mp4", frames=2, width=64, height=32, marker=True, rotation=90)
    upright = np.asarray(sample_frames(rotated, frames=1, size=32).frames[0], dtype=np.float64)
    # Independent computation: the stored frame turned 90° counter-clockwise, then framed.
    stored = frame_array(0, 64, 32, marker=True)
    expected = np.asarray(fit_square(Image.fromarray(np.rot90(stored, k=1).copy()), 32), dtype=np.float64)
    unrotated = np.asarray(sample_frames(plain, frames=1, size=32).frames[0], dtype=np.float64)
    assert np.abs(upright - expected).mean() < 6
    assert np.abs(unrotated - expected).mean() > 30


def test_variable_frame_rate_is_sampled_by_timestamps(tmp_path):
    times = [0.0, 0.1, 0.15, 0.4, 0.45, 0.9, 1.0, 1.3]
    clip = write_clip(tmp_path / "vfr.mp4", frames=len(times), times=times)
    sampled = sample_frames(clip, frames=3, size=32, start=0.42)
    assert [index_of(f) for f in sampled.frames] == [4, 5, 6]


def test_a_clip_with_an_audio_track(tmp_path):
    clip = write_clip(tmp_path / "a.mp4", frames=10, audio=True)
    with av.open(str(clip)) as container:
        assert len(container.streams.audio) == 1
    assert [index_of(f) for f in sample_frames(clip, frames=5, size=32, stride=2).frames] == [0, 2, 4, 6, 8]


def test_a_folder_of_images_is_read_in_natural_order_by_content(tmp_path):
    folder = write_frame_folder(tmp_path / "frames", frames=11)  # TIFF bytes behind .jpg names
    (folder / ".DS_Store").write_bytes(b"junk")
    sampled = sample_frames(folder, frames=4, size=32, stride=3)
    assert [index_of(f) for f in sampled.frames] == [0, 3, 6, 9]
    assert sorted(folder.glob("*.jpg"), key=natural_key)[1].name == "2.jpg"


def test_too_few_frames_names_the_clip_frame_count(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", frames=5)
    with pytest.raises(InputError) as error:
        sample_frames(clip, frames=4, size=32, stride=2)
    assert "has 5 frames" in error.value.message and "needs 7" in error.value.message
    with pytest.raises(InputError, match="has 3 frames"):
        sample_frames(write_frame_folder(tmp_path / "f", frames=3), frames=4, size=32)


@pytest.mark.parametrize("name", ["notes.mp4", "notes.txt", "empty.mov"])
def test_a_file_that_is_not_a_video_is_refused(tmp_path, name):
    bad = tmp_path / name
    bad.write_bytes(b"" if name.startswith("empty") else b"just some text\n" * 100)
    with pytest.raises(InputError, match="not a video"):
        sample_frames(bad, frames=2, size=32)


def test_a_truncated_video_is_refused(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", frames=12)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cut\.mp4"):
        sample_frames(cut, frames=8, size=32)


def test_reference_image_transparency_goes_on_white_and_exif_is_honoured(tmp_path):
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (10, 10, 30, 30))
    rgba.save(tmp_path / "a.png")
    framed = np.asarray(load_image(tmp_path / "a.png", 40))
    assert framed[0, 0].tolist() == [255, 255, 255] and framed[20, 20].tolist() == [0, 0, 255]

    sideways = np.zeros((30, 60, 3), np.uint8)
    sideways[:, :30] = (220, 0, 0)  # left half red, right half blue, as stored
    sideways[:, 30:] = (0, 0, 220)
    stored = Image.fromarray(sideways)
    exif = stored.getexif()
    exif[0x0112] = 6  # "turn 90° clockwise to view": the red left half becomes the top
    stored.save(tmp_path / "b.jpg", exif=exif, quality=95)
    upright = np.asarray(load_image(tmp_path / "b.jpg", 30)).astype(int)
    assert upright.shape == (30, 30, 3)
    top, bottom = upright[3, 15], upright[26, 15]
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]


def test_a_file_that_is_not_an_image_is_refused(tmp_path):
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(InputError, match="not an image"):
        load_image(tmp_path / "x.png", 32)


def test_mp4_and_gif_round_trip(tmp_path):
    frames = [Image.fromarray(frame_array(i, 48, 48)) for i in range(6)]
    write_mp4(frames, tmp_path / "e.mp4", fps=12.5)
    with av.open(str(tmp_path / "e.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert float(stream.average_rate) == pytest.approx(12.5)
        decoded = [f for f in container.decode(stream)]
        assert decoded[0].format.name == "yuv420p"
    assert [index_of(f.to_image()) for f in decoded] == list(range(6))

    write_gif(frames, tmp_path / "e.gif", fps=10)
    with Image.open(tmp_path / "e.gif") as gif:
        assert gif.n_frames == 6 and gif.info["duration"] == 100 and gif.info["loop"] == 0


def test_a_start_after_the_end_says_how_long_the_clip_is(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", frames=12, fps=10)
    with pytest.raises(InputError, match=r"lasts 1\.2 s: nothing to sample from --start 100"):
        sample_frames(clip, frames=2, size=32, start=100)
    with pytest.raises(InputError, match=r"lasts 1\.2 s: nothing to sample from --start 1e\+300"):
        sample_frames(clip, frames=2, size=32, start=1e300)  # checked before seeking, which overflows


@pytest.mark.parametrize("mode", ["I;16", "I", "P", "LA", "RGBA", "1", "CMYK", "F"])
def test_a_reference_of_any_depth_and_mode_keeps_its_tones(tmp_path, mode):
    """A grey ramp saved in each mode reads back as the same ramp in 8-bit RGB (a 16-bit
    greyscale PNG was read clipped to white)."""
    ramp = np.tile(np.linspace(0, 1, 64), (64, 1))
    path = tmp_path / ("ref.tiff" if mode in ("I", "F", "CMYK") else "ref.png")
    if mode in ("I;16", "I"):
        image = Image.fromarray((ramp * 65535).astype(np.uint16))  # a 16-bit greyscale PNG
        image = image.convert("I") if mode == "I" else image
    elif mode == "F":
        image = Image.fromarray(ramp.astype(np.float32))
    else:
        grey = Image.fromarray((ramp * 255).astype(np.uint8))
        image = grey.convert("RGB").convert("CMYK") if mode == "CMYK" else grey.convert(mode)
    image.save(path)
    with Image.open(path) as saved:
        assert saved.mode.startswith(mode.split(";")[0]) or mode == "P" and saved.mode == "P", saved.mode
    read = np.asarray(load_image(path, 64), dtype=np.float64)[..., 0] / 255
    if mode == "1":  # two tones: dark on the left, light on the right
        assert read[:, :8].mean() < 0.1 and read[:, -8:].mean() > 0.9
    else:
        assert np.abs(read - ramp).mean() < 0.03, np.abs(read - ramp).mean()


def test_an_image_larger_than_live_reads_is_one_line_before_its_pixels(tmp_path):
    """A 20000×20000 PNG header (a decompression bomb): refused by its size, nothing decoded."""
    import struct
    import zlib

    path = tmp_path / "bomb.png"
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    header = bytes(data[12:16]) + struct.pack(">II", 20000, 20000) + bytes(data[24:29])
    data[16:24] = header[4:12]
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bomb\.png is (20000×20000 pixels|an image of over).*more than live reads"):
        load_image(path, 64)
    for side in (9000, 12000):  # past our limit, and past Pillow's warning
        data[16:24] = struct.pack(">II", side, side)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
        path.write_bytes(bytes(data))
        with pytest.raises(InputError, match=rf"{side}×{side} pixels, more than live reads \(64 megapixels\)"):
            load_image(path, 64)
