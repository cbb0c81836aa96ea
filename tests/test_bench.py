"""`lgd bench` in smoke mode: a well-formed table, CSV files and plot (no speed is asserted)."""

import math

import pandas as pd
import pytest

from lgd_tutorial import bench
from lgd_tutorial.cli import main as lgd

MODELS = ("lgd3d_tiny", "p3d_tiny", "r2plus1d_18")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    tables = bench.run(models=MODELS, sizes=("4x64",), repeats=1, threads=1, smoke=True,
                       out=out / "csv", figure=out / "bench_models.png")
    return tables, out


def test_one_row_per_model_and_mode_with_positive_finite_numbers(smoke):
    tables, _ = smoke
    models = tables["models"]
    assert sorted(zip(models["model"], models["mode"])) == sorted((m, mode) for m in MODELS for mode in bench.MODES)
    assert set(models["size"]) == {"4x64x64"}
    for column in ("ms_per_step", "clips_per_s", "gflop_per_clip", "gflop_per_s", "peak_fraction"):
        assert all(math.isfinite(v) and v > 0 for v in models[column]), column
    train = models.set_index(["model", "mode"])["gflop_per_clip"]
    assert train["lgd3d_tiny", "train"] > 2 * train["lgd3d_tiny", "forward"]     # backward costs about 2x forward


def test_diffusion_overhead_is_reported_for_the_tiny_pair_in_both_modes(smoke):
    overhead = smoke[0]["overhead"]
    assert set(zip(overhead["model"], overhead["without_diffusion"], overhead["mode"])) == {
        ("lgd3d_tiny", "p3d_tiny", "forward"), ("lgd3d_tiny", "p3d_tiny", "train")}
    assert (overhead["time_ratio"] > 0).all()


def test_data_rates_give_workers_for_every_training_rate(smoke):
    data = smoke[0]["data"]
    assert set(data["model"]) == set(MODELS)
    assert (data["workers_needed"] >= 1).all() and (data["decode_clips_per_s_per_worker"] > 0).all()


def test_csv_files_and_plot_are_written(smoke):
    tables, out = smoke
    for name in ("models", "overhead", "machine", "data"):
        written = pd.read_csv(out / "csv" / f"{name}.csv")
        assert list(written.columns) == list(tables[name].columns)
        assert len(written) == len(tables[name])
    assert pd.read_csv(out / "csv" / "machine.csv")["matmul_peak_gflop_per_s"].iloc[0] > 0
    assert (out / "bench_models.png").stat().st_size > 10_000


def test_cli_smoke_prints_the_tables(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "MODELS", ("p3d_tiny",))
    assert lgd(["bench", "--smoke", "--skip-data", "--threads", "1", "--out", str(tmp_path),
                       "--figure", str(tmp_path / "plot.png")]) == 0
    out = capsys.readouterr().out
    assert "matmul peak" in out and "p3d_tiny" in out and (tmp_path / "models.csv").exists()


def test_a_malformed_clip_size_is_rejected_by_name(capsys):
    assert lgd(["bench", "--smoke", "--sizes", "16-224"]) == 2
    assert "16-224" in capsys.readouterr().err


def test_the_median_interval_comes_from_order_statistics():
    assert bench.median_interval(range(1, 10)) == (5, 2, 8)         # n=9: P(2 <= B <= 7) = 0.961 >= 0.95
    assert bench.median_interval([3, 1, 2]) == (2, 1, 3)            # too few repeats: the whole range
    with pytest.raises(ValueError):
        bench.median_interval([])


def test_the_overhead_table_carries_its_interval(smoke):
    overhead = smoke[0]["overhead"]
    assert {"ratio_low", "ratio_high", "repeats"} <= set(overhead.columns)
    assert (overhead["ratio_low"] <= overhead["time_ratio"]).all() and \
        (overhead["time_ratio"] <= overhead["ratio_high"]).all()
