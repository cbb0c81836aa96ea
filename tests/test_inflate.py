"""ImageNet inflation: a static video gives the 2D network's features on every frame."""

import pytest
import torch
import torchvision

from lgd_tutorial.models import build_model, inflate_from_2d
from lgd_tutorial.models.p3d import P3DA

# float32 through 16 blocks; the deepest stage's activations reach ~1e2, so the
# tolerance is relative to each stage's largest activation.
RELATIVE_TOLERANCE = 1e-5


def torchvision_stages(resnet, image):
    y = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(image))))
    out = {}
    for i in range(1, 5):
        y = getattr(resnet, f"layer{i}")(y)
        out[f"layer{i}"] = y
    return out


def randomise_batch_norm(resnet):
    """Non-trivial BN statistics, so the check would notice a BN mapped to the wrong place."""
    generator = torch.Generator().manual_seed(1)
    for module in resnet.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(shape, generator=generator))
            module.weight.data.copy_(0.5 + torch.rand(shape, generator=generator))
            module.bias.data.copy_(0.1 * torch.randn(shape, generator=generator))


@pytest.mark.slow
def test_static_video_through_inflated_lgd3d_r50_gives_resnet50_features_stage_by_stage():
    torch.manual_seed(0)
    resnet = torchvision.models.resnet50().eval()
    randomise_batch_norm(resnet)
    model = inflate_from_2d(build_model("lgd3d_r50", 10, diffusion="none"), resnet.state_dict()).eval()
    image = torch.randn(1, 3, 112, 112)
    clip = image[:, :, None].expand(1, 3, 16, 112, 112).contiguous()
    with torch.no_grad():
        reference = torchvision_stages(resnet, image)
        _, _, taps = model.forward_features(clip, return_taps=True)
    last_of_stage = {tap.name.split(".")[0]: tap.local for tap in taps}
    for stage, expected in reference.items():
        got = last_of_stage[stage]
        assert got.shape[2] == 4
        for t in range(4):
            error = (got[:, :, t] - expected).abs().max() / expected.abs().max()
            assert error < RELATIVE_TOLERANCE, f"{stage}, temporal position {t}: relative error {error:.2e}"


def test_temporal_kernels_start_as_identity_in_a_units_and_zero_in_b_and_c():
    model = inflate_from_2d(build_model("lgd3d_r50", 10), torchvision.models.resnet50().state_dict())
    for block in model.blocks():
        unit = block.residual.conv2
        weight = unit.temporal.weight
        if isinstance(unit, P3DA):
            expected = torch.zeros_like(weight)
            expected[range(weight.shape[0]), range(weight.shape[0]), 1] = 1
            assert torch.equal(weight, expected)
        else:
            assert not weight.any()


def test_stem_kernel_sits_at_temporal_index_2_of_4():
    resnet = torchvision.models.resnet50()
    model = inflate_from_2d(build_model("lgd3d_r50", 10), resnet.state_dict())
    weight = model.stem.conv.weight
    assert weight.shape == (64, 3, 4, 7, 7)
    assert torch.equal(weight[:, :, 2], resnet.conv1.weight)
    assert not weight[:, :, [0, 1, 3]].any()


def test_lgd3d_r101_loads_a_resnet101_file(tmp_path):
    path = tmp_path / "resnet101.pth"
    resnet = torchvision.models.resnet101()
    torch.save(resnet.state_dict(), path)
    model = inflate_from_2d(build_model("lgd3d_r101", 10), path)
    torch.testing.assert_close(model.layer3[22].residual.conv3.weight[..., 0, 0, 0],
                               resnet.layer3[22].conv3.weight[..., 0, 0])


def test_mismatched_state_dict_is_rejected_with_the_keys_listed():
    model = build_model("lgd3d_r50", 10)
    with pytest.raises(ValueError) as error:
        inflate_from_2d(model, torchvision.models.resnet101().state_dict())
    assert "layer3.6.conv1.weight" in str(error.value)       # blocks ResNet-50 does not have
    with pytest.raises(ValueError) as error:
        inflate_from_2d(model, torchvision.models.resnet18().state_dict())
    assert "shape mismatch" in str(error.value) and "layer1.0.conv1.weight" in str(error.value)
    assert "missing" in str(error.value) and "layer1.0.conv3.weight" in str(error.value)
