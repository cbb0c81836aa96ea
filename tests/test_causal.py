"""Causal measurements of diffusion, on the shipped teaching checkpoints and on constructed cases."""

import shutil

import numpy as np
import pytest
import torch

from lgd_tutorial.data import synthetic
from lgd_tutorial.models import PretrainedError, build_model, list_pretrained, load_pretrained
from lgd_tutorial.models.pretrained import PRETRAINED_DIR, read_manifest, sha256_of
from lgd_tutorial.experiments.study import StudySettings, render_split, to_clips
from lgd_tutorial.viz.causal import OPPOSITE
from lgd_tutorial.viz import (beacon_counterfactuals, beacon_region, cut_paths, effective_receptive_field, linear_probe,
                              receptive_field_reach, swap_beacon)

SHIPPED = ("lgd3d_tiny_beacon_both", "lgd3d_tiny_beacon_none", "lgd3d_tiny_beacon_local_to_global",
           "lgd3d_tiny_beacon_global_to_local")


@pytest.fixture(scope="module")
def shipped():
    lgd, info = load_pretrained("lgd3d_tiny_beacon_both")
    plain, _ = load_pretrained("lgd3d_tiny_beacon_none")
    settings = StudySettings(**{**info["recipe"], "val_per_class": 3})
    return lgd, plain, settings, render_split(settings, "val", workers=1)


def test_every_shipped_checkpoint_is_listed_small_and_described():
    assert set(SHIPPED) <= set(list_pretrained())
    for name in SHIPPED:
        entry = read_manifest()[name]
        path = PRETRAINED_DIR / entry["file"]
        assert path.stat().st_size < 5e6
        assert sha256_of(path) == entry["sha256"]
        for key in ("arch", "diffusion", "frames", "size", "classes", "val_acc", "sha256", "command", "commit",
                    "seed", "data_seed", "recipe"):
            assert key in entry, f"{name}: manifest entry lacks {key!r}"
        model, info = load_pretrained(name)
        assert not model.training and info["diffusion"] == model.diffusion


def test_moving_the_beacon_moves_no_plain_feature_out_of_reach_and_lgd_features_through_the_global_path(shipped):
    """Without diffusion, local features whose receptive field misses the beacon strips are exactly unchanged;
    LGD's features at the same positions change; with U(W_xg g) cut they are exactly unchanged again."""
    lgd, plain, settings, val = shipped
    args = (val["frames"].numpy(), val["sides"], settings.band + synthetic.CAMERA_JITTER, to_clips)
    rows, _ = beacon_counterfactuals({"LGD": lgd, "plain": plain}, *args)
    with cut_paths(lgd, global_to_local=True) as hooks:
        assert hooks == len(lgd.blocks())
        cut_rows, _ = beacon_counterfactuals({"cut": lgd}, *args)
    far = [r for r in rows if r["share out of reach"] > 0]
    # the README: the first two blocks' features at the object cannot see the beacon, the deeper ones can
    assert {r["block"] for r in far} == {"layer1.0", "layer2.0"}
    for r in far:
        if r["model"] == "plain":
            assert r["max change out of reach"] == 0.0, r
        else:
            assert r["mean change out of reach"] > 1e-3, r
    assert all(r["max change out of reach"] == 0.0 for r in cut_rows if r["share out of reach"] > 0)


def test_swap_beacon_moves_the_whole_beacon_and_changes_nothing_outside_the_strips():
    strip = 8 + synthetic.CAMERA_JITTER
    for seed in range(6):
        video, info = synthetic.render(0, np.random.default_rng(seed), 96, 4, with_info=True, band=8, object_size=8,
                                       gap=24)
        moved, region = swap_beacon(video, info["side"], strip)
        assert region.sum() == 2 * strip * 96
        assert np.array_equal(moved[:, ~region], video[:, ~region])
        beacon_like = (np.abs(moved.astype(int) - synthetic.PALETTE[info["beacon_colour"]]) < 40).all(-1)
        left_behind = beacon_like[:, beacon_region(info["side"], strip, 96)].mean()
        arrived = beacon_like[:, beacon_region(OPPOSITE[info["side"]], 8, 96)].mean()
        assert left_behind < 0.01 and arrived > 0.9, (info["side"], left_behind, arrived)
        again, _ = swap_beacon(moved, OPPOSITE[info["side"]], strip)
        assert np.array_equal(again, video)


@pytest.mark.parametrize("arch", ["p3d_tiny", "lgd2d_tiny"])
def test_no_gradient_reaches_a_plain_feature_from_outside_its_theoretical_receptive_field(arch):
    """On a random plain network (negative weights too), a position out of a region's reach has zero gradient
    with respect to every pixel of the region, and a position in reach has some."""
    torch.manual_seed(0)
    model = build_model(arch, 3, diffusion="none").eval()
    region = np.zeros((64, 64), bool)
    region[:, :6] = True
    reach = receptive_field_reach(model, region, 4)
    clip = torch.randn(1, 3, 4, 64, 64)
    for block in (0, 1):
        reached = reach[block]
        for position, expect in ((reached.nonzero()[0], True), ((~reached).nonzero()[-1], False)):
            field = effective_receptive_field(model, clip, block, tuple(int(v) for v in position))
            assert bool((field[torch.from_numpy(region)] > 0).any()) == expect, (block, position, expect)


def test_a_linear_probe_reads_a_linear_signal_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (400,), generator=generator)
    noise = torch.randn(400, 20, generator=generator)
    signal = noise.clone()
    signal[:, :4] += 3 * torch.nn.functional.one_hot(y, 4)
    assert linear_probe(signal[:200], y[:200], signal[200:], y[200:]) > 0.9
    assert linear_probe(noise[:200], y[:200], noise[200:], y[200:]) < 0.45


def test_cut_paths_zeroes_what_it_cuts_and_leaves_no_hook():
    torch.manual_seed(0)
    model = build_model("lgd3d_tiny", 3).eval()
    for block in model.blocks():
        torch.nn.init.normal_(block.global_to_local[-1].weight)
    clip = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        intact = model(clip)
        with cut_paths(model, global_to_local=True, local_to_global=True) as hooks:
            both = model(clip)
        assert hooks == 2 * len(model.blocks())
        assert not torch.allclose(intact, both)
        assert torch.equal(model(clip), intact)
    assert all(not b.tap_global_to_local._forward_hooks and not b.local_to_global._forward_hooks
               for b in model.blocks())


def _copy_shipped(tmp_path):
    folder = tmp_path / "pretrained"
    shutil.copytree(PRETRAINED_DIR, folder)
    return folder


def test_an_altered_checkpoint_is_refused_by_name(tmp_path):
    folder = _copy_shipped(tmp_path)
    path = folder / read_manifest(folder)["lgd3d_tiny_beacon_both"]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PretrainedError, match=str(path).replace("+", r"\+") + ".*sha256"):
        load_pretrained("lgd3d_tiny_beacon_both", folder)


def test_a_truncated_missing_or_unknown_checkpoint_is_refused_by_name(tmp_path):
    folder = _copy_shipped(tmp_path)
    path = folder / read_manifest(folder)["lgd3d_tiny_beacon_none"]["file"]
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(PretrainedError, match="lgd3d_tiny_beacon_none.pt"):
        load_pretrained("lgd3d_tiny_beacon_none", folder)
    path.unlink()
    with pytest.raises(PretrainedError, match="is missing"):
        load_pretrained("lgd3d_tiny_beacon_none", folder)
    with pytest.raises(PretrainedError, match="unknown teaching checkpoint 'nope'"):
        load_pretrained("nope", folder)


def test_the_trained_lgd_network_uses_clip_specific_global_context_in_its_last_block():
    """Fixing U(W_xg g) at its mean over the clips (keeping its average, removing what it says about the clip)
    costs the shipped LGD model's local head much accuracy in layer4.0 and little in the blocks before it."""
    from lgd_tutorial.experiments.study import head_accuracy
    from lgd_tutorial.viz import fix_global_to_local, mean_global_to_local

    lgd, info = load_pretrained("lgd3d_tiny_beacon_both")
    val = render_split(StudySettings(**{**info["recipe"], "val_per_class": 16}), "val", workers=1)
    terms = mean_global_to_local(lgd, to_clips(val["frames"]))
    intact = head_accuracy(lgd, val["frames"], val["labels"])["local"]
    drops = []
    for b in range(len(terms)):
        with fix_global_to_local(lgd, [t if i == b else None for i, t in enumerate(terms)]) as hooks:
            assert hooks == 1
            drops.append(intact - head_accuracy(lgd, val["frames"], val["labels"])["local"])
    assert intact > 0.95 and drops[-1] > 0.3 and max(drops[:-1]) < 0.05, drops
