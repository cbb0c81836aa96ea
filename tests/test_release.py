"""Loading the authors' release checkpoints: a state dict written in the release's key layout (built here from
what is known about that layout, notebooks/PAPER.md) gives this project's model the same weights and logits."""

import pytest
import torch

from lgd_tutorial.models import build_model
from lgd_tutorial.models.release import (convert_release_state_dict, is_release_state_dict,
                                         load_release_checkpoint, load_release_state_dict)


def release_layout(model, seed=0):
    """Random tensors under the release's names, and a twin of ``model`` holding the same tensors, set module by
    module (not through the converter)."""
    gen = torch.Generator().manual_seed(seed)
    release, twin = {}, build_model(model.arch, model.num_classes)

    def put(name, ours, module_of_twin):
        values = {}
        for key, p in ours.state_dict().items():
            t = torch.randn(p.shape, generator=gen) * 0.05 if p.is_floating_point() else p.clone()
            if key == "running_var":
                t = t.abs() + 0.5
            values[key] = t
            release[f"{name}.{key}"] = t
        module_of_twin.load_state_dict(values)

    put("conv1", model.stem.conv, twin.stem.conv)
    put("bn1", model.stem.bn, twin.stem.bn)
    for (name, block), (_, tblock) in zip(model.named_lgd_blocks(), twin.named_lgd_blocks()):
        r, t = block.residual, tblock.residual
        for key, a, b in (("conv1", r.conv1, t.conv1), ("bn1", r.bn1, t.bn1), ("conv2", r.conv2.spatial,
                          t.conv2.spatial), ("conv2_t", r.conv2.temporal, t.conv2.temporal),
                          ("bn2", r.conv2.bn, t.conv2.bn), ("conv3", r.conv3, t.conv3), ("bn3", r.bn3, t.bn3)):
            put(f"{name}.{key}", a, b)
        if hasattr(block.shortcut, "conv"):
            put(f"{name}.downsample.0", block.shortcut.conv, tblock.shortcut.conv)
            put(f"{name}.downsample.1", block.shortcut.bn, tblock.shortcut.bn)
        for i, (path, tpath) in enumerate(((block.local_to_global, tblock.local_to_global),
                                           (block.global_to_global, tblock.global_to_global),
                                           (block.global_to_local, tblock.global_to_local))):
            put(f"{name}.fc{2 * i + 1}", path[0], tpath[0])         # fc1/fc2 W_gx, fc3/fc4 W_gg, fc5/fc6 W_xg
            put(f"{name}.fc{2 * i + 2}", path[1], tpath[1])
    put("fc", model.classifier.local_head, twin.classifier.local_head)
    put("fc_g", model.classifier.global_head, twin.classifier.global_head)
    return release, twin.eval()


@pytest.fixture(scope="module")
def r50():
    return build_model("lgd3d_r50", 7).eval()


def test_a_release_state_dict_gives_the_same_weights_and_logits(r50):
    release, twin = release_layout(r50)
    assert is_release_state_dict(release) and not is_release_state_dict(r50.state_dict())
    checkpoint = {"model": {f"module.{k}": v for k, v in release.items()}, "epoch": 128}   # as its trainer saves it
    loaded = load_release_state_dict(build_model("lgd3d_r50", 7), checkpoint).eval()
    clip = torch.randn(2, 3, 4, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, expected = loaded(clip, return_heads=True), twin(clip, return_heads=True)
    for head in ("local_logits", "global_logits"):
        torch.testing.assert_close(got[head], expected[head], rtol=0, atol=0)
    assert not torch.equal(got["local_logits"], got["global_logits"])


def test_keys_without_a_counterpart_and_missing_tensors_are_named(r50):
    release, _ = release_layout(r50)
    with pytest.raises(ValueError, match="layer1.0.fc7.weight"):
        convert_release_state_dict({**release, "layer1.0.fc7.weight": torch.zeros(1)})
    del release["layer2.0.conv2_t.weight"]
    with pytest.raises(ValueError, match=r"missing: layer2\.0\.residual\.conv2\.temporal\.weight"):
        load_release_state_dict(build_model("lgd3d_r50", 7), release)
    with pytest.raises(ValueError, match="basic-block"):
        convert_release_state_dict({"layer1.0.conv1_t.weight": torch.zeros(1)})


def test_a_release_checkpoint_file_loads_with_its_number_of_classes(r50, tmp_path):
    release, twin = release_layout(r50, seed=3)
    torch.save({"model": release, "optimizer": {}, "epoch": 1}, tmp_path / "ckpt_epoch_1.pth")
    model = load_release_checkpoint(tmp_path / "ckpt_epoch_1.pth", "lgd3d_r50")
    assert model.num_classes == 7 and not model.training
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(clip), twin(clip), rtol=0, atol=0)
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="broken.pth"):
        load_release_checkpoint(tmp_path / "broken.pth")


def test_lgd_evaluate_scores_a_release_checkpoint_with_a_named_recipe(r50, tmp_path, synthetic_set, capsys):
    import yaml

    from lgd_tutorial.cli import main as lgd

    data = synthetic_set(seed=4, videos_per_class=1)
    release, _ = release_layout(build_model("lgd3d_r50", 4).eval(), seed=5)
    torch.save({"model": release}, tmp_path / "release.pth")
    recipe = {"data": {"dataset": "synthetic", "root": str(data), "num_frames": 4, "stride": 2, "crop_size": 32,
                       "test_short_side": 32, "test_clips": 1, "test_crops": 1},
              "model": {"arch": "lgd3d_r50", "num_classes": 4}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert lgd(["evaluate", "--checkpoint", str(tmp_path / "release.pth"), "--out", str(tmp_path / "eval")]) == 2
    assert "authors' release" in capsys.readouterr().err
    assert lgd(["evaluate", "--checkpoint", str(tmp_path / "release.pth"), "--config", str(tmp_path / "recipe.yaml"),
                "--out", str(tmp_path / "eval")]) == 0
    assert "4 videos x 1 views" in capsys.readouterr().out
    assert (tmp_path / "eval" / "predictions.csv").exists()
