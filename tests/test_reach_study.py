"""The signpost task and the reach study: the far end is out of every block's reach, the cues do not leak,
the plain network's ceiling is what a sum can do, and the shipped results and checkpoints are what they say."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lgd_tutorial import cli
from lgd_tutorial.data import signpost
from lgd_tutorial.models import build_model, list_pretrained, load_pretrained
from lgd_tutorial.models.pretrained import PRETRAINED_DIR, read_manifest
from lgd_tutorial.experiments.reach_study import (SELECTION_RULE, ReachSettings, additive_ceiling,
                                      connecting_blocks, findings, reach_distance, render_split, report,
                                      select_seed)
from lgd_tutorial.experiments.study import to_clips
from lgd_tutorial.viz.causal import counterfactual_change, lookup_baseline, receptive_field_reach

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "figures" / "reach_study"
SETTINGS = ReachSettings()


def test_no_block_of_the_plain_network_sees_both_cues_at_the_far_end_and_the_last_block_does_at_the_near_end():
    assert connecting_blocks(SETTINGS.arch, SETTINGS.layout(SETTINGS.far), SETTINGS.frames) == []
    near = connecting_blocks(SETTINGS.arch, SETTINGS.layout(SETTINGS.distances[0]), SETTINGS.frames)
    assert near[-1] == "layer4.0"
    reach = reach_distance(SETTINGS)
    assert SETTINGS.distances[0] < reach <= SETTINGS.far                 # the levels span the plain network's reach
    assert connecting_blocks(SETTINGS.arch, SETTINGS.layout(reach - 1), SETTINGS.frames) == ["layer4.0"]


def test_the_far_strip_costs_about_as_many_pixels_as_the_96_pixel_study():
    layout = SETTINGS.layout(SETTINGS.far)
    assert 0.7 < layout["height"] * layout["width"] / 96 ** 2 < 1.2


def test_the_label_needs_both_cues_and_nothing_else_leaks_it():
    s = ReachSettings(train_per_class=200, val_per_class=200)
    train, val = render_split(s, s.far, "train"), render_split(s, s.far, "val")
    y_train, y_val = train["labels"].tolist(), val["labels"].tolist()
    cells = pd.Series(list(zip(y_val, val["arrows"], val["motions"]))).value_counts()
    assert len(cells) == 4 and cells.nunique() == 1                     # every (label, arrow) cell: as many clips
    for cue in ("arrows", "motions"):                                     # one cue alone: exactly chance
        assert lookup_baseline(train[cue], y_train, val[cue], y_val) == 0.5
    both = [f"{a}-{m}" for a, m in zip(train["arrows"], train["motions"])]
    both_val = [f"{a}-{m}" for a, m in zip(val["arrows"], val["motions"])]
    assert lookup_baseline(both, y_train, both_val, y_val) == 1.0        # both cues: the label exactly
    start = np.array([t[0][1] if m == "right" else t[-1][1] for t, m in zip(train["tracks"], train["motions"])])
    arrows = np.array(train["arrows"])
    assert abs(start[arrows == "left"].mean() - start[arrows == "right"].mean()) < 2.0    # where says nothing
    heights = np.array([t[0][0] for t in train["tracks"]])
    assert abs(heights[arrows == "left"].mean() - heights[arrows == "right"].mean()) < 1.5


def test_the_object_keeps_its_distance_from_the_sign_in_every_frame():
    s = ReachSettings(train_per_class=20, val_per_class=20)
    for d in s.distances:
        layout = s.layout(d)
        sign, thing = signpost.sign_region(layout), signpost.object_region(layout)
        assert np.flatnonzero(thing.any(0)).min() - np.flatnonzero(sign.any(0)).max() - 1 == d - 1
        for track in render_split(s, d, "val")["tracks"]:
            for y, x in track:
                assert layout["start"] <= x <= layout["start"] + layout["room"]      # the jitter moves both alike
                assert x + layout["object_size"] + 1 <= layout["width"] and 0 <= y <= 32 - 8


def test_additive_ceiling_is_three_quarters_for_an_exclusive_or_and_exact_for_one_cue():
    arrows = ["left", "left", "right", "right"] * 5
    motions = ["left", "right", "left", "right"] * 5
    xor = [0 if a == m else 1 for a, m in zip(arrows, motions)]
    assert additive_ceiling(arrows, motions, xor) == 0.75
    assert additive_ceiling(arrows, motions, [int(m == "left") for m in motions]) == 1.0
    assert additive_ceiling(arrows, motions, [int(a == m == "left") for a, m in zip(arrows, motions)]) == 1.0
    lopsided = slice(2, None)                       # drop one (left, left) clip: the rule gives up the rarest cell
    a, m, y = arrows[lopsided] + arrows[:1], motions[lopsided] + motions[:1], xor[lopsided] + xor[:1]
    counts = pd.Series(list(zip(a, m))).value_counts()
    assert additive_ceiling(a, m, y) == pytest.approx(1 - counts.min() / len(a))


def test_mirroring_the_sign_flips_the_arrow_and_changes_nothing_else():
    layout = SETTINGS.layout(64)
    for label in (0, 1):
        frames, info = signpost.render(label, np.random.default_rng(label), layout, 8, with_info=True)
        flipped, region = signpost.flip_sign(frames, layout)
        assert (flipped[:, ~region] == frames[:, ~region]).all()
        assert (signpost.flip_sign(flipped, layout)[0] == frames).all()
        other = "left" if info["arrow"] == "right" else "right"
        expected = signpost._arrow_mask(other, layout["height"], layout["sign_width"])
        colour = signpost.PALETTE[info["sign_colour"]]
        painted = (np.abs(flipped[3, :, :layout["sign_width"]].astype(float) - colour) < 30).all(-1)
        assert (painted == expected).mean() > 0.85                         # up to the one-pixel camera jitter
        assert (painted == ~expected).mean() < 0.5
    with pytest.raises(ValueError, match="frames"):
        signpost.flip_sign(frames[:, :, :10], layout)


def test_geometry_and_render_name_bad_values():
    with pytest.raises(ValueError, match="distance"):
        signpost.geometry(-1)
    with pytest.raises(ValueError, match="label"):
        signpost.render(2, np.random.default_rng(0), signpost.geometry(8))
    with pytest.raises(ValueError, match="distances"):
        ReachSettings(distances=[64, 16])


def test_select_seed_takes_the_lower_median_and_ties_to_the_lower_seed():
    runs = pd.DataFrame({"distance": 8, "variant": "both", "seed": [0, 1, 2, 3], "acc_local": [0.9, 0.5, 0.5, 1.0]})
    assert select_seed(runs, 8, "both") == (2, 1, 4)          # sorted: (0.5, 1) (0.5, 2) (0.9, 0) (1.0, 3)


@pytest.mark.slow
def test_quick_study_runs_the_whole_path_resumes_and_ships_by_the_rule(tmp_path, capsys):
    out, shipped = tmp_path / "study", tmp_path / "pretrained"
    argv = ["reach-study", "--quick", "--out", str(out), "--pretrained-dir", str(shipped), "--workers", "1"]
    assert cli.main(argv) == 0
    for name in ("levels", "runs", "curves", "causal", "summary", "paired"):
        table = pd.read_csv(out / f"{name}.csv", dtype={"commit": str})
        assert len(table) and set(table["command"]) == {"lgd " + " ".join(argv)}
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 * 7 + 1 * 5                   # far: 2 seeds x 7 variants; near: 1 seed x 5 (no single paths)
    causal = pd.read_csv(out / "causal.csv")
    plain = causal[(causal["variant"] == "none") & (causal["measure"] == "cf_max_out") & (causal["distance"] == 208)]
    assert len(plain) == 2 * 4 and (plain["value"] == 0).all()           # exact, even untrained, in every block
    assert set(causal.loc[causal["measure"] == "acc_fixed_mean", "variant"]) == {"both", "global_to_local", "se",
                                                                                 "nonlocal", "gc"}
    assert (out / "reach_study.png").stat().st_size > 10000 and (out / "competitors.png").stat().st_size > 10000
    for end in ("near", "far"):
        for variant in ("both", "none"):
            model, info = load_pretrained(f"lgd3d_tiny_signpost_{end}_{variant}", shipped)
            seed, index, count = select_seed(runs, info["distance"], variant)
            assert info["seed"] == seed and info["selection_rule"] == SELECTION_RULE
    capsys.readouterr()
    assert cli.main(argv + ["--remeasure"]) == 0                          # everything found: nothing retrained
    printed = capsys.readouterr().out
    assert "19 runs found" in printed and "measured 19 runs again" in printed
    remeasured = pd.read_csv(out / "causal.csv")
    assert {"probe_global_arrow", "probe_global_label"} <= set(remeasured["measure"])
    assert cli.main(["reach-study", "--report", str(out)]) == 0
    assert "| distance (px) | variant |" in capsys.readouterr().out
    summary = pd.read_csv(out / "summary.csv")
    (out / "reach_study.png").unlink()
    assert cli.main(["reach-study", "--redraw", str(out)]) == 0             # from the CSVs alone: same tables
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), summary)
    assert (out / "reach_study.png").exists() and "| distance (px) |" in capsys.readouterr().out
    assert cli.main(argv + ["--epochs", "2"]) == 2                        # another recipe: refused, nothing mixed
    assert "epochs differ" in capsys.readouterr().err
    assert cli.main(argv + ["--models", str(tmp_path / "elsewhere")]) == 2  # rows without their models: refused
    assert "is missing" in capsys.readouterr().err
    assert len(pd.read_csv(out / "runs.csv")) == 19


@pytest.mark.slow
def test_a_folder_made_without_the_competitors_grows_by_them_and_keeps_its_runs(tmp_path):
    from lgd_tutorial.experiments.reach_study import QUICK, ReachSettings, run_study

    logged = []
    run_study(ReachSettings(**QUICK, competitors=[]), tmp_path, workers=1, log=logged.append)
    before = pd.read_csv(tmp_path / "runs.csv")
    assert set(before["variant"]) == {"both", "none", "global_to_local", "local_to_global"} and len(before) == 10
    settings = json.loads((tmp_path / "elapsed.json").read_text())["settings"]
    settings.pop("competitors")                                         # as a folder from before they existed
    (tmp_path / "elapsed.json").write_text(json.dumps({**json.loads((tmp_path / "elapsed.json").read_text()),
                                                       "settings": settings}))
    logged.clear()
    run_study(ReachSettings(**QUICK), tmp_path, workers=1, log=logged.append)
    assert "10 runs found in" in " ".join(logged) and "9 to do" in " ".join(logged)
    after = pd.read_csv(tmp_path / "runs.csv")
    kept = after[after["variant"].isin(["both", "none", "global_to_local", "local_to_global"])]
    pd.testing.assert_frame_equal(kept.drop(columns=["command", "commit"]).reset_index(drop=True),
                                  before.drop(columns=["command", "commit"]).reset_index(drop=True), check_like=True)


# --------------------------------------------------------------------------- the shipped results

def test_shipped_study_has_the_promised_levels_seeds_and_provenance():
    levels, runs = pd.read_csv(SHIPPED / "levels.csv"), pd.read_csv(SHIPPED / "runs.csv")
    meta = json.loads((SHIPPED / "reach_study.json").read_text())
    assert len(levels) >= 3 and levels["connecting_blocks"].iloc[-1] == "none"
    assert levels["connecting_blocks"].iloc[0].split()[-1] == "layer4.0"
    far = runs[runs["distance"] == levels["distance"].max()]
    assert far.groupby("variant")["seed"].nunique().min() >= 8
    assert set(far["variant"]) == {"both", "none", "global_to_local", "local_to_global", "se", "nonlocal", "gc"}
    near = runs[runs["distance"] == levels["distance"].min()]
    assert set(near["variant"]) == {"both", "none", "se", "nonlocal", "gc"}      # the competitors at both ends
    assert runs.groupby(["distance", "variant"])["seed"].nunique().min() >= 5
    seeds = far.groupby("variant")["seed"].apply(frozenset)
    assert seeds.nunique() == 1                                           # the same seeds for every variant
    assert meta["command"].startswith("lgd reach-study") and meta["trained_by"]
    measures = set(pd.read_csv(SHIPPED / "causal.csv")["measure"])
    assert {"cf_max_out", "cf_mean_out", "cf_mean_in", "probe_arrow", "probe_object_only", "probe_global_arrow",
            "probe_global_label", "acc_intact", "acc_fixed_mean", "acc_zeroed"} <= measures   # what notebook 7 reads
    plain = pd.read_csv(SHIPPED / "causal.csv").query("variant == 'none' and measure == 'cf_max_out'")
    far_plain = plain[plain["distance"] == levels["distance"].max()]
    assert len(far_plain) == 8 * 4 and (far_plain["value"] == 0).all()      # every seed, every block
    assert (plain["value"].dropna() == 0).all()        # NaN: a block whose every position the sign reaches


def test_readme_shows_the_shipped_reach_study_tables_findings_and_figure():
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert " ".join(report(SHIPPED).split()) in readme
    assert " ".join(findings(SHIPPED).split()) in readme
    assert "figures/reach_study/reach_study.png" in readme


def test_shipped_checkpoints_are_the_rule_s_seeds_and_fit_the_size_budget():
    runs = pd.read_csv(SHIPPED / "runs.csv")
    manifest = read_manifest()
    for end in ("near", "far"):
        for variant in ("both", "none"):
            info = manifest[f"lgd3d_tiny_signpost_{end}_{variant}"]
            assert info["seed"] == select_seed(runs, info["distance"], variant)[0]
            assert info["val_acc"] == pytest.approx(runs.query(
                f"distance == {info['distance']} and variant == '{variant}' and seed == {info['seed']}"
            )["acc_local"].item())
    assert sum(p.stat().st_size for p in PRETRAINED_DIR.iterdir()) < 20 * 2 ** 20


@pytest.fixture(scope="module")
def far_pair():
    lgd, info = load_pretrained("lgd3d_tiny_signpost_far_both")
    plain, _ = load_pretrained("lgd3d_tiny_signpost_far_none")
    s = ReachSettings(**{**info["recipe"], "val_per_class": 8})
    return lgd, plain, s, render_split(s, s.far, "val")


def test_on_the_shipped_far_pair_mirroring_the_arrow_moves_no_plain_feature_out_of_reach_and_moves_lgd(far_pair):
    lgd, plain, s, val = far_pair
    layout = s.layout(s.far)
    flipped = [signpost.flip_sign(f, layout) for f in val["frames"].numpy()]
    reach = receptive_field_reach(plain, flipped[0][1], s.frames)
    clips, clips_cf = to_clips(val["frames"]), to_clips(torch.from_numpy(np.stack([f for f, _ in flipped])))
    plain_change = counterfactual_change(plain, clips, clips_cf).change
    lgd_change = counterfactual_change(lgd, clips, clips_cf).change
    for reached, a, b in zip(reach, plain_change, lgd_change):
        assert (~reached).any()
        assert float(a[:, ~reached].max()) == 0.0
        assert float(b[:, ~reached].mean()) > 0.0


def test_the_shipped_models_are_listed_and_built_as_recorded():
    names = list_pretrained()
    for name in ("lgd3d_tiny_signpost_far_both", "lgd3d_tiny_signpost_far_none", "lgd3d_tiny_signpost_near_both",
                 "lgd3d_tiny_signpost_near_none"):
        assert name in names
    model, info = load_pretrained("lgd3d_tiny_signpost_far_none")
    assert info["diffusion"] == "none" and model.classifier.global_head is not None
    assert build_model("lgd3d_tiny", 2).arch == "lgd3d_tiny"


def test_shipped_competitor_measurements_and_the_readme_section():
    from lgd_tutorial.experiments.reach_study import competitor_findings, competitor_report, competitor_tables

    causal = pd.read_csv(SHIPPED / "causal.csv")
    far = causal[causal["distance"] == causal["distance"].max()]
    for variant in ("se", "nonlocal", "gc"):
        measures = set(far.loc[far["variant"] == variant, "measure"])
        assert {"cf_mean_out", "probe_arrow", "acc_fixed_mean", "acc_removed"} <= measures, variant
    assert {"nl_js_query", "nl_js_clip"} <= set(far.loc[far["variant"] == "nonlocal", "measure"])
    tables = competitor_tables(SHIPPED)
    assert set(tables["attention"]["block"]) == {"layer2.0", "layer3.0"}
    outside = tables["outside"].set_index(["end", "variant"])
    assert outside.loc[("far", "none"), "median_ratio"] == 0                     # the plain network: exactly 0
    assert all(outside.loc[("far", v), "moved_pairs"] > 0 for v in ("se", "nonlocal", "gc"))   # a global path each
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert " ".join(competitor_report(SHIPPED).split()) in readme
    assert " ".join(competitor_findings(SHIPPED).split()) in readme
    assert "figures/reach_study/competitors.png" in readme
