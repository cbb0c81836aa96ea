"""Behaviour of the LGD networks, the LGD block and its ablation switch."""

import pytest
import torch
from torch import nn

from lgd_tutorial.models import DIFFUSIONS, build_model, list_models, model_info
from lgd_tutorial.models.lgd import LGDBlock
from lgd_tutorial.models.p3d import pointwise_conv, spatial_conv, temporal_conv

LGD_PARAMETER_NAMES = ("local_to_global", "global_to_global", "global_to_local")


def small_clip(model, n=2, size=32):
    torch.manual_seed(0)
    return torch.randn(n, 3, 2 * model.temporal_stride, size, size)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_runs_forward_and_backward(name):
    model = build_model(name, num_classes=7)
    x = small_clip(model)
    heads = model(x, return_heads=True)
    assert heads["logits"].shape == (2, 7)
    assert heads["local_logits"].shape == (2, 7)
    assert torch.isfinite(heads["logits"]).all()
    heads["logits"].sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.arch == name


def test_release_heads_are_both_present_with_diffusion_and_only_local_without():
    assert set(build_model("lgd3d_tiny", 3)(torch.randn(1, 3, 4, 32, 32), return_heads=True)) == {
        "logits", "local_logits", "global_logits"}
    assert set(build_model("p3d_tiny", 3)(torch.randn(1, 3, 4, 32, 32), return_heads=True)) == {
        "logits", "local_logits"}


def test_p3d_units_cycle_a_b_c_over_the_whole_network():
    model = build_model("lgd3d_r50", 10)
    kinds = [type(block.residual.conv2).__name__ for block in model.blocks()]
    assert len(kinds) == 16
    assert kinds == [("P3DA", "P3DB", "P3DC")[i % 3] for i in range(16)]


def test_a_16_frame_clip_keeps_4_temporal_positions_in_every_stage():
    model = build_model("lgd3d_r50", 10).eval()
    with torch.no_grad():
        _, _, taps = model.forward_features(torch.randn(1, 3, 16, 64, 64), return_taps=True)
    assert {tap.local.shape[2] for tap in taps} == {4}
    assert [tuple(taps[i].local.shape[1:]) for i in (2, 6, 12, 15)] == [
        (256, 4, 16, 16), (512, 4, 8, 8), (1024, 4, 4, 4), (2048, 4, 2, 2)]


def test_taps_describe_every_block_with_the_documented_shapes():
    model = build_model("lgd3d_tiny", 5).eval()
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        local, global_, taps = model.forward_features(x, return_taps=True)
    assert [tap.name for tap in taps] == ["layer1.0", "layer2.0", "layer3.0", "layer4.0"]
    for tap in taps:
        n, c = tap.global_.shape
        assert tap.local.shape[:2] == (n, c) and tap.local.dim() == 5
        assert tap.residual.shape == tap.local.shape
        assert tap.global_to_local.shape == tap.local.shape
        assert tap.local_to_global.shape == (n, c)
        # x_new = ReLU(F(x) + S(x) + U(W_xg g_new))
        torch.testing.assert_close(tap.local, torch.relu(tap.residual + tap.global_to_local))
    assert torch.equal(taps[-1].local, local) and torch.equal(taps[-1].global_, global_)


def test_tap_modules_return_single_tensors_to_forward_hooks():
    model = build_model("lgd3d_tiny", 5).eval()
    seen = {}
    block = model.layer3[0]
    for name in ("tap_local", "tap_global", "tap_global_to_local"):
        getattr(block, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    with torch.no_grad():
        model(torch.randn(1, 3, 8, 64, 64))
    assert seen["tap_local"].dim() == 5 and seen["tap_global_to_local"].dim() == 5
    assert seen["tap_global"].shape == (1, 64)


def test_no_diffusion_means_no_lgd_parameters_at_all():
    names = [n for n, _ in build_model("lgd3d_r50", 10, diffusion="none").named_parameters()]
    assert not [n for n in names if any(p in n for p in LGD_PARAMETER_NAMES)]
    assert not [n for n in names if "global_head" in n]
    assert [n for n, _ in build_model("p3d_r50", 10).named_parameters()] == names


@pytest.mark.parametrize("diffusion,expected", [
    ("both", {"local_to_global", "global_to_global", "global_to_local"}),
    ("local_to_global", {"local_to_global", "global_to_global"}),
    ("global_to_local", {"global_to_global", "global_to_local"}),
    ("none", set()),
])
def test_ablation_switch_keeps_only_the_projections_it_needs(diffusion, expected):
    model = build_model("lgd3d_tiny", 4, diffusion=diffusion)
    present = {p for p in LGD_PARAMETER_NAMES if any(getattr(b, p) is not None for b in model.blocks())}
    assert present == expected


def test_zero_initialised_projection_makes_global_to_local_term_a_constant():
    """At start W_xg's last weight is 0, so the term is its bias: the same at every position and clip."""
    model = build_model("lgd3d_tiny", 4).eval()
    with torch.no_grad():
        _, _, taps = model.forward_features(torch.randn(3, 3, 8, 48, 48), return_taps=True)
    for tap, block in zip(taps, model.blocks()):
        bias = block.global_to_local[-1].bias
        expected = bias[None, :, None, None, None].expand_as(tap.global_to_local)
        torch.testing.assert_close(tap.global_to_local, expected)


def test_without_global_to_local_the_global_path_cannot_change_local_features():
    torch.manual_seed(0)
    model = build_model("lgd3d_tiny", 4, diffusion="local_to_global").eval()
    x = torch.randn(2, 3, 8, 48, 48)
    with torch.no_grad():
        before, _ = model.forward_features(x)
        for block in model.blocks():
            torch.nn.init.normal_(block.global_to_global[0].weight)
        after, _ = model.forward_features(x)
    torch.testing.assert_close(before, after)


def test_global_path_reads_the_local_map_only_when_local_to_global_is_on():
    torch.manual_seed(0)
    for diffusion, reads_local in (("both", True), ("global_to_local", False)):
        model = build_model("lgd3d_tiny", 4, diffusion=diffusion).eval()
        block = model.layer2[0]
        x, g = torch.randn(2, 16, 4, 16, 16), torch.randn(2, 16)
        with torch.no_grad():
            g1 = block(x, g)[1]
            g2 = block(x * 3 + 1, g)[1]
        assert (not torch.allclose(g1, g2)) == reads_local, diffusion


def test_lgd2d_runs_the_2d_network_on_every_frame_and_pools_globally_over_all_frames():
    model = build_model("lgd2d_tiny", 4, diffusion="none").eval()
    clip = torch.randn(1, 3, 5, 64, 64)
    with torch.no_grad():
        local, _ = model.forward_features(clip)
        single, _ = model.forward_features(clip[:, :, 2:3])
    assert local.shape[2] == 5
    torch.testing.assert_close(local[:, :, 2:3], single)   # frames do not see each other locally
    assert not any(isinstance(m, torch.nn.Conv3d) and m.kernel_size[0] > 1 for m in model.modules())


@pytest.mark.parametrize("shape,fragment", [
    ((3, 8, 32, 32), "4 dimensions"),
    ((1, 1, 8, 32, 32), "1 channels"),
    ((1, 3, 1, 32, 32), "T=1"),
    ((1, 3, 5, 32, 32), "T=5"),
])
def test_bad_input_is_rejected_naming_the_expected_shape(shape, fragment):
    model = build_model("lgd3d_tiny", 4)
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)") as error:
        model(torch.randn(*shape))
    assert fragment in str(error.value)
    assert "multiple of 2" in str(error.value)


def test_bad_settings_are_rejected_by_name():
    with pytest.raises(ValueError, match="diffusion"):
        build_model("lgd3d_tiny", 4, diffusion="sideways")
    with pytest.raises(ValueError, match="kernel"):
        build_model("lgd3d_tiny", 4, kernel="poly")
    with pytest.raises(ValueError, match="unknown model 'lgd9d'"):
        build_model("lgd9d", 4)


def test_every_diffusion_setting_reaches_every_block_and_the_global_vector_exists_only_with_a_path():
    x = torch.randn(1, 3, 8, 32, 32)
    for diffusion in DIFFUSIONS:
        model = build_model("lgd3d_tiny", 2, diffusion=diffusion).eval()
        assert model.diffusion == diffusion and {b.diffusion for b in model.blocks()} == {diffusion}
        with torch.no_grad():
            _, global_ = model.forward_features(x)
        assert (global_ is None) == (diffusion == "none")


def test_channels_last_3d_gives_the_same_logits():
    model = build_model("lgd3d_tiny", 4).eval()
    x = torch.randn(2, 3, 8, 48, 48)
    with torch.no_grad():
        expected = model(x)
        got = model.to(memory_format=torch.channels_last_3d)(x.to(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("diffusion", ["local_to_global", "global_to_local", "none"])
def test_taps_of_absent_paths_are_none_not_zeros(diffusion):
    """A block reports a path it does not have as None (no full-size zero tensors)."""
    model = build_model("lgd3d_tiny", 4, diffusion=diffusion).eval()
    with torch.no_grad():
        _, _, taps = model.forward_features(torch.randn(1, 3, 8, 32, 32), return_taps=True)
    for tap in taps:
        assert (tap.global_to_local is None) == (diffusion not in ("both", "global_to_local"))
        assert (tap.local_to_global is None) == (diffusion not in ("both", "local_to_global"))
        assert (tap.global_ is None) == (diffusion == "none")
        if diffusion == "none":
            torch.testing.assert_close(tap.local, torch.relu(tap.residual))


@pytest.mark.parametrize("make, stride", [(spatial_conv, 1), (spatial_conv, 2), (temporal_conv, 1),
                                          (temporal_conv, 2), (pointwise_conv, 1), (pointwise_conv, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_p3d_convs_compute_exactly_what_conv3d_computes(make, stride, channels_last):
    torch.manual_seed(0)
    conv = make(6, 5, stride)
    x = torch.randn(2, 6, 4, 9, 9, requires_grad=True)
    if channels_last:
        x = x.detach().contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    got = conv(x)
    expected = nn.Conv3d.forward(conv, x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)
    grad = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(got, x, grad)[0], torch.autograd.grad(expected, x, grad)[0],
                               rtol=1e-5, atol=1e-5)


def test_registry_entries_carry_their_metadata_and_a_name_registers_once():
    from lgd_tutorial.models import diffusion_pairs, model_info
    from lgd_tutorial.models.registry import register

    tiny = model_info("lgd3d_tiny")
    assert (tiny.frames, tiny.size, tiny.plain) == (8, 112, "p3d_tiny")
    assert (model_info("lgd3d_r50").frames, model_info("lgd3d_r50").size) == (16, 224)
    for lgd, plain in diffusion_pairs():
        a, b = build_model(lgd, 5), build_model(plain, 5)
        assert a.diffusion == "both" and b.diffusion == "none"
        assert [n for n, _ in b.named_parameters()] == [n for n, _ in a.named_parameters()
                                                        if not any(p in n for p in LGD_PARAMETER_NAMES)
                                                        and "global_head" not in n]
    with pytest.raises(ValueError, match="already registered"):
        register("lgd3d_tiny")(lambda num_classes, **kw: None)
    with pytest.raises(ValueError, match="unknown model 'lgd9d'"):
        model_info("lgd9d")


def test_parameter_groups_split_head_from_backbone_and_decay_from_no_decay():
    model = build_model("lgd3d_tiny", 4, kernel="gaussian")
    groups = model.parameter_groups()
    assert sum(len(ps) for ps in groups.values()) == len(list(model.parameters()))
    head = {id(p) for p in model.classifier.parameters()}
    for (is_head, decay), params in groups.items():
        for p in params:
            assert (id(p) in head) == is_head
            assert decay == (p.ndim > 1)
    no_decay_head = {id(p) for p in groups[(True, False)]}
    assert id(model.classifier.local_head.log_bandwidth) in no_decay_head     # scalars never decay


def test_the_pools_lean_backward_gives_autograds_gradient_exactly():
    from lgd_tutorial.models.lgd import pool

    x = torch.randn(2, 8, 4, 7, 7, requires_grad=True)
    weights = torch.randn(2, 8)
    (pool(x) * weights).sum().backward()
    lean, x.grad = x.grad, None
    (x.mean((2, 3, 4)) * weights).sum().backward()
    assert torch.equal(lean, x.grad) and torch.equal(pool(x), x.mean((2, 3, 4)))


def test_the_stems_inference_pool_gives_exactly_the_training_pools_maxima():
    from lgd_tutorial.models.p3d import Stem

    torch.manual_seed(0)
    stem = Stem(16).eval()
    x = torch.randn(3, 3, 8, 37, 30)
    with torch.no_grad():
        fast = stem(x)                                   # the channels_last_3d pool (no gradient needed)
    reference = stem.pool(stem.bn(stem.conv(x)).relu_())
    assert fast.is_contiguous() and torch.equal(fast, reference.detach())
    assert fast.shape == (3, 16, 2, 10, 8)


@pytest.mark.parametrize("name", ["lgd3d_tiny", "p3d_tiny", "se_p3d_tiny", "lgd2d_tiny"])
def test_reset_classifier_gives_a_fresh_head_for_a_new_label_set_and_keeps_the_backbone(name):
    model = build_model(name, 5).eval()
    backbone = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    old = model.classifier
    model.reset_classifier(3)
    assert model.num_classes == 3 and model.classifier is not old
    assert (model.classifier.global_head is None) == (old.global_head is None)
    assert model.classifier.kernel == old.kernel and model.classifier.dropout.p == old.dropout.p
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in backbone.items())
    info = model_info(name)
    clip = torch.randn(1, 3, info.frames, 32, 32)
    heads = model(clip, return_heads=True)
    assert heads["logits"].shape == (1, 3) and torch.equal(model(clip), heads["logits"])
    with pytest.raises(ValueError, match="num_classes"):
        model.reset_classifier(0)


def test_a_block_returns_one_shape_of_result_and_its_taps_come_from_their_own_method():
    model = build_model("lgd3d_tiny", 4).eval()
    name, block = next(model.named_lgd_blocks())
    x = model.stem(torch.randn(1, 3, 8, 32, 32))
    g = x.mean((2, 3, 4))
    with torch.no_grad():
        plain = block(x.clone(), g)
        with_taps = block.forward_with_taps(x.clone(), g, name)
    assert len(plain) == 2 and len(with_taps) == 3 and with_taps[2].name == name
    assert torch.equal(plain[0], with_taps[0]) and torch.equal(plain[1], with_taps[1])


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_carries_metadata_that_fits_the_network_it_builds(name):
    from lgd_tutorial.constants import ARCHITECTURES
    from lgd_tutorial.models.classifier import KernelizedClassifier

    info = model_info(name)
    model = build_model(name, 3)
    assert info.name == name == model.arch and name in ARCHITECTURES
    assert isinstance(getattr(model, info.classifier), KernelizedClassifier) and model.num_classes == 3
    with torch.no_grad():                                  # the clip it is built for goes through it
        assert model.eval()(torch.zeros(1, 3, info.frames, info.size, info.size)).shape == (1, 3)
    assert len(info.mean) == len(info.std) == model.in_channels == 3 and all(0 < v < 1 for v in info.std)
    if info.fixed_diffusion is not None:
        assert model.diffusion == info.fixed_diffusion
        with pytest.raises(ValueError):
            build_model(name, 3, diffusion="both" if info.fixed_diffusion == "none" else "none")
    if info.plain is not None:
        plain = model_info(info.plain)
        assert plain.fixed_diffusion == "none" and (plain.frames, plain.size) == (info.frames, info.size)
        assert model.diffusion == "both" and build_model(info.plain, 3).diffusion == "none"
    assert info.description


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_the_stem_pool_over_frames_has_the_same_maxima_and_gradients(layout):
    """run.deterministic on CUDA pools the stem frame by frame in 2D (a backward without atomic adds); it must
    be the 3D max-pool exactly, forward and backward."""
    from lgd_tutorial.models.p3d import Stem

    stem = Stem(8, 1)
    x = torch.randn(2, 8, 3, 17, 18).contiguous(memory_format=layout).requires_grad_()
    y = x.detach().clone().contiguous(memory_format=layout).requires_grad_()
    a, b = stem.pool(x), stem.pool_frames(y)
    assert torch.equal(a, b)
    grad = torch.randn_like(a)
    a.backward(grad)
    b.backward(grad)
    assert torch.equal(x.grad, y.grad)
