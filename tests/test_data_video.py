"""Decoding: both backends on what real files contain, and clear errors on broken files."""

import subprocess

import numpy as np
import pytest

from lgd_tutorial.data import video as video_mod
from lgd_tutorial.data.encode import pattern_frames, write_video
from lgd_tutorial.data.video import VideoDecodeError, open_video, probe

FRAMES = pattern_frames(16, 64, 96)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    made = {
        "plain": write_video(d / "plain.mp4", FRAMES),
        "rot90": write_video(d / "rot90.mp4", FRAMES, rotation=90),
        "bframes": write_video(d / "bframes.mp4", FRAMES, bframes=3),
        "audio": write_video(d / "audio.mp4", FRAMES, audio=True),
        "two_streams": write_video(d / "two.mp4", FRAMES, extra_stream=True),
        "10bit": write_video(d / "p10.mp4", FRAMES, pix_fmt="yuv420p10le"),
        "full_range": write_video(d / "pc.mp4", FRAMES, pix_fmt="yuvj420p", color_range="pc"),
    }
    good = made["plain"].read_bytes()
    (d / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (d / "empty.mp4").write_bytes(b"")
    (d / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (d / "folder.mp4").mkdir()
    # A codec no backend has: the H.264 sample entry renamed to an unknown fourcc.
    (d / "unknown_codec.mp4").write_bytes(good.replace(b"avc1", b"zzz9").replace(b"avcC", b"zzzC"))
    made.update({k: d / f"{k}.mp4" for k in ("truncated", "empty", "garbage", "unknown_codec")})
    made["folder"] = d / "folder.mp4"
    made["absent"] = d / "absent.mp4"
    return made


def mean_error(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
@pytest.mark.parametrize("kind", ["plain", "bframes", "audio", "two_streams", "10bit", "full_range"])
def test_backends_return_the_right_frames(files, kind, backend):
    with open_video(files[kind], backend=backend) as v:
        assert len(v) == 16 and abs(v.fps - 25) < 0.01
        got = v.get_frames([15, 0, 7, 7])
    assert got.dtype == np.uint8 and got.shape == (4, 64, 96, 3)
    # Lossy coding: small mean error to the right frame, large to any other frame.
    for k, i in enumerate([15, 0, 7, 7]):
        assert mean_error(got[k], FRAMES[i]) < 12, (kind, i)
    assert mean_error(got[0], FRAMES[0]) > mean_error(got[0], FRAMES[15]) + 1


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_rotation_metadata_applied_like_ffmpeg(files, backend):
    import imageio_ffmpeg
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(files["rot90"]),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    reference = np.frombuffer(raw, np.uint8).reshape(96, 64, 3)          # ffmpeg autorotates
    assert probe(files["rot90"]).rotation == 90
    frame = open_video(files["rot90"], backend=backend).get_frames([0])[0]
    assert frame.shape == (96, 64, 3)
    assert mean_error(frame, reference) < 3
    assert frame[-8:, :8, 0].mean() > 200          # the red top-left mark ends bottom-left


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_reduced_size_keeps_aspect_and_orientation(files, backend):
    assert open_video(files["plain"], backend=backend, short_side=32).get_frames([0]).shape == (1, 32, 48, 3)
    assert open_video(files["rot90"], backend=backend, short_side=32).get_frames([0]).shape == (1, 48, 32, 3)


@pytest.mark.parametrize("kind,reason", [("empty", "empty"), ("folder", "not a regular file"),
                                         ("absent", "no such file"), ("garbage", ""), ("unknown_codec", ""),
                                         ("truncated", "")])
@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_broken_files_raise_with_the_path(files, kind, reason, backend):
    with pytest.raises(VideoDecodeError) as e:
        with open_video(files[kind], backend=backend) as v:
            v.get_frames(range(len(v)))
    assert str(files[kind]) in str(e.value) and reason in str(e.value)
    assert e.value.path == str(files[kind])


def test_auto_falls_back_to_pyav_when_decord_fails(files, monkeypatch):
    import decord

    def broken(*args, **kwargs):
        raise decord.DECORDError("simulated decord failure")       # not a RuntimeError subclass

    monkeypatch.setattr(decord, "VideoReader", broken)
    v = open_video(files["plain"])
    assert v.backend == "pyav"
    assert mean_error(v.get_frames([3])[0], FRAMES[3]) < 12
    with pytest.raises(VideoDecodeError, match="simulated decord failure"):
        open_video(files["plain"], backend="decord")


def test_auto_works_without_decord(files, monkeypatch):
    monkeypatch.setattr(video_mod, "decord_available", lambda: False)
    assert open_video(files["plain"]).backend == "pyav"


def test_bad_arguments(files):
    with pytest.raises(ValueError, match="backend"):
        open_video(files["plain"], backend="opencv")
    with pytest.raises(IndexError, match="outside 0..15"):
        open_video(files["plain"]).get_frames([16])
    with pytest.raises(ValueError, match="uint8"):
        write_video(files["plain"].parent / "x.mp4", np.zeros((2, 8, 8, 3), np.float32))
