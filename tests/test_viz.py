"""The visualisation toolkit on constructed cases with known answers (lgd3d_tiny, 8x32x32 clips)."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from lgd_tutorial.models import build_model
from lgd_tutorial.viz.spreading import evidence_on_the_square, one_region_clips, train_on_one_region_clips
from lgd_tutorial.viz import (ClipGradCAM, FrameGradCAM, TapRecorder, ablate_global_path, check_cam_method,
                              class_evidence, clip_to_frames, collect_taps, confusion_matrix, cut_global_path,
                              diffusion_explorer, diffusion_grid, diffusion_maps, evidence_explorer,
                              export_animation, gradcam_explorer, gradcam_strip, make_video_cam, normalize_maps,
                              overlay, per_class_accuracy, plot_ablation, plot_confusion, plot_learning_curves,
                              plot_per_class_accuracy, save_figure, tap_layers, video_gradcam)

K = 5
SHAPE = (8, 32, 32)


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("lgd3d_tiny", num_classes=K, **kw).eval()


def clip(batch=2, seed=1):
    return torch.randn(batch, 3, *SHAPE, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- taps


def test_recorder_hooks_see_the_same_tensors_as_the_taps_api():
    model, x = tiny(), clip()
    record = collect_taps(model, x)
    with TapRecorder(model) as recorder:
        with torch.no_grad():
            logits = model(x)
    assert torch.allclose(logits, record.logits, atol=1e-5)
    assert list(recorder.outputs) == record.names == ["layer1.0", "layer2.0", "layer3.0", "layer4.0"]
    for taps in record.blocks:
        seen = recorder.outputs[taps.name]
        assert torch.allclose(seen["local"], taps.local, atol=1e-5)
        assert torch.allclose(seen["global"], taps.global_, atol=1e-5)
        assert torch.allclose(seen["global_to_local"], taps.global_to_local, atol=1e-5)
    # the hooks are gone after the block
    assert all(not block.tap_local._forward_hooks for block in model.blocks())


def test_collect_taps_restores_training_mode():
    model = tiny().train()
    collect_taps(model, clip())
    assert model.training


# ---------------------------------------------------------------- diffusion maps


def test_full_model_has_a_nonzero_global_to_local_term():
    maps = diffusion_maps(tiny(), clip())
    for ratio, cosine in zip(maps.ratio, maps.cosine):
        assert ratio.shape == cosine.shape
        assert float(ratio.min()) > 0
        assert float(cosine.abs().max()) <= 1 + 1e-5


def test_cut_global_path_gives_zero_diffusion_maps_everywhere():
    model, x = tiny(), clip()
    with cut_global_path(model, 0) as cut:
        maps = diffusion_maps(model, x)
    assert cut == maps.names
    for ratio in maps.ratio:
        assert torch.count_nonzero(ratio) == 0
    # hooks removed: the term is back
    assert float(diffusion_maps(model, x).ratio[0].min()) > 0


def test_model_without_global_to_local_diffusion_gives_zero_maps():
    maps = diffusion_maps(tiny(diffusion="local_to_global"), clip())
    assert all(torch.count_nonzero(r) == 0 for r in maps.ratio)
    assert all(c is not None for c in maps.cosine)


def test_model_without_a_global_path_has_nothing_to_cut_or_draw():
    model, x = build_model("p3d_tiny", num_classes=K).eval(), clip(1)
    with cut_global_path(model) as cut:
        assert cut == []
    maps = diffusion_maps(model, x)
    assert all(torch.count_nonzero(r) == 0 for r in maps.ratio) and maps.cosine == [None] * 4
    with pytest.raises(ValueError, match="global path"):
        diffusion_grid(model, x, kind="cosine")


def test_cosine_of_a_map_equal_to_its_global_vector_is_one():
    from lgd_tutorial.viz import global_cosine

    g = torch.rand(2, 6) + 0.1
    local = 3.0 * g[:, :, None, None, None].expand(2, 6, 2, 3, 3)
    assert torch.allclose(global_cosine(local, g), torch.ones(2, 2, 3, 3), atol=1e-6)
    assert torch.allclose(global_cosine(-local, g), -torch.ones(2, 2, 3, 3), atol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        global_cosine(local, torch.rand(2, 5))


def test_ablation_changes_only_blocks_from_the_cut_on():
    model, x = tiny(), clip()
    result = ablate_global_path(model, x, from_block="layer3.0")
    assert result.cut_blocks == ["layer3.0", "layer4.0"]
    change = {row["block"]: row["relative_change"] for row in result.summary()}
    assert change["layer1.0"] == 0.0 and change["layer2.0"] == 0.0
    assert change["layer3.0"] > 0 and change["layer4.0"] > 0
    assert not torch.allclose(result.logits, result.logits_cut)
    assert (result.kl >= 0).all()
    assert result.local_change[2].shape == result.record.blocks[2].local[:, 0].shape


# ---------------------------------------------------------------- kernel evidence


def test_linear_evidence_averages_to_the_local_logits():
    model, x = tiny(), clip()
    evidence, _ = class_evidence(model, x)
    with torch.no_grad():
        heads = model(x, return_heads=True)
    local_logits = evidence.mean((2, 3, 4)) + model.classifier.local_head.bias
    assert torch.allclose(local_logits, heads["local_logits"], atol=1e-5)
    one, _ = class_evidence(model, x, classes=[1, 3])
    assert torch.equal(one, evidence[[0, 1], [1, 3]])


def test_overlay_with_zero_opacity_is_the_frame():
    frames = clip_to_frames(clip(1))
    assert frames.shape == (*SHAPE, 3) and frames.min() >= 0 and frames.max() <= 1
    heat = np.random.default_rng(0).random(SHAPE)
    assert np.allclose(overlay(frames, heat, alpha=0.0), frames)
    assert not np.allclose(overlay(frames, heat, alpha=0.7), frames)


def test_normalize_maps_per_frame_and_per_clip():
    maps = np.random.default_rng(0).random((2, 4, 5, 5)) * np.arange(1, 5)[None, :, None, None]
    per_frame = normalize_maps(maps, "frame")
    assert np.allclose(per_frame.max((2, 3)), 1) and np.allclose(per_frame.min((2, 3)), 0)
    per_clip = normalize_maps(maps, "clip")
    assert np.allclose(per_clip.max((1, 2, 3)), 1)
    assert per_clip[:, 0].max() < 0.5                     # the dim first frame stays dim
    assert np.allclose(normalize_maps(np.full((3, 4, 4), 2.0), "frame", scaling="max"), 1)


# ---------------------------------------------------------------- Grad-CAM


def test_the_unmodified_package_gradcam_on_a_tap_explains_the_top_class_with_its_kernel_evidence():
    """pytorch-grad-cam's own GradCAM on our tap: one (T, H, W) map per clip, min-max scaled over the clip, and
    (linear kernel, last tap) the top class's positive evidence upsampled to the clip, up to interpolation."""
    import torch.nn.functional as F
    from pytorch_grad_cam import GradCAM

    model, x = tiny(), clip()
    with GradCAM(model, tap_layers(model, "local", [-1])) as cam:
        maps = cam(x, None)                                      # None: each clip's top class
    assert maps.shape == (2, *SHAPE)
    top = model(x).argmax(1)
    for i in range(2):
        evidence = class_evidence(model, x[i:i + 1], classes=int(top[i]))[0][0].clamp_min(0)
        expected = F.interpolate(evidence[None, None], size=SHAPE, mode="trilinear", align_corners=False)
        assert maps[i].max() == pytest.approx(1.0, abs=1e-5) and maps[i].min() == pytest.approx(0.0, abs=1e-6)
        assert np.corrcoef(maps[i].ravel(), expected.numpy().ravel())[0, 1] > 0.95


@pytest.mark.parametrize("method", ["gradcam", "gradcam_frame"])
def test_video_gradcam_shape_and_per_frame_normalisation(method):
    model, x = tiny(), clip()
    # class 2's template is all positive: its evidence sum_c x_c is > 0 wherever features are
    with torch.no_grad():
        model.classifier.local_head.weight[2] = 0.05
    maps = video_gradcam(model, x, 2, normalize="frame", method=method,
                         target_layers=tap_layers(model, "local", ["layer3.0"]))
    assert maps.shape == (2, *SHAPE)
    assert np.allclose(maps.max(axis=(2, 3)), 1.0)
    model.train()
    clip_maps = video_gradcam(model, x, 2, normalize="clip", method=method)
    assert model.training                                 # the previous mode is restored
    assert np.allclose(clip_maps.max(axis=(1, 2, 3)), 1.0)


@pytest.mark.parametrize("cls", [ClipGradCAM, FrameGradCAM])
def test_gradcam_at_the_last_tap_is_the_kernel_evidence(cls):
    # linear kernel: d logit_c / d x_i = u_c / (T'H'W') everywhere, so the raw
    # CAM at the final local map is ReLU(u_c . x_i) / (T'H'W'): the evidence map.
    model, x = tiny(), clip(1)
    evidence, _ = class_evidence(model, x, classes=3)
    positions = evidence[0].numel()
    with cls(model, tap_layers(model, "local", [-1]), normalize=None, output_size="feature") as cam:
        maps = cam(x, [ClassifierOutputTarget(3)])
    expected = evidence.clamp_min(0).numpy() / positions
    assert maps.shape == expected.shape
    assert np.allclose(maps, expected, atol=1e-6, rtol=1e-4)


def test_gradcam_needs_an_explicit_normalisation():
    model = tiny()
    with pytest.raises(TypeError):
        ClipGradCAM(model, tap_layers(model, "local", [-1]))
    with pytest.raises(ValueError, match="normalize"):
        video_gradcam(model, clip(), normalize="pixel")


@pytest.mark.parametrize("name", ["scorecam", "ScoreCAM", "ablationcam", "AblationCAM"])
def test_scorecam_and_ablationcam_are_refused_on_video(name):
    from pytorch_grad_cam import AblationCAM, ScoreCAM

    with pytest.raises(ValueError, match="5D"):
        check_cam_method(name)
    model = tiny()
    cls = ScoreCAM if name.lower().startswith("score") else AblationCAM
    with pytest.raises(ValueError, match="5D"):
        make_video_cam(cls, model, tap_layers(model, "local", [-1]), normalize="clip")

    class Derived(cls):
        pass

    with pytest.raises(ValueError, match="5D"):
        check_cam_method(Derived)


# ---------------------------------------------------------------- figures, animations, explorers


def test_grid_strip_and_animations_write_files(tmp_path):
    model, x = tiny(), clip(1)
    grid = diffusion_grid(model, x, max_frames=4)
    assert len(grid.axes) == 4 * 5 + 1                       # 4 frames x (frames row + 4 blocks), a colorbar
    assert "over all blocks" in grid.axes[-1].get_ylabel()     # the colorbar says how maps are scaled
    assert save_figure(grid, tmp_path / "grid.png").stat().st_size > 0
    cam = video_gradcam(model, x, normalize="frame")[0]
    assert save_figure(gradcam_strip(clip_to_frames(x), cam), tmp_path / "strip.png").stat().st_size > 0
    gif = export_animation(clip_to_frames(x), tmp_path / "cam.gif", heat=cam, fps=4)
    with Image.open(gif) as image:
        assert image.n_frames == SHAPE[0]
    mp4 = export_animation(clip_to_frames(x), tmp_path / "cam.mp4", heat=cam, fps=4)
    assert mp4.stat().st_size > 1000
    with pytest.raises(ValueError, match="gif"):
        export_animation(clip_to_frames(x), tmp_path / "cam.avi")


@pytest.mark.parametrize("build", [diffusion_explorer, evidence_explorer, gradcam_explorer])
def test_explorers_build_and_update_without_a_front_end(build):
    import ipywidgets

    explorer = build(tiny(), clip(1))
    assert isinstance(explorer.widget, ipywidgets.VBox)
    assert isinstance(explorer.image, ipywidgets.Image)
    before = explorer.image.value
    assert before[:8] == b"\x89PNG\r\n\x1a\n"
    explorer.frame.value = 5
    moved = explorer.image.value
    assert moved != before
    explorer.opacity.value = 0.0
    plain = explorer.image.value
    frame5 = clip_to_frames(clip(1))[5]
    assert np.allclose(explorer.render(), frame5)
    assert plain != moved
    explorer.opacity.value = 0.8
    for picker in (explorer.block, explorer.klass):
        if picker is None:
            continue
        shown = explorer.image.value
        values = [option[1] if isinstance(option, tuple) else option for option in picker.options]
        picker.value = next(v for v in values if v != picker.value)
        assert explorer.image.value != shown


# ---------------------------------------------------------------- plots


def test_confusion_and_per_class_accuracy_known_counts():
    y_true, y_pred = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 0, 2]
    assert confusion_matrix(y_true, y_pred).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    table = per_class_accuracy(y_true, y_pred, ["a", "b", "c", "d"])
    assert table["accuracy"].tolist()[:3] == [0.5, 1.0, 0.5]
    assert np.isnan(table["accuracy"].iloc[3])            # no examples of class d


def test_plots_write_files(tmp_path):
    rows = [dict(epoch=e, step=10 * e, split=s, loss=1 / (e + 1), acc1=e / 10, lr=0.1 * 0.9**e,
                 clips_per_s=50.0, data_wait_frac=0.1) for e in range(4) for s in ("train", "val")]
    pd.DataFrame(rows).to_csv(tmp_path / "metrics.csv", index=False)
    fig = plot_learning_curves(tmp_path / "metrics.csv", path=tmp_path / "curves.png")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 5
    # missing columns are tolerated: only what is there is drawn
    partial = pd.DataFrame(rows)[["epoch", "loss"]]
    fig = plot_learning_curves(partial, path=tmp_path / "partial.png")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1
    with pytest.raises(ValueError, match="none of"):
        plot_learning_curves(pd.DataFrame({"epoch": [0, 1]}))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 60)
    plot_confusion(y, y[::-1], ["a", "b", "c", "d"], path=tmp_path / "confusion.png")
    plot_per_class_accuracy(y, y[::-1], ["a", "b", "c", "d"], path=tmp_path / "per_class.png")
    results = [dict(variant=v, seed=s, acc1=rng.random()) for v in ("both", "none") for s in range(3)]
    fig = plot_ablation(results, path=tmp_path / "ablation.png")
    assert "s.d. over the runs of a bar" in fig.axes[0].get_title()
    assert all("(n=3)" in t.get_text() for t in fig.axes[0].get_xticklabels())
    for name in ("curves", "partial", "confusion", "per_class", "ablation"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0


def test_lgd_viz_demo_draws_the_shipped_teaching_checkpoints(tmp_path, capsys):
    from lgd_tutorial import cli

    assert cli.main(["viz", "--demo", "--out", str(tmp_path)]) == 0
    for name in ("viz_counterfactual.png", "viz_cosine_grid.png", "viz_gradcam_strip.png"):
        assert (tmp_path / name).stat().st_size > 10000


def test_lgd_viz_draws_the_shipped_checkpoints_by_default_and_refuses_an_unknown_one(tmp_path, capsys):
    from lgd_tutorial import cli

    assert cli.main(["viz", "--out", str(tmp_path), "--clip", "3"]) == 0
    for name in ("viz_counterfactual.png", "viz_cosine_grid.png", "viz_gradcam_strip.png"):
        assert (tmp_path / name).stat().st_size > 10000
    assert cli.main(["viz", "--pretrained", "no_such_model", "--out", str(tmp_path)]) == 2
    assert "unknown teaching checkpoint 'no_such_model'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("arch, at_least", [("p3d_tiny", 0.9), ("lgd3d_tiny", 0.3)])
def test_a_trained_model_puts_its_class_evidence_where_the_class_is(arch, at_least):
    """Only one region of each clip carries the class (the colour of one square). After training, the true
    class's evidence peaks in that square's cell of the final 4x4 map far more often than chance (1/16).
    Without diffusion it peaks there in nearly every clip (observed: 100%). With diffusion the global vector
    carries the class to every position, so evidence also appears away from the square (observed: 56%)."""
    model = train_on_one_region_clips(arch)
    result = evidence_on_the_square(model, *one_region_clips(32, torch.Generator().manual_seed(1)))
    assert result["accuracy"] >= 0.9
    assert result["peak on the square"] >= at_least, \
        f"evidence peaked on the square's cell in only {result['peak on the square']:.0%} of the clips"


def test_lgd_viz_draws_a_training_checkpoint(tmp_path):
    from lgd_tutorial import cli
    from lgd_tutorial.config import load_config

    cfg = load_config("tiny_synthetic_cpu")
    model = build_model(cfg.model.arch, cfg.model.num_classes, diffusion=cfg.model.diffusion,
                        dropout=cfg.model.dropout)
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, tmp_path / "best.pt")
    assert cli.main(["viz", "--checkpoint", str(tmp_path / "best.pt"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "viz_counterfactual.png").stat().st_size > 10000
