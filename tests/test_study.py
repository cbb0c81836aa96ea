"""The diffusion study command: variants, seeds, shipped outputs and their provenance."""

import json
import math

import pandas as pd
import pytest

from lgd_tutorial import cli
from lgd_tutorial.models import load_pretrained
from lgd_tutorial.experiments.study import StudySettings, render_split, steps_to


def test_study_writes_runs_curves_summary_figure_provenance_and_checkpoints(tmp_path, capsys):
    out, pretrained = tmp_path / "study", tmp_path / "pretrained"
    argv = ["study", "--out", str(out), "--pretrained-dir", str(pretrained), "--seeds", "3", "4",
            "--variants", "both", "none", "--epochs", "1", "--train-per-class", "8", "--val-per-class", "2"]
    assert cli.main(argv) == 0
    runs = pd.read_csv(out / "runs.csv", dtype={"commit": str})
    assert sorted(zip(runs["variant"], runs["seed"])) == [("both", 3), ("both", 4), ("none", 3), ("none", 4)]
    assert (runs.loc[runs["variant"] == "none", "lgd_parameters"] == 0).all()
    assert (runs.loc[runs["variant"] == "both", "lgd_parameters"] > 0).all()
    summary = pd.read_csv(out / "summary.csv", dtype={"commit": str})
    assert list(summary["seeds"]) == [2, 2]
    curves = pd.read_csv(out / "curves.csv", dtype={"commit": str})
    assert {"acc_local", "acc_global", "acc_combined", "epoch", "step"} <= set(curves.columns)
    meta = json.loads((out / "study.json").read_text())
    assert meta["command"] == "lgd " + " ".join(argv) and meta["commit"]
    assert (out / "study.png").stat().st_size > 10000
    for table in (runs, summary, curves):      # every CSV names what made it (a hash of digits stays a string)
        assert set(table["command"]) == {meta["command"]} and set(table["commit"]) == {meta["commit"]}
    (out / "study.png").unlink()
    assert cli.main(["study", "--redraw", str(out)]) == 0           # same tables again, figure redrawn
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv", dtype={"commit": str}), summary)
    assert (out / "study.png").exists()
    model, info = load_pretrained("lgd3d_tiny_beacon_both", pretrained)       # the first seed only
    assert info["seed"] == 3 and info["diffusion"] == "both" and info["command"] == meta["command"]
    none, none_info = load_pretrained("lgd3d_tiny_beacon_none", pretrained)
    assert none.classifier.global_head is not None and none_info["val_acc"] == runs.query(
        "variant == 'none' and seed == 3")["acc_local"].item()
    assert "variant" in capsys.readouterr().out


def test_render_split_is_deterministic_and_keeps_the_object_away_from_the_beacon():
    s = StudySettings(train_per_class=2, val_per_class=2)
    a, b = render_split(s, "val", workers=1), render_split(s, "val", workers=1)
    assert (a["frames"] == b["frames"]).all() and a["sides"] == b["sides"]
    margin = s.band + s.gap
    for track in a["tracks"]:
        for y, x in track:
            assert margin <= y <= s.size - margin - s.object_size and margin <= x <= s.size - margin - s.object_size


def test_to_clips_gives_the_normalised_clips_bit_for_bit_and_names_a_wrong_shape():
    import torch

    from lgd_tutorial.data.transforms import Normalize
    from lgd_tutorial.experiments.study import to_clips

    frames = torch.randint(0, 256, (3, 4, 10, 12, 3), dtype=torch.uint8)
    clips = to_clips(frames)
    assert clips.shape == (3, 3, 4, 10, 12) and clips.is_contiguous()
    assert torch.equal(clips, Normalize()(frames.permute(0, 4, 1, 2, 3).float() / 255))
    with pytest.raises(ValueError, match=r"\(N, T, H, W, 3\).*\(3, 4, 10, 12\)"):
        to_clips(frames[..., 0])


def test_settings_reject_an_impossible_layout_and_unknown_variants():
    with pytest.raises(ValueError, match="no room"):
        StudySettings(size=64, gap=24)
    with pytest.raises(ValueError, match="unknown"):
        StudySettings(variants=["both", "neither"])


def test_steps_to_target():
    curve = [{"step": 10, "acc_local": 0.5}, {"step": 20, "acc_local": 0.95}, {"step": 30, "acc_local": 0.99}]
    assert steps_to(curve, 0.9) == 20 and math.isnan(steps_to(curve, 0.999))


def test_readme_shows_the_shipped_study_table_and_figure():
    """The README's table is the one `lgd study --report figures/diffusion_study` prints from the shipped CSVs."""
    from pathlib import Path

    from lgd_tutorial.experiments.study import report

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    assert report(root / "figures" / "diffusion_study") in readme
    assert "figures/diffusion_study/study.png" in readme


def test_readme_statements_about_the_shipped_study_hold():
    """Every sentence of the README's 'What it shows' paragraph, checked against the shipped CSVs."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "figures" / "diffusion_study"
    runs = pd.read_csv(folder / "runs.csv")
    summary = pd.read_csv(folder / "summary.csv").set_index("variant")
    assert (summary["seeds"] == 5).all()                                           # "over five seeds each"
    assert (runs["acc_local"] > 0.5).all()                                         # no seed below the ceiling
    assert (runs.groupby("variant")["acc_local"].min() < 0.9).all()               # every variant has a stalled seed

    def overlap(a, b):
        return summary.loc[a, "acc_local_low"] <= summary.loc[b, "acc_local_high"] and \
            summary.loc[b, "acc_local_low"] <= summary.loc[a, "acc_local_high"]

    assert overlap("both", "none")
    assert summary["acc_local"].idxmax() == "global_to_local"
    assert runs.groupby("variant")["acc_local"].min().idxmax() == "global_to_local"
    assert all(overlap("global_to_local", other) for other in ("both", "none", "local_to_global"))
    assert (runs.loc[runs["variant"] == "global_to_local", "acc_global"] == 0.25).all()
    assert summary.loc["local_to_global", "acc_global"] > 0.5
