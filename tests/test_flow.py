"""Optical flow: storage, flow-aware transforms, the flow network's inflation, extraction, two-stream fusion."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

from lgd_tutorial.cli import main as lgd
from lgd_tutorial.data import flow
from lgd_tutorial.data.clips import ClipDataset
from lgd_tutorial.data.kinetics import load_manifest
from lgd_tutorial.data.transforms import FlowHorizontalFlip, FlowNormalize
from lgd_tutorial.data.video import VideoDecodeError
from lgd_tutorial.evaluation import EvalResult, check_streams, fuse
from lgd_tutorial.models import build_model, inflate_from_2d
from tests.test_inflate import randomise_batch_norm, torchvision_stages


@pytest.fixture(scope="module")
def synth(synthetic_set):
    return synthetic_set(seed=3, videos_per_class=2)


@pytest.fixture(scope="module")
def synth_flow(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("flow")
    for name in ("manifest_train.csv", "manifest_val.csv"):
        flow.extract(synth / name, synth, out, "dis", progress=False)
    return out


def test_quantisation_round_trip_stays_within_its_bound():
    rng = np.random.default_rng(0)
    field = rng.normal(0, 8, size=(3, 16, 16, 2)).astype(np.float32)
    for bound in (20.0, 5.0):
        q = flow.quantize(field, bound)
        assert q.dtype == np.uint8 and q.min() == 0 and q.max() == 255              # values beyond the bound clip
        back = flow.dequantize(q, bound)
        assert np.abs(back - np.clip(field, -bound, bound)).max() <= bound / 255 + 1e-5
    assert flow.quantize(np.zeros((1, 1, 1, 2), np.float32), 20.0)[0, 0, 0, 0] == 128  # zero sits mid-scale
    with pytest.raises(ValueError, match="bound"):
        flow.quantize(field, 0.0)


def test_the_horizontal_flip_mirrors_the_frames_and_negates_x_only():
    clip = torch.randn(2, 3, 4, 5)
    flipped = FlowHorizontalFlip(p=1.0)(clip)
    assert torch.equal(flipped[0], -clip[0].flip(-1)) and torch.equal(flipped[1], clip[1].flip(-1))
    assert torch.equal(FlowHorizontalFlip(p=1.0)(flipped), clip)
    views = torch.randn(3, 2, 3, 4, 5)                                                # three crops: (V, 2, T, H, W)
    assert torch.equal(FlowHorizontalFlip(p=1.0)(views)[:, 0], -views[:, 0].flip(-1))
    assert torch.equal(FlowNormalize(4.0)(torch.tensor([8.0, -2.0, 1.0, 0.0]).view(2, 1, 1, 2)).flatten(),
                       torch.tensor([1.0, -0.5, 0.25, 0.0]))


@pytest.mark.slow
def test_a_constant_flow_field_gives_the_2d_networks_response_to_a_constant_image():
    """Cross-modality inflation: the stem kernel averaged over R, G, B and given to both flow channels. A flow
    field (u, v) constant over the clip then equals, for the 2D network, a grey image of (u + v) / 3."""
    torch.manual_seed(0)
    resnet = torchvision.models.resnet50().eval()
    randomise_batch_norm(resnet)
    model = inflate_from_2d(build_model("lgd3d_r50", 10, diffusion="none", modality="flow"),
                            resnet.state_dict()).eval()
    assert torch.allclose(model.stem.conv.weight[:, 0, 2], resnet.conv1.weight.mean(1))
    u, v = 0.6, -0.2
    clip = torch.stack([torch.full((16, 64, 64), u), torch.full((16, 64, 64), v)])[None]
    image = torch.full((1, 3, 64, 64), (u + v) / 3)
    with torch.no_grad():
        expected = torchvision_stages(resnet, image)["layer4"]
        _, _, taps = model.forward_features(clip, return_taps=True)
    got = taps[-1].local
    for t in range(got.shape[2]):
        assert (got[:, :, t] - expected).abs().max() / expected.abs().max() < 1e-5
    zero = torch.zeros(1, 2, 16, 64, 64)
    with torch.no_grad():
        got, expected = model.forward_features(zero)[0][:, :, 0], torchvision_stages(resnet, zero[:, :1, 0].expand(
            1, 3, 64, 64))["layer4"]
    assert (got - expected).abs().max() / expected.abs().max() < 1e-5                # zero flow: a black image


def test_a_flow_model_takes_two_channels_and_names_a_wrong_input():
    model = build_model("lgd3d_tiny", 4, modality="flow")
    assert model(torch.zeros(2, 2, 8, 32, 32)).shape == (2, 4)
    with pytest.raises(ValueError, match=r"\(N, 2, T, H, W\) \(flow\)"):
        model(torch.zeros(2, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="modality"):
        build_model("p3d_tiny", 4, modality="depth")


def test_extraction_writes_a_manifest_and_a_flow_file_per_video(synth, synth_flow):
    table = pd.read_csv(synth_flow / flow.MANIFEST)
    manifest = load_manifest(synth / "manifest_val.csv")
    assert list(table["path"]) == list(manifest["path"]) and set(table["status"]) == {"done"}
    stored = flow.FlowVideo(flow.flow_path(synth_flow, manifest["path"][0]))
    assert (len(stored), stored.bound, stored.method, stored.source_frames) == (15, 20.0, "dis", 16)
    frames = stored.get_frames([0, 1])
    assert frames.shape == (2, 64, 64, 2) and frames.dtype == np.float32 and np.abs(frames).max() <= 20


def test_a_flow_dataset_reads_clips_with_the_rgb_samplers(synth, synth_flow):
    ds = ClipDataset(synth / "manifest_train.csv", mode="train", num_frames=4, stride=2, crop_size=48,
                     modality="flow", flow_root=synth_flow)
    clip, label, _, failed = ds[0]
    assert clip.shape == (2, 4, 48, 48) and clip.abs().max() <= 1 and (failed < 0).all()
    test = ClipDataset(synth / "manifest_val.csv", mode="test", num_frames=4, stride=2, num_clips=2, crop_size=48,
                       modality="flow", flow_root=synth_flow)
    assert test[0][0].shape == (2, 2, 4, 48, 48)


def test_an_empty_flow_folder_and_a_frame_count_mismatch_are_named(synth, synth_flow, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"no flow files.*{empty}"):
        ClipDataset(synth / "manifest_val.csv", mode="test", modality="flow", flow_root=empty)
    stored = flow.flow_path(synth_flow, load_manifest(synth / "manifest_val.csv")["path"][0])
    with pytest.raises(VideoDecodeError, match="frame count mismatch.*16 frames, the RGB video has 24"):
        flow.FlowVideo(stored, expected_frames=24)
    copy = tmp_path / "copy"
    for p in synth_flow.rglob("*" + flow.SUFFIX):
        target = copy / p.relative_to(synth_flow)
        target.parent.mkdir(parents=True, exist_ok=True)
        q = np.load(p)["flow"]
        flow.save_flow(target, q[:-1], 20.0, "dis", 15)                               # flow of a shorter video
    rgb = ClipDataset(synth / "manifest_val.csv", mode="test", num_frames=4)
    with pytest.raises(ValueError, match="do not match their videos"):
        check_streams(rgb, ClipDataset(synth / "manifest_val.csv", mode="test", num_frames=4, modality="flow",
                                       flow_root=copy))
    check_streams(rgb, ClipDataset(synth / "manifest_val.csv", mode="test", num_frames=4, modality="flow",
                                   flow_root=synth_flow))


def result(scores, labels):
    scores = np.asarray(scores, dtype=np.float32)
    predictions = pd.DataFrame({"index": range(len(labels)), "label": labels, "pred": scores.argmax(1)})
    return EvalResult(0.0, 0.0, 0.0, len(labels), 1, pd.DataFrame(), np.zeros((2, 2)), predictions, scores=scores)


def test_fusion_adds_the_weighted_flow_scores_video_by_video():
    rgb = result([[0.6, 0.4], [0.45, 0.55], [0.2, 0.8]], [0, 0, 1])          # right, wrong, right
    motion = result([[0.3, 0.7], [0.9, 0.1], [0.5, 0.5]], [0, 0, 1])          # wrong, right, a tie
    table = fuse(rgb, motion, flow_weight=1.5).set_index("stream")["acc1"]
    # fused: [0.6+0.45, 0.4+1.05] -> 1 (wrong); [0.45+1.35, 0.55+0.15] -> 0 (right); [0.95, 1.55] -> 1 (right)
    assert table["rgb"] == pytest.approx(2 / 3) and table["flow"] == pytest.approx(1 / 3)
    assert table["fused (flow weight 1.5)"] == pytest.approx(2 / 3)
    assert fuse(rgb, motion, flow_weight=0.0).set_index("stream")["acc1"].iloc[2] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="different labels"):
        fuse(rgb, result([[1, 0]] * 3, [1, 1, 1]))


def test_prepare_flow_resumes_after_being_killed_and_reports_broken_videos(synth, tmp_path):
    import shutil
    root = tmp_path / "data"
    shutil.copytree(synth, root)
    manifest = load_manifest(root / "manifest_train.csv")
    (root / manifest["path"][1]).write_bytes(b"not a video" * 50)
    out = tmp_path / "flow"
    args = ["prepare", "flow", "--root", str(root), "--manifest", "manifest_train.csv", "--out", str(out),
            "--short-side", "0"]
    job = subprocess.Popen([sys.executable, "-m", "lgd_tutorial", *args, "--method", "tvl1", "--workers", "1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.rglob("*" + flow.SUFFIX)):
        time.sleep(0.2)
    os.kill(job.pid, signal.SIGKILL)                                        # killed part-way: no manifest yet
    job.wait()
    first = len(list(out.rglob("*" + flow.SUFFIX)))
    assert 1 <= first < len(manifest) - 1 and not (out / "flow_manifest_train.csv").exists()
    assert not list(out.rglob("*.tmp*"))                                     # atomic: no half-written file
    assert lgd([*args, "--method", "tvl1", "--workers", "2"]) == 0
    table = pd.read_csv(out / "flow_manifest_train.csv").set_index("path")
    broken = manifest["path"][1]
    assert table.loc[broken, "status"] == "failed" and "not a video" not in table.loc[broken, "reason"]
    assert (table["status"] == "skipped").sum() == first and (table["status"] == "done").sum() == len(manifest) - 1 - first
    kept = next(p for p in table.index if table.loc[p, "status"] == "skipped")
    video = root / kept
    later = flow.flow_path(out, kept).stat().st_mtime + 5
    os.utime(video, (later, later))                                     # the video was written again after its flow
    assert lgd([*args, "--method", "tvl1", "--workers", "1"]) == 0
    again = pd.read_csv(out / "flow_manifest_train.csv").set_index("path")
    assert again.loc[kept, "status"] == "done"
    assert (again["status"] == "skipped").sum() == len(manifest) - 2   # every other stored flow kept


def test_a_rerun_with_other_flow_settings_recomputes_and_says_why(synth, tmp_path, capsys):
    out = tmp_path / "flow"
    args = ["prepare", "flow", "--root", str(synth), "--manifest", "manifest_val.csv", "--out", str(out),
            "--method", "dis", "--workers", "1"]
    assert lgd([*args, "--short-side", "0"]) == 0
    assert "4 done" in capsys.readouterr().out
    assert lgd([*args, "--short-side", "0"]) == 0
    assert "0 done, 4 skipped" in capsys.readouterr().out
    assert lgd([*args, "--short-side", "0", "--bound", "10"]) == 0
    assert "4 done, 0 skipped, 0 failed (4 recomputed: made with other settings)" in capsys.readouterr().out
    table = pd.read_csv(out / "flow_manifest_val.csv")
    assert table["reason"].str.contains("the file held dis, bound 20, short side as decoded; this run asks for "
                                        "dis, bound 10, short side as decoded").all()
    stored = flow.FlowVideo(flow.flow_path(out, table["path"][0]))
    assert stored.bound == 10.0
    assert lgd(args) == 0                                              # the default: the k400_flow recipe's scale
    assert "computing at short side 320" in capsys.readouterr().out


def test_two_videos_with_one_stem_keep_two_flow_files(tmp_path):
    from lgd_tutorial.data.encode import pattern_frames, write_video

    root = tmp_path / "videos"
    write_video(root / "clip.mp4", pattern_frames(6, 32, 48), fps=8)
    write_video(root / "clip.avi", pattern_frames(8, 32, 48, seed=1), fps=8)
    pd.DataFrame({"path": ["clip.mp4", "clip.avi"], "label": ["a", "a"], "label_index": [0, 0],
                  "status": ["present", "present"]}).to_csv(root / "manifest.csv", index=False)
    table = flow.extract(root / "manifest.csv", root, tmp_path / "flow", "dis", progress=False)
    assert list(table["status"]) == ["done", "done"]
    assert {p.name for p in (tmp_path / "flow").glob("*" + flow.SUFFIX)} == {"clip.mp4.flow.npz", "clip.avi.flow.npz"}
    assert flow.FlowVideo(flow.flow_path(tmp_path / "flow", "clip.avi")).source_frames == 8


def test_flow_and_rgb_models_train_and_evaluate_as_two_streams(synth, synth_flow, tmp_path, capsys):
    common = small_overrides(synth, synth_flow) + ["run.progress=false"]
    for recipe, name in (("tiny_synthetic_cpu", "rgb"), ("tiny_synthetic_flow_cpu", "flow")):
        assert lgd(["train", "--config", recipe, *common, f"run.out_dir={tmp_path / name}"]) == 0
    assert lgd(["evaluate", "--checkpoint", str(tmp_path / "rgb" / "best.pt"), "--flow-checkpoint",
                str(tmp_path / "flow" / "best.pt"), "--out", str(tmp_path / "eval")]) == 0
    table = pd.read_csv(tmp_path / "eval" / "two_stream.csv")
    assert list(table["stream"]) == ["rgb", "flow", "fused (flow weight 1.5)"] and (table["videos"] == 4).all()
    assert "fused" in capsys.readouterr().out
    assert lgd(["evaluate", "--checkpoint", str(tmp_path / "flow" / "best.pt"), "--flow-checkpoint",
                str(tmp_path / "rgb" / "best.pt")]) == 2                     # streams swapped: named, not run

    # lgd predict on a video file: the flow computed on the fly, the scores fused as rgb + 1.5 x flow
    from lgd_tutorial.prediction import from_checkpoint, predict_video, two_stream

    video = synth / load_manifest(synth / "manifest_val.csv")["path"][0]
    rgb, motion = (from_checkpoint(tmp_path / name / "best.pt") for name in ("rgb", "flow"))
    alone = {name: dict(predict_video(p, video, top=4).top) for name, p in (("rgb", rgb), ("flow", motion))}
    fused = predict_video(two_stream(rgb, motion, 1.5), video, top=4)
    assert fused.error is None and fused.views == 2 * 2                        # 2 clips per stream
    for name, p in fused.top:
        assert p == pytest.approx((alone["rgb"][name] + 1.5 * alone["flow"][name]) / 2.5, abs=1e-6)
    assert lgd(["predict", str(video), "--checkpoint", str(tmp_path / "rgb" / "best.pt"), "--flow-checkpoint",
                str(tmp_path / "flow" / "best.pt"), "--top", "2"]) == 0
    assert "4 views" in capsys.readouterr().out


def small_overrides(synth, synth_flow):
    return [f"data.root={synth}", "data.dataset=kinetics", "data.train_manifest=manifest_train.csv",
            "data.val_manifest=manifest_val.csv", "data.num_frames=4", "data.crop_size=32", "data.scale=[32, 40]",
            "data.test_short_side=32", "data.batch_size=4", "optim.epochs=1", "run.max_steps_per_epoch=2",
            f"data.flow_root={synth_flow}"]


def test_lgd_two_stream_reports_each_stream_and_the_fusion_over_seeds(synth, synth_flow, tmp_path, monkeypatch):
    assert lgd(["two-stream", "--seeds", "0", "1", "--out", str(tmp_path), "--pretrained-dir", str(tmp_path / "pre"),
                *small_overrides(synth, synth_flow)]) == 0
    runs, summary = pd.read_csv(tmp_path / "runs.csv"), pd.read_csv(tmp_path / "summary.csv")
    assert len(runs) == 8 and sorted(set(runs["seed"])) == [0, 1]
    assert list(summary["stream"])[:3] == ["rgb", "rgb_none", "flow"] and list(summary["seeds"]) == [2] * 4
    assert (summary["acc1_low"] <= summary["acc1"]).all()
    curves = pd.read_csv(tmp_path / "curves.csv")               # one validation row per epoch, stream and seed
    assert len(curves) == 3 * 2 and set(curves["stream"]) == {"rgb", "rgb_none", "flow"}
    meta = json.loads((tmp_path / "two_stream.json").read_text())
    assert meta["recipes"]["rgb_none"] == "tiny_synthetic_cpu model.diffusion=none"
    assert set(meta["autocast"]) == {"rgb", "rgb_none", "flow"}             # the precision the runs trained in
    assert "two-stream --seeds 0 1" in (tmp_path / "two_stream.json").read_text()

    # --pretrained-dir: the first seed's flow model as a teaching checkpoint that loads as a 2-channel network
    from lgd_tutorial.models import pretrained
    from lgd_tutorial.models.pretrained import load_pretrained
    from lgd_tutorial.experiments.two_stream import FLOW_CHECKPOINT

    model, info = load_pretrained(FLOW_CHECKPOINT, tmp_path / "pre")
    assert model.modality == "flow" and model.stem.conv.weight.shape[1] == 2 and info["seed"] == 0
    first_flow = runs[(runs["seed"] == 0) & (runs["stream"] == "flow")]["acc1"].iloc[0]
    assert info["val_acc"] == pytest.approx(first_flow) and "two-stream --seeds 0 1" in info["command"]
    from lgd_tutorial.prediction import from_pretrained, predict_video

    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "pre")       # lgd predict --pretrained reads it
    video = synth / load_manifest(synth / "manifest_val.csv")["path"][0]
    predicted = predict_video(from_pretrained(FLOW_CHECKPOINT), video, top=4)  # the flow computed from the video
    assert predicted.error is None and len(predicted.top) == 4


def test_the_flow_benchmark_gives_rates_per_core_and_the_kinetics_cost(tmp_path, capsys):
    assert lgd(["data", "bench", "--flow", "--smoke", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "flow.csv").set_index("method")
    assert (table["frames_per_s_per_core"] > 0).all() and table.loc["tvl1", "epe_vs_tvl1"] == 0
    assert table.loc["dis", "kinetics400_core_hours"] < table.loc["tvl1", "kinetics400_core_hours"]
    assert "Kinetics-400" in capsys.readouterr().out


def test_the_flip_exercise_accepts_a_right_answer_and_names_the_usual_mistakes():
    from lgd_tutorial.exercises import ExerciseError, check_flip_flow

    assert check_flip_flow(lambda clip: clip.flip(-1) * clip.new_tensor([-1.0, 1.0]).view(2, 1, 1, 1))
    for wrong, message in ((lambda clip: clip.flip(-1), "kept the x component"),
                           (lambda clip: -clip.flip(-1), "negated both"),
                           (lambda clip: clip.flip(-2) * clip.new_tensor([1.0, -1.0]).view(2, 1, 1, 1), "vertical")):
        with pytest.raises(ExerciseError, match=message):
            check_flip_flow(wrong)


def test_flow_for_prediction_decodes_only_the_frames_its_views_read_and_equals_the_whole_video_s(tmp_path):
    """lgd predict's on-the-fly flow (``flow.PairwiseFlow``): flow frames t need video frames t and t + 1 only,
    so a long video costs what its views cost; the views equal those from the flow of every frame."""
    from lgd_tutorial.data.cache import CachedVideo
    from lgd_tutorial.data.clips import load_views
    from lgd_tutorial.data.encode import pattern_frames, write_video
    from lgd_tutorial.data.transforms import flow_test_transform
    from lgd_tutorial.data.video import open_video

    path = write_video(tmp_path / "long.mp4", pattern_frames(120, 64, 96), fps=25)
    transform = flow_test_transform(48, 48, 1, bound=20.0)
    with open_video(path) as video:
        decoded = []
        read = video._read
        video._read = lambda indices: decoded.extend(indices) or read(indices)
        lazy = load_views(flow.PairwiseFlow(video, "dis", 20.0), "test", 4, 4, 2, transform, modality="flow")
        read_for_views = set(decoded)
        everything = video.get_frames(range(len(video)))
    assert 0 < len(read_for_views) <= 2 * 2 * 4 < 120                  # 2 clips x 4 flow frames, 2 frames each
    stored = flow.dequantize(flow.quantize(flow.compute_flow(everything, "dis"), 20.0), 20.0)
    whole = load_views(CachedVideo(path, stored), "test", 4, 4, 2, transform, modality="flow")
    assert lazy.shape == whole.shape == (2, 2, 4, 48, 48)
    torch.testing.assert_close(lazy, whole)


def test_predict_takes_a_shipped_flow_model_as_the_second_stream(synth, capsys):
    videos = sorted(synth.rglob("*.mp4"))[:2]
    assert lgd(["predict", *map(str, videos), "--pretrained", "lgd3d_tiny_beacon_both",
                "--flow-pretrained", "lgd3d_tiny_synthetic_flow", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") >= 3 and all(v.name in out for v in videos)


def test_prepare_flow_takes_a_folder_of_videos_and_mirrors_it(tmp_path, capsys):
    from lgd_tutorial.data.encode import pattern_frames, write_video

    root = tmp_path / "videos"
    write_video(root / "a.mp4", pattern_frames(6, 32, 48), fps=8)
    write_video(root / "day two" / "b.avi", pattern_frames(7, 32, 48, seed=1), fps=8)
    (root / "readme.txt").write_text("not a video")
    out = tmp_path / "flow"
    assert lgd(["prepare", "flow", "--root", str(root), "--videos", "--out", str(out), "--method", "dis",
                "--short-side", "0", "--workers", "1"]) == 0
    assert "2 done, 0 skipped, 0 failed" in capsys.readouterr().out
    assert flow.FlowVideo(out / "a.mp4.flow.npz").source_frames == 6
    assert flow.FlowVideo(out / "day two" / "b.avi.flow.npz").source_frames == 7
    assert list(pd.read_csv(out / "flow_videos.csv")["path"]) == ["a.mp4", "day two/b.avi"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert lgd(["prepare", "flow", "--root", str(empty), "--videos", "--out", str(out)]) == 2
    assert "no video files" in capsys.readouterr().err
