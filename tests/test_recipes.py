"""The release recipes carry the release's values (notebooks/PAPER.md), and every switch they use works."""

import logging
import random

import pytest
import torch

from lgd_tutorial.builders import make_optimizer, model_from_config
from lgd_tutorial.cli import main as lgd
from lgd_tutorial.config import ConfigError, load_config
from lgd_tutorial.data.transforms import ColorJitter, GaussianBlur, RandomGrayscale, train_transform
from lgd_tutorial.evaluation import average_views, view_scores
from lgd_tutorial.models import build_model
from lgd_tutorial.training import compute_loss

RELEASE = {
    "data.num_frames": 16, "data.stride": 1, "data.crop_size": 224, "data.resized_crop": True,
    "data.crop_scale": [0.2, 1.0], "data.color_jitter": [0.4, 0.4, 0.4, 0.1], "data.color_jitter_p": 0.8,
    "data.grayscale_p": 0.2, "data.blur_p": 0.5, "data.blur_sigma": [0.1, 2.0], "data.test_short_side": 256,
    "data.test_crops": 3, "data.test_crop_size": 256, "data.test_clips": 20, "data.test_head": "local",
    "data.test_average": "logits", "model.arch": "lgd3d_r50", "model.init": "imagenet", "model.dropout": 0.5,
    "optim.epochs": 128, "optim.lr": 0.04, "optim.lr_batch": 256, "optim.momentum": 0.9, "optim.nesterov": True,
    "optim.weight_decay": 1e-4, "optim.decay_all": True, "optim.loss_weight": 4.0, "optim.clip_grad": 40.0,
    "optim.warmup_epochs": 1.0, "optim.schedule": "cosine", "optim.combined_weight": 0.0, "optim.heads_weight": 1.0,
}


@pytest.mark.parametrize("recipe", ["k400_full", "k600_full"])
def test_the_release_recipes_carry_the_release_values(recipe):
    cfg = load_config(recipe)
    for key, value in RELEASE.items():
        section, name = key.split(".")
        assert getattr(getattr(cfg, section), name) == value, f"{recipe}: {key}"
    assert cfg.data.batch_size * cfg.optim.accumulate * 4 == cfg.optim.lr_batch     # 16 clips x 4 steps x 4 GPUs
    assert cfg.model.num_classes == int(recipe[1:4])


def test_a_release_recipe_without_its_imagenet_file_stops_at_once_and_says_what_to_do(capsys):
    assert lgd(["train", "--config", "k400_full", "run.out_dir=/nonexistent/never_written"]) == 2
    err = capsys.readouterr().err
    assert "model.pretrained_2d=PATH" in err and "model.init=scratch" in err and "torchvision" in err
    with pytest.raises(ConfigError, match="model.init is 'scratch'"):
        model_from_config(load_config("tiny_synthetic_cpu", ["model.pretrained_2d=resnet.pth"]).model)
    with pytest.raises(ConfigError, match="no such file"):
        model_from_config(load_config("k400_full", ["model.pretrained_2d=/no/such/resnet50.pth"]).model)


@pytest.mark.slow
def test_a_torchvision_resnet50_file_is_inflated_and_the_run_says_so(tmp_path, caplog):
    import torchvision

    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "resnet50.pth")
    cfg = load_config("k400_full", [f"model.pretrained_2d={tmp_path / 'resnet50.pth'}"])
    with caplog.at_level(logging.INFO, logger="lgd_tutorial.builders"):
        model = model_from_config(cfg.model)
    assert "inflated the 2D weights of" in caplog.text and "lgd3d_r50" in caplog.text
    source = torch.load(tmp_path / "resnet50.pth", weights_only=True)
    torch.testing.assert_close(model.stem.conv.weight[:, :, 2], source["conv1.weight"])
    assert not model.stem.conv.weight[:, :, [0, 1, 3]].any()


def test_weight_decay_on_all_parameters_is_a_switch():
    model = build_model("lgd3d_tiny", 4)
    default = make_optimizer(model, load_config("tiny_synthetic_cpu"))
    assert sorted({g["weight_decay"] for g in default.param_groups}) == [0.0, 1e-4]
    everywhere = make_optimizer(model, load_config("tiny_synthetic_cpu", ["optim.decay_all=true"]))
    assert {g["weight_decay"] for g in everywhere.param_groups} == {1e-4}


def test_the_loss_weight_multiplies_the_loss():
    out = {"logits": torch.randn(3, 4), "local_logits": torch.randn(3, 4), "global_logits": torch.randn(3, 4)}
    labels = torch.tensor([0, 1, 2])
    one = compute_loss(out, labels, load_config("k400_full", ["optim.loss_weight=1"]))
    four = compute_loss(out, labels, load_config("k400_full"))
    torch.testing.assert_close(four, 4 * one)


def clip_of(seed=0):
    return torch.rand(3, 4, 24, 24, generator=torch.Generator().manual_seed(seed))


def test_colour_jitter_changes_the_whole_clip_alike_and_is_reproducible():
    clip = clip_of()
    clip[:, 1] = clip[:, 0]                                       # two identical frames stay identical
    a = ColorJitter(p=1.0)(clip, random.Random(3))
    b = ColorJitter(p=1.0)(clip, random.Random(3))
    assert torch.equal(a, b) and not torch.equal(a, clip) and a.shape == clip.shape
    torch.testing.assert_close(a[:, 0], a[:, 1])
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(ColorJitter(p=0.0)(clip, random.Random(3)), clip)


def test_grayscale_and_blur():
    clip = clip_of(1)
    grey = RandomGrayscale(p=1.0)(clip, random.Random(0))
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    blurred = GaussianBlur((1.5, 2.0), p=1.0)(clip, random.Random(0))
    assert blurred.shape == clip.shape
    roughness = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean()  # noqa: E731
    assert roughness(blurred) < 0.5 * roughness(clip)


def test_the_release_training_transform_applies_its_steps_in_order():
    cfg = load_config("k400_full").data
    transform = train_transform(112, resized_crop=True, crop_scale=cfg.crop_scale, color_jitter=cfg.color_jitter,
                                color_jitter_p=cfg.color_jitter_p, grayscale_p=cfg.grayscale_p, blur_p=cfg.blur_p,
                                blur_sigma=cfg.blur_sigma)
    assert [type(t).__name__ for t in transform.transforms] == [
        "RandomResizedCrop", "ColorJitter", "RandomGrayscale", "GaussianBlur", "HorizontalFlip", "Normalize"]
    assert transform.transforms[0].scale == (0.2, 1.0)
    out = transform(clip_of(2), random.Random(5))
    assert out.shape == (3, 4, 112, 112)
    with pytest.raises(ConfigError, match="data.color_jitter"):
        load_config("k400_full", ["data.color_jitter=[0.4, 0.4]"])
    with pytest.raises(ConfigError, match="data.grayscale_p"):
        load_config("k400_full", ["data.grayscale_p=2"])


def test_evaluation_heads_and_averaging():
    model = build_model("lgd3d_tiny", 5).eval()
    clips = torch.randn(4, 3, 8, 32, 32)
    with torch.no_grad():
        heads = model(clips, return_heads=True)
        torch.testing.assert_close(view_scores(model, clips, "local"), heads["local_logits"])
        torch.testing.assert_close(view_scores(model, clips, "combined"), heads["logits"])
    logits = torch.tensor([[4.0, 0.0], [0.0, 1.0]])                # two views of one video
    torch.testing.assert_close(average_views(logits, 1, 2, "logits"), torch.tensor([[2.0, 0.5]]))
    expected = (logits.softmax(1)[0] + logits.softmax(1)[1]) / 2
    torch.testing.assert_close(average_views(logits, 1, 2, "softmax")[0], expected)
    with pytest.raises(ValueError, match="head must be one of"):
        view_scores(model, clips, "global")


def test_lgd_evaluate_offers_the_release_protocol_and_both_heads(tmp_path, synthetic_set, capsys):
    data = synthetic_set(seed=6, videos_per_class=1)
    cfg = load_config("tiny_synthetic_cpu", [f"data.root={data}", "data.crop_size=32", "data.test_short_side=40",
                                             "data.num_frames=4"])
    model = build_model(cfg.model.arch, cfg.model.num_classes)
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, tmp_path / "best.pt")
    base = ["evaluate", "--checkpoint", str(tmp_path / "best.pt"), "--out", str(tmp_path / "eval")]
    assert lgd(base + ["--protocol", "release", "--clips", "2"]) == 0
    out = capsys.readouterr().out
    assert "protocol: 2 clip(s) x 3 crop(s) of 40 px, local head, logits averaged" in out
    assert "4 videos x 6 views" in out
    assert lgd(base + ["--head", "combined", "--average", "softmax"]) == 0
    assert "1 crop(s) of 32 px, combined head, softmax averaged" in capsys.readouterr().out
