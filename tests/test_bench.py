"""`lgd bench` in smoke mode: a well-formed table, CSV files and plot (no speed is asserted)."""

import math

import pandas as pd
import pytest

from lgd_tutorial.experiments import bench_models as bench
from lgd_tutorial.cli import main as lgd

MODELS = ("lgd3d_tiny", "p3d_tiny", "r2plus1d_18")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    tables = bench.run(models=MODELS, sizes=("4x64",), repeats=1, threads=1, smoke=True, dtypes=("fp32", "bf16"),
                       out=out / "csv", figure=out / "bench_models.png", log=None)
    return tables, out


def test_one_row_per_model_and_mode_with_positive_finite_numbers(smoke):
    tables, _ = smoke
    models = tables["models"]
    assert sorted(zip(models["model"], models["mode"], models["dtype"])) == sorted(
        (m, mode, dtype) for m in MODELS for mode in bench.MODES for dtype in ("fp32", "bf16"))
    assert set(models["size"]) == {"4x64x64"}
    for column in ("ms_per_step", "clips_per_s", "gflop_per_clip", "gflop_per_s", "peak_fraction"):
        assert all(math.isfinite(v) and v > 0 for v in models[column]), column
    train = models[models["dtype"] == "fp32"].set_index(["model", "mode"])["gflop_per_clip"]
    assert train["lgd3d_tiny", "train"] > 2 * train["lgd3d_tiny", "forward"]     # backward costs about 2x forward
    assert (models["peak_fraction"] <= 1).all()


def test_diffusion_overhead_is_reported_for_the_tiny_pair_in_both_modes(smoke):
    overhead = smoke[0]["overhead"]
    assert set(zip(overhead["model"], overhead["without_diffusion"], overhead["mode"], overhead["dtype"])) == {
        ("lgd3d_tiny", "p3d_tiny", mode, dtype) for mode in bench.MODES for dtype in ("fp32", "bf16")}
    assert (overhead["time_ratio"] > 0).all()


def test_data_rates_give_workers_for_every_training_rate(smoke):
    data = smoke[0]["data"]
    assert set(data["model"]) == set(MODELS)
    assert (data["workers_needed"] >= 1).all() and (data["decode_clips_per_s_per_worker"] > 0).all()


def test_csv_files_and_plot_are_written(smoke):
    tables, out = smoke
    for name in ("models", "overhead", "machine", "data", "peak", "bf16", "traffic"):
        written = pd.read_csv(out / "csv" / f"{name}.csv")
        assert list(written.columns) == list(tables[name].columns)
        assert len(written) == len(tables[name])
    machine = pd.read_csv(out / "csv" / "machine.csv").iloc[0]
    assert machine["reference_fp32_gflop_per_s"] >= machine["best_kernel_fp32_gflop_per_s"] > 0
    assert (out / "bench_models.png").stat().st_size > 10_000


def test_cli_smoke_prints_the_tables(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "MODELS", ("p3d_tiny",))
    assert lgd(["bench", "--smoke", "--skip-data", "--threads", "1", "--out", str(tmp_path),
                       "--figure", str(tmp_path / "plot.png"), "--channels-last"]) == 0
    out = capsys.readouterr().out
    assert "fp32 peak: best kernel" in out and "p3d_tiny" in out and (tmp_path / "models.csv").exists()
    assert "ms/step" in out                                          # a progress line per model as it runs
    layout = pd.read_csv(tmp_path / "channels_last.csv")            # --channels-last: both layouts, interleaved
    assert list(layout["model"]) == ["p3d_tiny"] and layout["repeats"].iloc[0] == 3
    assert (layout["speedup_low"] <= layout["speedup"]).all() and (layout["speedup"] <= layout["speedup_high"]).all()
    assert "[channels_last]" in out


def test_a_malformed_clip_size_is_rejected_by_name(capsys):
    assert lgd(["bench", "--smoke", "--sizes", "16-224"]) == 2
    assert "16-224" in capsys.readouterr().err


def test_the_overhead_table_carries_its_interval(smoke):
    overhead = smoke[0]["overhead"]
    assert {"ratio_low", "ratio_high", "repeats"} <= set(overhead.columns)
    assert (overhead["ratio_low"] <= overhead["time_ratio"]).all() and \
        (overhead["time_ratio"] <= overhead["ratio_high"]).all()


def test_the_peak_is_the_best_of_several_kernels_and_thread_counts(smoke):
    peak = smoke[0]["peak"]
    assert set(peak["dtype"]) == {"fp32", "bf16"} and set(peak["threads"]) == {1}
    assert peak["kernel"].str.startswith("matmul").any() and peak["kernel"].str.startswith("conv3d").any()
    reference = bench.reference_peaks(peak, None)
    assert reference["fp32"] == peak.loc[peak["dtype"] == "fp32", "gflop_per_s"].max()
    assert bench.reference_peaks(peak, {"fp32": 1e9, "bf16": None})["fp32"] == 1e9   # the theoretical one, if larger


def test_the_theoretical_peak_is_width_times_clock_times_cores():
    theory = bench.theoretical_peak(2)
    if theory is None:
        pytest.skip("this machine's CPU flags or clock cannot be read")
    lanes = theory["vector_bits"] // 32
    assert theory["fp32"] == pytest.approx(2 * theory["clock_ghz"] * bench.FMA_UNITS * lanes * 2)


def test_the_traffic_model_counts_the_diffusion_passes_of_each_block():
    passes = bench.diffusion_passes("lgd3d_tiny", 8, 32, 1)
    blocks = [p for p in passes if p["part"] == "block"]
    assert len(blocks) == sum(1 for m in bench.build("lgd3d_tiny").modules() if type(m).__name__ == "LGDBlock")
    for p in blocks:                      # "both": pool read + add read/write; backward: sum + accumulate
        s_in, s_out = 4 * math.prod(p["in_shape"]), 4 * math.prod(p["out_shape"])
        assert (p["forward"], p["backward"]) == (s_in + 2 * s_out, s_out + 2 * s_in)


def test_the_traffic_table_sets_prediction_beside_measurement(smoke):
    traffic = smoke[0]["traffic"]
    assert set(traffic["mode"]) == set(bench.MODES) and set(traffic["model"]) == {"lgd3d_tiny"}
    row = traffic.set_index("mode").loc["train"]
    assert row["extra_mb"] > traffic.set_index("mode").loc["forward", "extra_mb"] > 0
    assert row["predicted_pct"] == pytest.approx(100 * row["predicted_ms"] / row["ms_without_diffusion"])


def test_partial_tables_are_saved_after_every_size_and_mode(tmp_path):
    saved = []
    bench.bench_models(["p3d_tiny"], ["4x32"], bench.MODES, 1, 1, bench.resolve_device("cpu"), {"fp32": 1e3},
                       log=None, save=lambda tables: saved.append(len(tables["models"])))
    assert saved == [1, 2]


def test_a_finished_folder_reads_back_as_the_readmes_markdown_tables(smoke, tmp_path, capsys):
    tables, out = smoke
    assert lgd(["bench", "--markdown", str(out / "csv")]) == 0
    text = capsys.readouterr().out
    assert "bench" in text.splitlines()[0] and "at commit" in text.splitlines()[0]
    rows = {line.split(" | ")[0].strip("| `") for line in text.splitlines() if line.startswith("| `")}
    assert rows == set(MODELS)
    speed = tables["models"].set_index(["model", "mode", "dtype"])["clips_per_s"]
    assert f"| `p3d_tiny` | 4x64x64 | {speed['p3d_tiny', 'forward', 'fp32']:.3g} / " in text
    traffic = tables["traffic"]
    for row in traffic.itertuples():                              # prediction and measurement side by side
        assert f"| {row.mode} | {row.extra_mb:.0f} | {row.predicted_pct:.1f}% |" in text
    assert "bf16 autocast against fp32" in text
    assert lgd(["bench", "--markdown", str(tmp_path)]) == 2       # not a benchmark folder: named, exit 2
    assert str(tmp_path) in capsys.readouterr().err
