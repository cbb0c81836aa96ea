"""ClipDataset, samplers, transforms and the synthetic dataset."""

import random

import numpy as np
import pandas as pd
import pytest
import torch

from lgd_tutorial.data import synthetic
from lgd_tutorial.data.clips import (ClipDataset, FailureReport, random_clip_indices, tsn_indices,
                                     uniform_clip_indices)
from lgd_tutorial.data.kinetics import load_manifest
from lgd_tutorial.data import transforms as T
from lgd_tutorial.data.transforms import (CenterCrop, HorizontalFlip, Normalize, RandomResizedCrop,
                                          ShortSideScale, ThreeCrop, to_tensor, train_transform)
from lgd_tutorial.data.video import VideoDecodeError


@pytest.fixture(scope="module")
def synth(synthetic_set):
    return synthetic_set(seed=1, videos_per_class=3)


def test_samplers():
    rng = random.Random(0)
    clip = random_clip_indices(100, 8, 4, rng)
    assert len(clip) == 8 and all(b - a == 4 for a, b in zip(clip, clip[1:])) and clip[-1] < 100
    assert random_clip_indices(5, 4, 3, rng) == [0, 3, 4, 4]                # short video: last frame repeats
    clips = uniform_clip_indices(100, 8, 2, 3)
    assert len(clips) == 3 and clips[0][0] < clips[1][0] < clips[2][0] and clips[2][-1] < 100
    assert tsn_indices(80, 8, None) == [4, 14, 24, 34, 44, 54, 64, 74]
    seg = tsn_indices(80, 8, random.Random(1))
    assert all(10 * k <= i < 10 * (k + 1) for k, i in enumerate(seg))


def test_transforms_shapes_and_values():
    clip = to_tensor(np.full((4, 60, 80, 3), 255, np.uint8))
    assert clip.shape == (3, 4, 60, 80) and clip.max() == 1
    assert ShortSideScale(30)(clip).shape == (3, 4, 30, 40)


def test_to_tensor_is_contiguous_and_normalize_is_the_textbook_formula():
    frames = np.random.default_rng(0).integers(0, 256, (4, 20, 30, 3), dtype=np.uint8)
    clip = to_tensor(frames)
    assert clip.is_contiguous()                                        # the resize after it is faster so
    assert torch.equal(clip, torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255)
    norm = Normalize()
    assert torch.equal(norm(clip), (clip - norm.mean) / norm.std)      # in place inside, the same numbers
    assert torch.equal(clip, torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255)   # input untouched
    assert ShortSideScale((30, 40))(clip, random.Random(0)).shape[-2] in range(30, 41)
    assert CenterCrop(32)(clip).shape == (3, 4, 32, 32)
    assert ThreeCrop(60)(clip).shape == (3, 3, 4, 60, 60)
    assert RandomResizedCrop(24)(clip, random.Random(0)).shape == (3, 4, 24, 24)
    ramp = torch.arange(5.0).expand(3, 2, 5, 5)
    assert torch.equal(HorizontalFlip(p=1.0)(ramp)[..., 0], ramp[..., -1])
    norm = Normalize()(torch.ones(3, 1, 2, 2))
    assert torch.allclose(norm[:, 0, 0, 0], (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]))
    with pytest.raises(ValueError, match="expected a clip"):
        CenterCrop(8)(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="crops"):
        T.test_transform(crops=2)


def test_three_crops_cover_the_long_side():
    clip = torch.arange(90.0).expand(3, 1, 30, 90)
    crops = ThreeCrop(30)(clip)
    assert crops[0, 0, 0, 0, 0] == 0 and crops[2, 0, 0, 0, -1] == 89


def test_synthetic_dataset_layout_and_determinism(synth, tmp_path):
    train = load_manifest(synth / "manifest_train.csv")
    assert len(train) == 12 and (train["status"] == "present").all()
    assert sorted(set(train["label"])) == synthetic.CLASSES
    assert (synth / "annotations" / "train.csv").read_text().startswith("label,youtube_id,time_start,time_end,split")
    again = synthetic.generate(tmp_path / "again", seed=1, videos_per_class=3, val_per_class=1, size=64,
                               frames=16, workers=2, progress=False)
    for rel in train["path"]:
        assert (synth / rel).read_bytes() == (again / rel).read_bytes()
    other = synthetic.render(0, np.random.default_rng(2), 64, 16)
    assert not np.array_equal(other, synthetic.render(0, np.random.default_rng(3), 64, 16))


def beacon_of(frame, band):
    """(side, colour index) of the saturated bar along one edge of a rendered frame."""
    inner = slice(3, band - 3)
    regions = {"left": frame[:, inner], "right": frame[:, ::-1][:, inner], "top": frame[inner],
               "bottom": frame[::-1][inner]}
    mean = {side: r.reshape(-1, 3).mean(0) for side, r in regions.items()}
    side = max(mean, key=lambda k: np.ptp(mean[k]))
    return side, int(np.argmin(np.abs(synthetic.PALETTE - mean[side]).sum(1)))


def test_synthetic_labels_follow_what_is_drawn():
    """Per class: every beacon side and colour occurs (the beacon alone says nothing); the beacon
    seen in the pixels is the one drawn; the object approaches, leaves, passes or waits as the label says."""
    size = 64
    for label, name in enumerate(synthetic.CLASSES):
        seen = set()
        for k in range(64):
            video, info = synthetic.render(label, np.random.default_rng([label, k]), size, 12, with_info=True)
            side, colour = beacon_of(video[0].astype(float), info["band"])
            assert (side, colour) == (info["side"], info["beacon_colour"])
            seen.add((side, colour))
            (y0, x0), (y1, x1) = info["track"][0], info["track"][-1]
            dist = {"left": (x0, x1), "right": (-x0, -x1), "top": (y0, y1), "bottom": (-y0, -y1)}[side]
            along = (y0, y1) if side in ("left", "right") else (x0, x1)
            moved_toward, moved_away = dist[1] < dist[0] - 5, dist[1] > dist[0] + 5
            moved_along = abs(along[1] - along[0]) > 5
            expected = {"approach beacon": (True, False, False), "leave beacon": (False, True, False),
                        "pass beacon": (False, False, True), "wait": (False, False, False)}[name]
            assert (moved_toward, moved_away, moved_along) == expected, (name, k, info["track"])
            # The object is really there in the last frame (camera jitter is at most 1 px).
            o = info["object_size"]
            patch = video[-1, y1 + 2: y1 + o - 2, x1 + 2: x1 + o - 2].reshape(-1, 3).astype(float).mean(0)
            target = synthetic.PALETTE[info["object_colour"]]
            assert np.abs(patch - target).max() < 40, (name, k, patch, target)
        assert len(seen) >= 14, (name, sorted(seen))


def test_clip_dataset_modes(synth):
    train = ClipDataset(synth / "manifest_train.csv", mode="train", num_frames=4, stride=2, crop_size=48)
    clip, label, index, failed = train[3]
    assert clip.shape == (3, 4, 48, 48) and 0 <= label < 4 and index == 3 and (failed == -1).all()
    assert torch.equal(train[3][0], clip)                                    # same seed, epoch, index
    train.set_epoch(1)
    assert not torch.equal(train[3][0], clip)
    test = ClipDataset(synth / "manifest_val.csv", mode="test", num_frames=4, stride=2, num_clips=2,
                       transform=T.test_transform(48, 56, crops=3))
    assert test[0][0].shape == (6, 3, 4, 48, 48)
    tsn = ClipDataset(synth / "manifest_val.csv", mode="tsn", num_frames=5, crop_size=48)
    assert tsn[0][0].shape == (3, 5, 48, 48)


@pytest.fixture()
def with_broken(synth, tmp_path):
    """A copy of the training manifest in which two videos are corrupt and one is missing."""
    import shutil
    root = tmp_path / "data"
    shutil.copytree(synth, root)
    manifest = load_manifest(root / "manifest_train.csv")
    (root / manifest["path"][1]).write_bytes(b"garbage" * 100)
    data = (root / manifest["path"][4]).read_bytes()
    (root / manifest["path"][4]).write_bytes(data[: len(data) // 4])
    (root / manifest["path"][7]).unlink()
    return root, manifest


def test_bad_videos_are_replaced_counted_and_reported(with_broken):
    root, manifest = with_broken
    ds = ClipDataset(root / "manifest_train.csv", mode="train", num_frames=4, stride=2, crop_size=48)
    report = FailureReport(ds)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0)
    seen = 0
    for clips, labels, index, failed in loader:
        assert clips.shape[1:] == (3, 4, 48, 48)
        report.update(failed)
        seen += len(index)
    assert seen == 12                                                          # nothing lost
    bad = {str(root / manifest["path"][i]) for i in (1, 7)}                   # garbage and missing
    assert bad <= set(report.paths())
    assert report.count >= 2 and "replaced" in report.summary()
    # The replacement is deterministic under the seed.
    ds2 = ClipDataset(root / "manifest_train.csv", mode="train", num_frames=4, stride=2, crop_size=48)
    assert torch.equal(ds[1][0], ds2[1][0]) and ds[1][1] == ds2[1][1]


def test_strict_mode_raises_with_the_path(with_broken):
    root, manifest = with_broken
    ds = ClipDataset(root / "manifest_train.csv", mode="train", num_frames=4, crop_size=48, strict=True)
    with pytest.raises(VideoDecodeError) as e:
        ds[1]
    assert manifest["path"][1] in str(e.value)


def test_missing_rows_are_skipped_and_empty_manifest_explained(synth):
    manifest = load_manifest(synth / "manifest_train.csv")
    manifest.loc[0, "status"] = "missing"
    ds = ClipDataset(manifest, synth, mode="train", num_frames=4, crop_size=48)
    assert len(ds) == 11 and ds.skipped == 1
    manifest["status"] = "unreadable"
    with pytest.raises(ValueError, match="no present videos"):
        ClipDataset(manifest, synth)
    with pytest.raises(ValueError, match="mode"):
        ClipDataset(synth / "manifest_train.csv", mode="eval")


def test_loader_with_workers_matches_single_process(synth):
    ds = ClipDataset(synth / "manifest_train.csv", mode="train", num_frames=4, stride=2, crop_size=48,
                     transform=train_transform(48, scale=(52, 60)))
    one = torch.cat([b[0] for b in torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0)])
    two = torch.cat([b[0] for b in torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)])
    assert torch.equal(one, two)
    assert isinstance(pd.read_csv(synth / "manifest_train.csv"), pd.DataFrame)


def test_the_decoded_cache_gives_the_decoders_clips_and_decodes_each_video_once(synth, tmp_path, monkeypatch):
    from lgd_tutorial.data import cache as cache_module

    plain = ClipDataset(synth / "manifest_train.csv", mode="train", num_frames=4, stride=2, crop_size=48)
    cached = ClipDataset(synth / "manifest_train.csv", mode="train", num_frames=4, stride=2, crop_size=48,
                         cache=tmp_path / "decoded")
    for i in range(len(plain)):
        assert torch.equal(plain[i][0], cached[i][0])                  # the same clip, decoded or from the cache
    assert len(list((tmp_path / "decoded").glob("*.npy"))) == len(plain)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache decoded a video it holds")
    monkeypatch.setattr(cache_module, "open_video", no_decoding)
    again = ClipDataset(synth / "manifest_val.csv", mode="test", num_frames=4, stride=2, num_clips=2, crop_size=48,
                        cache=tmp_path / "decoded")
    with pytest.raises(AssertionError, match="decoded a video"):      # validation videos are not cached yet
        again[0]
    assert torch.equal(cached[0][0], plain[0][0])                      # training ones are read back, not decoded
    monkeypatch.setattr(cache_module.np, "load", lambda *a, **k: pytest.fail("an entry was opened twice"))
    monkeypatch.setattr(cache_module.Path, "resolve", lambda *a, **k: pytest.fail("a path was resolved twice"))
    assert torch.equal(cached[0][0], plain[0][0])                      # its map stayed open from the last read


def test_a_changed_video_is_decoded_again_and_a_bad_one_is_never_cached(with_broken, tmp_path):
    import os

    from lgd_tutorial.data.cache import DecodedCache

    root, manifest = with_broken
    cache = DecodedCache(tmp_path / "decoded")
    good, broken = root / manifest["path"][0], root / manifest["path"][1]
    first = cache.entry(good)
    cache.open(good)
    os.utime(good, ns=(0, 0))                                          # the file changed: a new key
    assert cache.entry(good) != first
    assert len(cache.open(good)) == 16 and cache.entry(good).exists()
    with pytest.raises(VideoDecodeError, match=str(broken.name)):
        cache.open(broken)
    with pytest.raises(VideoDecodeError, match="missing|No such file"):
        cache.open(root / manifest["path"][7])
    assert sorted(p.name for p in (tmp_path / "decoded").iterdir()) == sorted([first.name, cache.entry(good).name])


def test_filling_the_cache_in_parallel_decodes_what_it_lacks_and_skips_bad_videos(with_broken, tmp_path):
    from lgd_tutorial.data.cache import DecodedCache
    from lgd_tutorial.data.video import open_video

    root, manifest = with_broken
    paths = [root / p for p in manifest["path"]]
    cache = DecodedCache(tmp_path / "decoded")
    cache.open(paths[0])                                               # one entry already there
    decoded = cache.fill(paths, workers=2)
    held = [p for p in paths if cache.holds(p)]
    assert decoded == len(held) - 1 and paths[0] in held
    assert paths[1] not in held and paths[7] not in held              # the garbage file and the missing one
    assert len(list((tmp_path / "decoded").glob("*.npy"))) == len(held)
    assert cache.fill(paths, workers=2) == 0                           # nothing left to decode
    with open_video(paths[2]) as video:                                # an entry holds what the decoder gives
        assert np.array_equal(np.load(cache.entry(paths[2])), video.get_frames(range(len(video))))
    with pytest.raises(VideoDecodeError):                              # still reported when read
        cache.open(paths[1])
