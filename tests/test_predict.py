"""`lgd predict` and `lgd viz --video` on videos of one's own: mp4, AVI, a rotated phone video, broken files."""

import csv
import json

import numpy as np
import pytest

from lgd_tutorial.cli import main as lgd
from lgd_tutorial.data import synthetic
from lgd_tutorial.data.encode import write_video
from lgd_tutorial.prediction import as_rows, from_pretrained, predict

TEACHER = "lgd3d_tiny_beacon_both"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A folder of good videos (two synthetic 'approach beacon' clips as mp4 and AVI, a rotated one in a
    subfolder) and broken ones (truncated, empty, not a video)."""
    folder = tmp_path_factory.mktemp("videos")
    frames, _ = synthetic.render(0, np.random.default_rng(3), size=96, frames=8, with_info=True, band=8,
                                 object_size=8, gap=24)
    write_video(folder / "approach.mp4", frames, fps=8)
    write_video(folder / "approach.avi", frames, fps=8, codec="mpeg4", pix_fmt="yuv420p")
    phone = np.ascontiguousarray(np.rot90(np.repeat(np.repeat(frames, 2, 1), 2, 2)[:, :, :160], axes=(1, 2)))
    write_video(folder / "phone" / "portrait.mp4", phone, fps=8, rotation=90)
    good = (folder / "approach.mp4").read_bytes()
    (folder / "broken").mkdir()
    (folder / "broken" / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (folder / "broken" / "empty.mp4").write_bytes(b"")
    (folder / "broken" / "text.avi").write_text("not a video")
    (folder / "notes.txt").write_text("not a video file name: skipped")
    return folder


def test_predict_gives_top_k_for_good_videos_and_a_reason_for_each_broken_one(videos):
    predictor = from_pretrained(TEACHER)
    results = {r.path.split("videos")[-1].split("/", 1)[-1]: r for r in predict(predictor, [videos], top=3,
                                                                                show_progress=False)}
    assert set(results) == {"approach.mp4", "approach.avi", "phone/portrait.mp4", "broken/truncated.mp4",
                            "broken/empty.mp4", "broken/text.avi"}
    for name in ("approach.mp4", "approach.avi"):
        r = results[name]
        assert r.error is None and len(r.top) == 3 and r.views == 1
        assert r.top[0][0] == "approach beacon", r.top                   # the teaching model knows this clip
        assert sum(p for _, p in r.top) <= 1 + 1e-6 and r.top[0][1] >= r.top[1][1] >= r.top[2][1]
    assert results["phone/portrait.mp4"].error is None
    for name in ("broken/truncated.mp4", "broken/empty.mp4", "broken/text.avi"):
        assert results[name].error, name
    rows = as_rows(list(results.values()))
    assert sum(1 for row in rows if row["error"]) == 3 and sum(1 for row in rows if row["rank"] == 1) == 3


def test_lgd_predict_prints_a_table_exits_0_and_1_with_strict(videos, tmp_path, capsys):
    assert lgd(["predict", str(videos), "--pretrained", TEACHER, "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "approach.avi" in out and "approach beacon" in out
    assert out.count("FAILED") == 3 and "empty.mp4: FAILED" in out
    assert "3 video(s) scored; 3 could not be read" in err
    assert "1 other file(s) in the folders skipped, not videos by extension (.txt)" in err
    with open(tmp_path / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["path"].rsplit("/", 1)[-1] for row in rows if row["rank"] == "1"} == {
        "approach.mp4", "approach.avi", "portrait.mp4"}
    assert len(json.loads((tmp_path / "predictions.json").read_text())) == 6
    assert lgd(["predict", str(videos / "approach.mp4"), str(videos / "missing.mp4"), "--pretrained", TEACHER,
                "--format", "json", "--strict"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert [p["error"] for p in printed] == [None, "no such file or folder"]


def test_lgd_predict_refuses_an_unknown_model_by_name(videos, capsys):
    assert lgd(["predict", str(videos), "--pretrained", "no_such_model"]) == 2
    assert "no_such_model" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["approach.mp4", "approach.avi", "phone/portrait.mp4"])
def test_lgd_viz_video_writes_every_figure(videos, tmp_path, name):
    assert lgd(["viz", "--pretrained", TEACHER, "--video", str(videos / name), "--out", str(tmp_path)]) == 0
    for file in ("video_diffusion_ratio.png", "video_cosine.png", "video_class_evidence.png", "video_gradcam.png"):
        assert (tmp_path / file).stat().st_size > 5000, file
    assert (tmp_path / "video_gradcam.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")


def test_lgd_viz_video_explains_a_named_class_and_refuses_an_unknown_one(videos, tmp_path, capsys):
    args = ["viz", "--pretrained", TEACHER, "--video", str(videos / "approach.mp4"), "--out", str(tmp_path)]
    assert lgd(args + ["--class", "leave beacon"]) == 0
    assert lgd(args + ["--class", "juggling"]) == 2
    assert "unknown class 'juggling'" in capsys.readouterr().err
    assert lgd(["viz", "--pretrained", TEACHER, "--video", str(videos / "broken" / "empty.mp4"),
                "--out", str(tmp_path)]) == 2
    assert "empty.mp4" in capsys.readouterr().err


def test_lgd_viz_and_predict_take_a_training_checkpoint_too(videos, tmp_path, capsys):
    import torch

    from lgd_tutorial import build_model, load_config

    cfg = load_config("tiny_synthetic_cpu")
    model = build_model(cfg.model.arch, cfg.model.num_classes)
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, tmp_path / "best.pt")
    assert lgd(["viz", "--checkpoint", str(tmp_path / "best.pt"), "--video", str(videos / "approach.avi"),
                "--out", str(tmp_path / "viz")]) == 0
    assert (tmp_path / "viz" / "video_gradcam.gif").exists()
    capsys.readouterr()
    assert lgd(["predict", str(videos / "approach.mp4"), "--checkpoint", str(tmp_path / "best.pt"),
                "--format", "csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("path,rank,class") and len(rows) == 1 + 4         # 4 classes, fewer than --top 5



def test_text_empty_folders_missing_paths_and_other_containers_are_never_silent(tmp_path, capsys):
    frames, _ = synthetic.render(0, np.random.default_rng(3), size=64, frames=8, with_info=True)
    mixed = tmp_path / "mixed"
    write_video(mixed / "clip.mpg", frames, fps=25, codec="mpeg1video", pix_fmt="yuv420p")
    write_video(mixed / "clip.flv", frames, fps=8, codec="flv", pix_fmt="yuv420p")
    (mixed / "README.txt").write_text("\n".join(f"line {i} of a text file that FFmpeg could read as ANSI art"
                                                for i in range(40)))
    (tmp_path / "empty").mkdir()
    text = tmp_path / "notes.txt"
    text.write_text((mixed / "README.txt").read_text())
    args = ["predict", "--pretrained", TEACHER, "--format", "csv"]
    assert lgd(args + [str(mixed)]) == 0                              # .mpg and .flv decode; the .txt is listed
    out, err = capsys.readouterr()
    assert "clip.mpg" in out and "clip.flv" in out and ",1," in out
    assert "2 video(s) scored" in err and "1 other file(s) in the folders skipped" in err
    assert lgd(args + [str(text)]) == 0                               # named explicitly: refused, not classified
    out, err = capsys.readouterr()
    assert "not a video: FFmpeg reads this file as text" in out and "1 could not be read" in err
    assert lgd(args + [str(tmp_path / "empty"), str(tmp_path / "gone.mp4")]) == 0
    out, err = capsys.readouterr()
    assert "no videos found in this folder" in out and "no such file or folder" in out
    assert "1 input(s) not found; 1 folder(s) without videos (--strict makes this an error)" in err
    assert lgd(args + [str(tmp_path / "empty"), "--strict"]) == 1


def test_ffmpeg_s_own_log_lines_stay_out_of_the_terminal(tmp_path, capfd):
    frames, _ = synthetic.render(0, np.random.default_rng(1), size=64, frames=16, with_info=True)
    write_video(tmp_path / "good.mp4", frames, fps=8)
    data = bytearray((tmp_path / "good.mp4").read_bytes())
    middle = len(data) // 2
    data[middle: middle + 400] = bytes((b * 7 + 3) % 256 for b in data[middle: middle + 400])   # damaged, not cut
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    capfd.readouterr()
    lgd(["predict", "--pretrained", TEACHER, str(tmp_path / "damaged.mp4")])
    out, err = capfd.readouterr()                                       # file descriptors: FFmpeg writes there
    assert "damaged.mp4" in out
    assert " @ 0x" not in err and "Invalid NAL" not in err, err


def test_a_label_map_names_the_classes_and_must_match_the_model(tmp_path, synthetic_set, capsys):
    video = str(sorted(synthetic_set().rglob("*.mp4"))[0])
    names = tmp_path / "label_map.txt"
    names.write_text("left beacon\nright beacon\nup beacon\ndown beacon\n")
    assert lgd(["predict", video, "--pretrained", "lgd3d_tiny_beacon_both", "--label-map", str(names),
                "--format", "csv", "--top", "4"]) == 0
    out = capsys.readouterr().out
    assert sum(name in out for name in ("left beacon", "right beacon", "up beacon", "down beacon")) == 4
    names.write_text("one\ntwo\nthree\n")
    assert lgd(["predict", video, "--pretrained", "lgd3d_tiny_beacon_both", "--label-map", str(names)]) == 2
    assert "names 3 classes; the model has 4" in capsys.readouterr().err
    assert lgd(["predict", video, "--pretrained", "lgd3d_tiny_beacon_both", "--label-map",
                str(tmp_path / "none.txt")]) == 2


def test_a_long_video_gets_one_prediction_per_window_in_csv_and_json(tmp_path, capsys):
    """A 20 s video (8 fps) in 4 s windows every 4 s: five rows with their times; only a window's frames are read."""
    from lgd_tutorial.data.encode import pattern_frames
    from lgd_tutorial.prediction import windows

    video = write_video(tmp_path / "long.mp4", pattern_frames(160, 64, 96), fps=8)
    assert windows(160, 8.0, 4, 4) == [(0, 32), (32, 64), (64, 96), (96, 128), (128, 160)]
    assert windows(160, 8.0, 4, 6) == [(0, 32), (48, 80), (96, 128), (128, 160)]      # the last ends at the end
    assert windows(20, 8.0, 4, 4) == [(0, 20)]                                         # shorter than a window
    out = tmp_path / "out"
    assert lgd(["predict", str(video), "--pretrained", "lgd3d_tiny_beacon_both", "--window", "4", "--stride", "4",
                "--top", "2", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [float(r["start_s"]) for r in rows if r["rank"] == "1"] == [0.0, 4.0, 8.0, 12.0, 16.0]
    assert all(float(r["end_s"]) - float(r["start_s"]) == 4.0 for r in rows)
    listed = json.loads((out / "predictions.json").read_text())
    assert len(listed) == 5 and listed[-1]["end"] == 20.0 and len(listed[0]["top"]) == 2
    assert "16.0-20.0 s" in capsys.readouterr().out
    assert lgd(["predict", str(video), "--pretrained", "lgd3d_tiny_beacon_both", "--stride", "2"]) == 2
    assert lgd(["predict", str(video), "--pretrained", "lgd3d_tiny_beacon_both", "--window", "0"]) == 2


def test_features_of_a_folder_per_video_and_per_window(tmp_path, synthetic_set, capsys):
    import shutil

    from lgd_tutorial.data.encode import pattern_frames

    folder = tmp_path / "videos"
    folder.mkdir()
    for video in sorted(synthetic_set().rglob("*.mp4"))[:2]:
        shutil.copy(video, folder / video.name)
    out = tmp_path / "features"
    assert lgd(["features", str(folder), "--pretrained", "lgd3d_tiny_beacon_both", "--out", str(out)]) == 0
    with np.load(out / "features.npz") as data:
        assert data["local"].shape[0] == data["global"].shape[0] == 2 and np.isfinite(data["local"]).all()
        last = data["local"].copy()
    index = list(csv.DictReader((out / "index.csv").open()))
    assert [r["row"] for r in index] == ["0", "1"] and index[0]["start_s"] == ""
    assert lgd(["features", str(folder), "--pretrained", "lgd3d_tiny_beacon_both", "--block", "layer2.0",
                "--out", str(out)]) == 0
    with np.load(out / "features.npz") as data:
        assert data["local"].shape[1] != last.shape[1]                   # an earlier block: fewer channels
    write_video(folder / "long.mp4", pattern_frames(80, 64, 96), fps=8)
    assert lgd(["features", str(folder / "long.mp4"), "--pretrained", "lgd3d_tiny_beacon_both", "--window", "5",
                "--out", str(out)]) == 0
    index = list(csv.DictReader((out / "index.csv").open()))
    assert [(r["start_s"], r["end_s"]) for r in index] == [("0.0", "5.0"), ("5.0", "10.0")]
    assert lgd(["features", str(folder), "--pretrained", "lgd3d_tiny_beacon_both", "--block", "layer9.9",
                "--out", str(out)]) == 2
    assert "no block 'layer9.9'" in capsys.readouterr().err


def test_batched_prediction_equals_one_by_one_and_a_broken_video_in_a_batch_loses_nothing(tmp_path, synthetic_set):
    import shutil

    folder = tmp_path / "videos"
    folder.mkdir()
    for video in sorted(synthetic_set().rglob("*.mp4"))[:5]:
        shutil.copy(video, folder / video.name)
    (folder / "broken.mp4").write_bytes(b"\x00" * 2000)
    for name, flow in (("lgd3d_tiny_beacon_both", None), ("lgd3d_tiny_beacon_both", "lgd3d_tiny_synthetic_flow")):
        predictor = from_pretrained(name)
        if flow:
            from lgd_tutorial.prediction import two_stream

            predictor = two_stream(predictor, from_pretrained(flow))
        one = predict(predictor, [folder], top=4, show_progress=False, batch=1)
        many = predict(predictor, [folder], top=4, show_progress=False, batch=4)
        assert [r.path for r in one] == [r.path for r in many] and len(one) == 6
        for a, b in zip(one, many):
            assert (a.error is None) == (b.error is None) and a.views == b.views
            if a.error is None:
                assert [c for c, _ in a.top] == [c for c, _ in b.top]
                np.testing.assert_allclose([p for _, p in a.top], [p for _, p in b.top], atol=1e-5)
        assert sum(r.error is not None for r in many) == 1                   # broken.mp4 only
    with pytest.raises(ValueError, match="batch"):
        predict(predictor, [folder], batch=0)


def test_the_readme_quotes_the_shipped_predict_benchmark():
    import textwrap
    from pathlib import Path

    from lgd_tutorial.experiments.bench_predict import report

    root = Path(__file__).resolve().parents[1]
    text = report(root / "figures" / "predict_bench")
    assert "MB" in text and "videos/s" in text
    assert textwrap.fill(text, 80, break_on_hyphens=False, break_long_words=False) in \
        (root / "README.md").read_text(encoding="utf-8")
