"""lgd gpu-check: the dry run of every step (what CI can run), and the parts that decide what a real run reports."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from lgd_tutorial import gpu_check
from lgd_tutorial.gpu_check import (README_BEGIN, README_END, Settings, ddp_problems, descendants, kill_tree,
                                    largest_batch, limit_for, markdown, peak_from_table, readme_section)
from lgd_tutorial.training import configure_backends
from lgd_tutorial.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def lgd(*args, timeout=900, cwd=None):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR")}
    return subprocess.run([sys.executable, "-m", "lgd_tutorial", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run, started outside the repository with a relative --out (as `lgd gpu-check --out figures/gpu`
    is typed): every path the steps hand to torchrun and the notebooks must still resolve."""
    folder = tmp_path_factory.mktemp("gpu_check")
    done = lgd("gpu-check", "--dry-run", "--out", "check", cwd=folder)
    return folder / "check", done


@pytest.mark.slow
def test_the_dry_run_runs_every_step_and_each_writes_what_it_measured(dry_run):
    out, done = dry_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    steps = pd.read_csv(out / "steps.csv")
    assert steps["step"].tolist() == list(gpu_check.STEPS)
    assert (steps["status"] == "passed").all(), steps.to_string()
    assert (steps["seconds"] <= steps["limit_s"]).all()

    device = json.loads((out / "device.json").read_text())
    assert device["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert device["peak_tflops"] > 0 and device["measured_matmul_tflops"] > 0

    search = pd.read_csv(out / "batch_search.csv")
    settings = Settings.for_run(True)
    for name in settings.models:           # on a CPU nothing runs out of memory: doubling up to the cap
        assert search[search["model"] == name]["batch"].tolist()[:3] == [1, 2, 4]
    table = pd.read_csv(out / "throughput.csv")
    assert sorted(zip(table["model"], table["mode"])) == sorted(
        (m, mode) for m in settings.models for mode in ("eager", "compiled"))
    assert (table["batch"] == settings.max_batch).all() and (table["repeats"] == settings.repeats).all()
    assert (table["clips_per_s_low"] <= table["clips_per_s"]).all()
    assert (table["clips_per_s"] <= table["clips_per_s_high"]).all()
    assert ((table["mfu"] > 0) & (table["mfu"] < 1)).all()
    # MFU is the model's FLOPs per step x steps/s over the stated peak
    row = table.iloc[0]
    assert row["mfu"] == pytest.approx(row["gflop_per_clip"] * row["clips_per_s"] / 1e3 / row["peak_tflops"])
    overhead = pd.read_csv(out / "overhead.csv")
    assert overhead["mode"].tolist() == ["eager", "compiled"]
    assert (overhead["ratio_low"] <= overhead["time_ratio"]).all() and (
        overhead["time_ratio"] <= overhead["ratio_high"]).all()

    ddp = json.loads((out / "ddp.json").read_text())
    assert ddp["passed"] and ddp["exact"] and ddp["each_step_once"] and ddp["checkpoint_at_signal"]
    assert ddp["stopped_at_step"] >= settings.ddp_stop_at and ddp["steps"] > ddp["stopped_at_step"]
    assert ddp["final_step_a"] == ddp["final_step_b"] == ddp["steps"]
    assert ddp["resumed_exit"] == 0 and "resumed from" in (out / "ddp" / "resumed.log").read_text()
    losses = pd.read_csv(out / "ddp_losses.csv")
    assert len(losses) == ddp["steps"]

    notebooks = pd.read_csv(out / "notebooks.csv")
    assert notebooks["notebook"].tolist() == ["05_training"] and notebooks["ok"].all()
    executed = (out / "notebooks" / "05_training.ipynb").read_text()
    assert "profile: gpu" in executed and "GPU_OVERRIDES" in executed

    summary = (out / "summary.md").read_text()
    assert summary.strip() == markdown(out)
    assert summary.startswith("**Dry run**")
    for part in ("| throughput | passed |", "MFU", "Diffusion overhead", "bit for bit", "05_training ran"):
        assert part in summary, part
    assert markdown(out) in done.stdout


@pytest.mark.slow
def test_report_prints_a_finished_check_and_refuses_a_folder_that_is_not_one(dry_run, tmp_path):
    out, _ = dry_run
    shown = lgd("gpu-check", "--report", str(out), timeout=120)
    assert shown.returncode == 0 and shown.stdout.strip() == readme_section(out)
    bad = lgd("gpu-check", "--report", str(tmp_path), timeout=120)
    assert bad.returncode == 2 and "not a finished gpu-check folder" in bad.stderr


def test_bad_arguments_are_named_and_a_dry_run_never_writes_the_shipped_folder(tmp_path):
    for args, message in ((["--steps", "device", "warp"], "unknown step(s) warp"),
                          (["--budget", "0"], "--budget must be a positive"),
                          (["--dry-run", "--out", str(tmp_path / "figures" / "gpu")], "never writes figures/gpu"),
                          (["--update-readme"], "--update-readme goes with --report")):
        done = lgd("gpu-check", *args, timeout=120)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
    assert not (tmp_path / "figures").exists()


def test_the_readme_section_is_the_shipped_report_or_says_that_there_is_none():
    text = (ROOT / "README.md").read_text()
    assert text.count(README_BEGIN) == 1 and text.count(README_END) == 1
    shown = text.split(README_BEGIN)[1].split(README_END)[0].strip()
    shipped = ROOT / "figures" / "gpu"
    assert shown == readme_section(shipped if (shipped / "gpu_check.json").is_file() else None).strip()


def test_update_readme_rewrites_only_the_marked_section(dry_run, tmp_path):
    out, _ = dry_run
    if not (out / "gpu_check.json").is_file():
        pytest.skip("the dry run wrote no report")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{README_BEGIN}\nold text\n{README_END}\nafter\n")
    gpu_check.update_readme(out, readme)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{README_END}\nafter\n")
    assert readme_section(out) in text and "old text" not in text
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        gpu_check.update_readme(out, readme)


@pytest.mark.parametrize("name,expected", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.0), ("NVIDIA GH200 480GB", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA A10", 125.0), ("NVIDIA L40S", 362.0), ("NVIDIA L40", 181.0), ("NVIDIA L4", 121.0),
    ("Tesla V100-SXM2-16GB", None)])
def test_the_peak_comes_from_the_most_specific_datasheet_entry(name, expected):
    found = peak_from_table(name)
    assert (found[0] if found else None) == expected


class FakeRunner:
    """A model whose training step runs out of memory above ``fits`` clips."""

    def __init__(self, fits, error=torch.cuda.OutOfMemoryError):
        self.name, self.device, self.fits, self.error = "fake", torch.device("cpu"), fits, error
        self.optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)

    def step(self, batch, frames, size):
        def run():
            if batch > self.fits:
                raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return run


@pytest.mark.parametrize("fits", [1, 2, 5, 37, 64, 300])
def test_the_batch_search_doubles_then_bisects_to_within_an_eighth(fits):
    found, tried = largest_batch(FakeRunner(fits), 4, 32, cap=128)
    assert found <= min(fits, 128)
    assert min(fits, 128) - found <= max(1, found // 8)
    assert [t["batch"] for t in tried][:2] == [1, 2]
    assert all(t["fits"] == (t["batch"] <= fits) for t in tried)
    assert len(tried) <= 12


def test_the_batch_search_passes_on_errors_that_are_not_memory():
    with pytest.raises(RuntimeError, match="shape"):
        largest_batch(FakeRunner(4, error=lambda text: RuntimeError("bad shape")), 4, 32, cap=16)


def test_each_step_gets_its_limit_but_leaves_the_later_steps_their_reserve():
    s = Settings()
    assert limit_for("device", s, 480, ["throughput", "ddp", "notebooks"]) == s.limits["device"]
    assert limit_for("throughput", s, 300, ["ddp", "notebooks"]) == 300 - s.reserve["ddp"] - s.reserve["notebooks"]
    assert limit_for("notebooks", s, 50, []) == 50
    assert limit_for("ddp", s, 20, ["notebooks"]) == 0.0


def test_killing_a_step_kills_what_it_started_in_sessions_of_their_own(tmp_path):
    """As torchrun starts its workers: a grandchild in a new session outlives a killed process group."""
    job = subprocess.Popen(["bash", "-c", "setsid sleep 300 & wait"])
    deadline = time.time() + 20
    while time.time() < deadline and not [p for p in descendants(job.pid)
                                          if "sleep" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]:
        time.sleep(0.05)
    below = descendants(job.pid)
    assert below, "the grandchild did not start"
    kill_tree(job)
    time.sleep(0.2)
    alive = [p for p in below if Path(f"/proc/{p}").exists() and "Z" not in
             Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    assert not alive


def test_the_ddp_verdict_tells_non_determinism_from_a_bad_resume():
    good = {"checkpoint_at_signal": True, "signal_logged": True, "stopped_at_step": 101, "resumed_logged": True,
            "resumed_exit": 0, "each_step_once": True, "exact": True, "differs_before_stop": False,
            "first_differing_step": None}
    assert ddp_problems(good) == []
    noisy = {**good, "exact": False, "differs_before_stop": True, "first_differing_step": 12}
    assert ddp_problems(noisy)[0].startswith("inconclusive: the two runs differ from step 12, before the stop")
    weights = {**good, "exact": False, "first_differing_step": None}
    assert ddp_problems(weights) == ["the final weights differ while every logged loss agrees (to 6 digits)"]
    broken = {**good, "exact": False, "differs_before_stop": False, "first_differing_step": 102}
    assert ddp_problems(broken) == ["the runs first differ at step 102, after the resume: not an exact resume"]
    lost = {**good, "checkpoint_at_signal": False, "signal_logged": False, "stopped_at_step": 75}
    assert "no checkpoint written at the signal" in ddp_problems(lost)[0]


def test_deterministic_runs_ask_for_deterministic_algorithms():
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        configure_backends(load_config("tiny_synthetic_cpu", ["run.deterministic=true"]).run, torch.device("cpu"))
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_the_readme_states_the_check_as_the_settings_run_it():
    import math

    text = " ".join((ROOT / "README.md").read_text().split())
    s = Settings()
    batch = int(next(o for o in s.ddp_overrides if o.startswith("data.batch_size=")).split("=")[1])
    epochs = int(next(o for o in s.ddp_overrides if o.startswith("optim.epochs=")).split("=")[1])
    steps = math.ceil(s.classes * s.train_per_class / batch) * epochs
    frames, size = s.clip.split("x")
    for part in (f"(`--budget`, {s.budget:.0f} s)", f"for {steps} steps", f"after step {s.ddp_stop_at}",
                 f"{frames} x {size} x {size}", f"notebook {s.notebooks[0].lstrip('0')} with `LGD_PROFILE=gpu`",
                 "`r2plus1d_18`"):
        assert part in text, part
    assert all(name in text for name in s.models)


@pytest.mark.parametrize("dry_run", [False, True])
def test_the_signal_comes_inside_an_epoch_so_the_resume_starts_mid_epoch(dry_run):
    import math

    s = Settings.for_run(dry_run)
    batch = int(next(o for o in s.ddp_overrides if o.startswith("data.batch_size=")).split("=")[1])
    epochs = int(next(o for o in s.ddp_overrides if o.startswith("optim.epochs=")).split("=")[1])
    per_epoch = math.ceil(s.classes * s.train_per_class / batch)
    assert s.ddp_stop_at % per_epoch not in (0, per_epoch - 1)       # not at an epoch's end, nor just before it
    assert s.ddp_stop_at < per_epoch * epochs - 2
