"""lgd precision: the teaching recipe in float32 and in bf16 autocast over seeds, paired per seed."""

import json

import pandas as pd
import pytest
import torch

from lgd_tutorial import utils
from lgd_tutorial.experiments import precision
from lgd_tutorial.cli import main as lgd


@pytest.fixture(scope="module")
def synth(synthetic_set):
    return synthetic_set(seed=3, videos_per_class=2)


def small_overrides(synth):
    return [f"data.root={synth}", "data.dataset=kinetics", "data.train_manifest=manifest_train.csv",
            "data.val_manifest=manifest_val.csv", "data.num_frames=4", "data.crop_size=32", "data.scale=[32, 40]",
            "data.test_short_side=32", "data.batch_size=4", "optim.epochs=2", "run.max_steps_per_epoch=2",
            "run.log_every=1"]


def test_each_seed_is_trained_in_both_precisions_and_compared_in_pairs(synth, tmp_path, capsys):
    assert lgd(["precision", "--seeds", "0", "1", "--out", str(tmp_path), "--speed-steps", "2", "--speed-rounds", "4",
                *small_overrides(synth)]) == 0
    runs = pd.read_csv(tmp_path / "runs.csv")
    # fp32 first for even seeds, bf16 first for odd ones: a drift in the machine's speed falls on both
    assert list(zip(runs["seed"], runs["precision"])) == [(0, "fp32"), (0, "bf16"), (1, "bf16"), (1, "fp32")]
    assert set(zip(runs["precision"], runs["autocast"])) == {("fp32", "off"), ("bf16", "torch.bfloat16")}
    assert (runs["videos"] == 4).all() and (runs["train_clips_per_s"] > 0).all() and (runs["seconds"] > 0).all()

    pairs = pd.read_csv(tmp_path / "paired.csv").set_index("seed")
    by = runs.set_index(["seed", "precision"])
    for seed in (0, 1):
        assert pairs.loc[seed, "acc1_bf16_minus_fp32"] == pytest.approx(
            by.loc[(seed, "bf16"), "acc1"] - by.loc[(seed, "fp32"), "acc1"])
    # the speed-up: rounds A B, B A, ... each with its own ratio; the median of the ratios and its interval
    speed = pd.read_csv(tmp_path / "speed.csv")
    assert list(speed["round"]) == [0, 0, 1, 1, 2, 2, 3, 3] and (speed["clips_per_s"] > 0).all()
    rates = speed.pivot(index="round", columns="precision", values="clips_per_s")
    ratios = speed.dropna(subset=["ratio"]).set_index("round")["ratio"]
    assert ratios.values == pytest.approx((rates["bf16"] / rates["fp32"]).values)
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("what")
    assert summary.loc["speedup", "mean"] == pytest.approx(ratios.median()) and summary.loc["speedup", "n"] == 4
    assert (summary["low"] <= summary["mean"]).all() and (summary["mean"] <= summary["high"]).all()
    assert summary.loc["acc1 fp32", "high"] <= 1 and summary.loc["acc1 bf16", "low"] >= 0

    curves = pd.read_csv(tmp_path / "curves.csv")              # one validation row per epoch, precision and seed
    assert len(curves) == 2 * 2 * 2 and set(curves["precision"]) == {"fp32", "bf16"}
    meta = json.loads((tmp_path / "precision.json").read_text())
    expected = "bf16" if utils.amp_dtype("auto", torch.device("cpu")) == torch.bfloat16 else "fp32"
    assert meta["auto_picks"] == expected and "precision --seeds 0 1" in meta["command"]
    printed = capsys.readouterr().out
    assert f"`run.amp=auto` picks {expected}" in printed and "| mean |" in printed


def test_a_bad_override_is_named_and_nothing_is_trained(tmp_path, capsys):
    assert lgd(["precision", "--seeds", "0", "--out", str(tmp_path), "optim.lr=abc"]) == 2
    assert "bad value for optim.lr" in capsys.readouterr().err and not (tmp_path / "runs.csv").exists()


def test_the_paired_table_leaves_out_a_seed_run_in_one_precision_only():
    runs = pd.DataFrame({"seed": [0, 0, 1], "precision": ["fp32", "bf16", "fp32"], "acc1": [0.5, 0.75, 1.0]})
    pairs = precision.paired(runs)
    assert list(pairs["seed"]) == [0] and list(pairs["acc1_bf16_minus_fp32"]) == [0.25]


def test_a_signal_stops_the_whole_series_not_just_the_current_run(synth, tmp_path, monkeypatch, capsys):
    from lgd_tutorial import training

    fits = []

    def preempted(trainer):                    # as Trainer.fit returns after SIGTERM: checkpoint written, stopped
        fits.append(trainer.out)
        return {"status": "preempted", "signal": "SIGTERM"}

    monkeypatch.setattr(training.Trainer, "fit", preempted)
    assert lgd(["precision", "--seeds", "0", "1", "--out", str(tmp_path), *small_overrides(synth)]) == 1
    assert len(fits) == 1 and not (tmp_path / "runs.csv").exists()
    assert "SIGTERM received" in capsys.readouterr().err
