"""Training and evaluation: configs, schedule, overfitting, exact resume, checkpoints, signals, DDP."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from lgd_tutorial import training
from lgd_tutorial.builders import lr_at, model_from_checkpoint
from lgd_tutorial.checkpoint import CheckpointError, checkpoints_in, load_checkpoint, newest_good_checkpoint
from lgd_tutorial.cli import main as lgd
from lgd_tutorial.config import CONFIG_DIR, ConfigError, from_dict, load_config
from lgd_tutorial.data import synthetic
from lgd_tutorial.distributed import ShardedSampler
from lgd_tutorial.evaluation import evaluate


@pytest.fixture(scope="module")
def synth(synthetic_set):
    return synthetic_set(seed=2, videos_per_class=2)


def small(synth, out, **sections):
    """A config for the teaching model on 8 synthetic clips, seconds per epoch."""
    base = {"data": {"root": str(synth), "synthetic_seed": 2, "synthetic_videos_per_class": 2,
                     "synthetic_val_per_class": 1, "num_frames": 4, "stride": 2, "crop_size": 32,
                     "scale": [32, 40], "test_short_side": 32, "batch_size": 4},
            "model": {"arch": "lgd3d_tiny", "num_classes": 4, "dropout": 0.0},
            "optim": {"epochs": 2, "lr": 0.05, "lr_batch": 4, "warmup_epochs": 0.5},
            "run": {"out_dir": str(out), "progress": False, "log_every": 1}}
    for section, values in sections.items():
        base[section].update(values)
    return base


# --------------------------------------------------------------------------- configs

def test_every_recipe_loads():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"tiny_synthetic_cpu", "k400_subset_gpu", "k400_full", "k600_full", "ucf101_finetune",
            "hmdb51_finetune"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.model.num_classes > 0


@pytest.mark.parametrize("override,message", [
    (["optim.lrr=0.1"], "unknown key 'optim.lrr'"),
    (["training.lr=0.1"], "unknown key 'training.lr'"),
    (["optim.lr=abc"], "bad value for optim.lr"),
    (["optim.lr=-1"], "bad value for optim.lr"),
    (["data.batch_size=2.5"], "bad value for data.batch_size"),
    (["model.diffusion=sideways"], "bad value for model.diffusion"),
    (["model.arch=resnet9000"], "bad value for model.arch"),
    (["run.amp=fp8"], "bad value for run.amp"),
    (["data.scale=[10, 5]"], "bad value for data.scale"),
    (["optim.lr"], "must look like key=value"),
])
def test_bad_config_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config("tiny_synthetic_cpu", override)


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  momentun: 0.9\n")
    with pytest.raises(ConfigError, match=f"{bad}.*unknown key 'optim.momentun'"):
        load_config(bad)
    cfg = load_config("tiny_synthetic_cpu", ["optim.lr=0.05", "run.compile=true", "data.scale=[70, 90]"])
    assert cfg.optim.lr == 0.05 and cfg.run.compile is True and cfg.data.scale == [70, 90]


def test_string_values_stay_strings_and_a_yaml_boolean_in_a_string_field_is_named(tmp_path):
    cfg = load_config("tiny_synthetic_cpu", ["run.amp=off", "model.diffusion=none", "data.decoded_cache=no"])
    assert (cfg.run.amp, cfg.model.diffusion, cfg.data.decoded_cache) == ("off", "none", "no")
    unquoted = tmp_path / "unquoted.yaml"
    unquoted.write_text("run:\n  amp: off\n")
    with pytest.raises(ConfigError, match="run.amp.*quote it"):
        load_config(unquoted)


def test_amp_auto_picks_bf16_on_a_cpu_only_where_it_is_native_and_measured_faster(monkeypatch):
    from lgd_tutorial import utils

    assert utils.cpu_bf16_gemm_speedup.__wrapped__(n=64, repeats=1) > 0
    cpu = torch.device("cpu")
    for native, speedup, expected in ((True, 1.8, torch.bfloat16), (True, 0.55, None), (False, 2.0, None)):
        monkeypatch.setattr(utils, "cpu_native_bf16", lambda: native)
        monkeypatch.setattr(utils, "cpu_bf16_gemm_speedup", lambda: speedup)
        assert utils.amp_dtype("auto", cpu) is expected
    assert utils.amp_dtype("bf16", cpu) is torch.bfloat16 and utils.amp_dtype("off", cpu) is None
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        utils.amp_dtype("fp16", cpu)


def test_learning_rate_schedule():
    cfg = from_dict({"optim": {"epochs": 10, "lr": 0.1, "lr_batch": 16, "warmup_epochs": 1},
                     "data": {"batch_size": 8}})
    steps = 10
    lrs = [lr_at(s, steps, cfg, world=2) for s in range(100)]          # global batch 16: base 0.1
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert max(lrs) == pytest.approx(0.1, rel=1e-3) and lrs[-1] < 1e-3
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))               # cosine decays
    assert lr_at(0, steps, cfg, world=4) == pytest.approx(0.02)         # linear scaling with the batch
    cfg = from_dict({"optim": {"schedule": "step", "milestones": [3, 6], "warmup_epochs": 0, "lr": 0.1,
                               "lr_batch": 16}, "data": {"batch_size": 16}})
    assert [round(lr_at(e * 10, 10, cfg, 1), 6) for e in (0, 3, 6)] == [0.1, 0.01, 0.001]


def test_sampler_shards_and_resumes():
    parts = [ShardedSampler(10, True, 1, r, 3) for r in range(3)]
    seen = sorted(i for p in parts for i in p)
    assert len(seen) == 12 and set(seen) == set(range(10))             # padded to 12, covers everything
    one = ShardedSampler(10, True, 1)
    full = list(one)
    one.set_epoch(0, start=4)
    assert list(one) == full[4:]
    one.set_epoch(1)
    assert list(one) != full


# --------------------------------------------------------------------------- training

def test_teaching_model_overfits_a_handful_of_clips(synth, tmp_path):
    cfg = from_dict(small(synth, tmp_path / "run", data={"scale": [32, 32]},
                          optim={"epochs": 24, "lr": 0.02, "warmup_epochs": 1, "weight_decay": 0.0},
                          run={"eval_every": 0}))
    result = training.train(cfg)
    assert result["status"] == "done"
    assert result["train"]["acc1"] == 1.0 and result["train"]["loss"] < 0.2, result
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert {"loss", "acc1", "lr", "clips_per_s", "data_wait_frac"} <= set(metrics.columns)
    assert metrics["loss"].iloc[-1] < metrics["loss"].iloc[0]
    assert (metrics["clips_per_s"] > 0).all() and metrics["data_wait_frac"].between(0, 1).all()


class StopAt(training.Trainer):
    """A trainer that receives a pre-emption signal at a given step."""

    stop_at = 3

    def log_metrics(self, row):
        super().log_metrics(row)
        if self.global_step == self.stop_at and row["split"] == "train":
            os.kill(os.getpid(), signal.SIGUSR1)


def test_exact_resume_after_preemption(synth, tmp_path):
    straight = training.Trainer.from_config(from_dict(small(synth, tmp_path / "a", model={"dropout": 0.3})))
    straight.fit()
    cfg = from_dict(small(synth, tmp_path / "b", model={"dropout": 0.3}))
    first = StopAt.from_config(cfg)
    result = first.fit()
    assert result["status"] == "preempted" and result["signal"] == "SIGUSR1"
    assert first.global_step == 3 and first.step_in_epoch == 1           # inside the second epoch
    second = training.Trainer.from_config(cfg)
    second.fit()
    assert second.global_step == straight.global_step == 4
    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(straight.optimizer.state_dict()["state"].values(), second.optimizer.state_dict()["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])


def train_losses(run_dir: Path) -> dict[int, str]:
    """global_step -> the training loss logged for it (as written; a redone step keeps its last row)."""
    rows = pd.read_csv(run_dir / "metrics.csv", dtype=str)
    rows = rows[rows["split"] == "train"]
    return dict(zip(rows["global_step"].astype(int), rows["loss"]))


@pytest.mark.slow
def test_a_process_killed_mid_epoch_resumes_with_the_same_per_step_losses(synth, tmp_path):
    """SIGKILL (no chance to save) in the middle of the second epoch; the next start resumes from the last
    periodic checkpoint, redoes the lost steps, and every step's loss and the final weights equal those of
    an uninterrupted run."""
    settings = dict(data={"batch_size": 2}, model={"dropout": 0.3},
                    run={"checkpoint_every": 3, "keep_last": 5, "eval_every": 0})
    configs = {}
    for name in ("straight", "killed"):
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump(small(synth, tmp_path / name, **settings)))
    command = [sys.executable, "-m", "lgd_tutorial", "train", "--config"]
    subprocess.run(command + [str(configs["straight"])], env=run_env(), check=True, capture_output=True, timeout=300)
    proc = subprocess.Popen(command + [str(configs["killed"])], env=run_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    metrics, deadline = tmp_path / "killed" / "metrics.csv", time.time() + 120
    while time.time() < deadline and not (metrics.exists() and max(train_losses(tmp_path / "killed"), default=0) >= 5):
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = max(train_losses(tmp_path / "killed"))
    assert 5 <= killed_at < 8                                               # inside the second epoch (steps 5-8)
    subprocess.run(command + [str(configs["killed"])], env=run_env(), check=True, capture_output=True, timeout=300)
    straight, resumed = train_losses(tmp_path / "straight"), train_losses(tmp_path / "killed")
    assert sorted(resumed) == sorted(straight) == list(range(1, 9))
    assert resumed == straight
    a = load_checkpoint(checkpoints_in(tmp_path / "straight")[0])
    b = load_checkpoint(checkpoints_in(tmp_path / "killed")[0])
    assert a["global_step"] == b["global_step"] == 8
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_corrupt_checkpoint_falls_back_to_the_previous(synth, tmp_path, caplog):
    cfg = from_dict(small(synth, tmp_path / "r", run={"checkpoint_every": 1, "keep_last": 3}))
    training.Trainer.from_config(cfg).fit()
    ckpts = checkpoints_in(tmp_path / "r")
    assert [p.name for p in ckpts] == ["step_00000004.pt", "step_00000003.pt", "step_00000002.pt"]
    data = ckpts[0].read_bytes()
    ckpts[0].write_bytes(data[: len(data) // 2])                       # truncated
    with pytest.raises(CheckpointError, match="step_00000004.pt"):
        load_checkpoint(ckpts[0])
    path, state = newest_good_checkpoint(tmp_path / "r")
    assert path == ckpts[1] and state["global_step"] == 3
    assert "step_00000004.pt" in caplog.text
    assert not list((tmp_path / "r").glob(".*tmp*"))                   # atomic writes leave nothing behind


def test_evaluation_multi_view(synth, tmp_path):
    cfg = from_dict(small(synth, tmp_path / "e", optim={"epochs": 1}))
    training.Trainer.from_config(cfg).fit()
    model, loaded = model_from_checkpoint(tmp_path / "e" / "best.pt")
    assert loaded.model.arch == "lgd3d_tiny"
    code = lgd(["evaluate", "--checkpoint", str(tmp_path / "e" / "best.pt"), "--clips", "2", "--crops", "3",
                          "--out", str(tmp_path / "eval")])
    assert code == 0
    pred = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    assert len(pred) == 4 and set(pred["label"]) == {0, 1, 2, 3}
    confusion = pd.read_csv(tmp_path / "eval" / "confusion.csv", index_col=0)
    assert confusion.values.sum() == 4 and list(confusion.index) == synthetic.CLASSES
    per_class = pd.read_csv(tmp_path / "eval" / "per_class.csv")
    assert per_class["accuracy"].between(0, 1).all()
    from lgd_tutorial.data.clips import ClipDataset
    from lgd_tutorial.data.transforms import test_transform
    ds = ClipDataset(synth / "manifest_val.csv", mode="test", num_frames=4, stride=2, num_clips=2,
                     transform=test_transform(32, 32, crops=3))
    result = evaluate(model, ds)
    assert result.views_per_video == 6 and result.videos == 4
    assert result.video_acc1 == pytest.approx(pred["correct"].mean())
    assert lgd(["evaluate", "--checkpoint", str(tmp_path / "nothing.pt")]) == 2


def test_fine_tuning_options(synth, tmp_path):
    training.Trainer.from_config(from_dict(small(synth, tmp_path / "src", optim={"epochs": 1}))).fit()
    cfg = from_dict(small(synth, tmp_path / "ft", model={"num_classes": 4, "init_from": str(tmp_path / "src" / "best.pt"),
                                                         "new_classifier": True},
                          optim={"epochs": 1, "freeze_bn": True, "backbone_lr_mult": 0.1}))
    trainer = training.Trainer.from_config(cfg)
    bn = trainer.model.stem.modules() if hasattr(trainer.model, "stem") else trainer.model.modules()
    norms = [m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    before = [m.running_mean.clone() for m in norms]
    trainer.fit()
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, norms))
    mults = sorted({g["lr_mult"] for g in trainer.optimizer.param_groups})
    assert mults == [0.1, 1.0]
    del bn


def test_cli_rejects_bad_config(tmp_path, capsys):
    assert lgd(["train", "--config", "tiny_synthetic_cpu", "optim.epochs=zero"]) == 2
    assert "optim.epochs" in capsys.readouterr().err


# --------------------------------------------------------------------------- processes

def run_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def test_sigterm_writes_a_checkpoint_and_the_run_continues(synth, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small(synth, tmp_path / "run", optim={"epochs": 30})))
    cmd = [sys.executable, "-m", "lgd_tutorial", "train", "--config", str(config)]
    proc = subprocess.Popen(cmd, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = tmp_path / "run" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 4):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == training.PREEMPTED, out
    assert "SIGTERM received" in out
    state = load_checkpoint(checkpoints_in(tmp_path / "run")[0])
    assert 0 < state["global_step"] < 60
    resumed = subprocess.run(cmd + ["optim.epochs=30"], env=run_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr and "step 60" in resumed.stdout


def direct_children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.slow
def test_a_signal_that_reaches_one_of_two_processes_stops_both_at_the_same_step(synth, tmp_path):
    """torchrun (or a scheduler) may signal one process a step before another; each stopping on its own would
    leave the other waiting forever in the next all-reduce. Only one of two gloo workers gets SIGTERM here."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small(synth, tmp_path / "run", data={"batch_size": 2, "workers": 1},
                                           optim={"epochs": 30}, run={"eval_every": 0, "amp": "off"})))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               "-m", "lgd_tutorial", "train", "--config", str(config)]
    job = subprocess.Popen(command, env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics, deadline = tmp_path / "run" / "metrics.csv", time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 4):
        time.sleep(0.1)
    workers = direct_children(job.pid)
    assert len(workers) == 2, workers
    os.kill(workers[-1], signal.SIGTERM)
    try:
        out, _ = job.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        job.kill()
        pytest.fail("the process without the signal went on alone and waits in an all-reduce")
    assert "received: checkpoint written at step" in out, out[-3000:]
    state = load_checkpoint(checkpoints_in(tmp_path / "run")[0])
    assert 0 < state["global_step"] < 60 and state["world"] == 2
    resumed = subprocess.run(command, env=run_env(), capture_output=True, text=True, timeout=300)
    assert "resumed from" in resumed.stderr, resumed.stderr[-3000:]
    assert load_checkpoint(checkpoints_in(tmp_path / "run")[0])["global_step"] == 60


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(synth, tmp_path, free_port):
    """Two DDP processes (started as two 'nodes' through a c10d rendezvous on 127.0.0.1, as on a cluster)
    with batch 2 each end with the same parameters as one process with batch 4."""
    # float32 throughout: run.amp=auto would pick bf16 on a CPU with native bf16, and bf16 rounding is the
    # order of 1e-3 where the summation order differs
    common = {"model": {"dropout": 0.0}, "optim": {"epochs": 2, "freeze_bn": True},
              "run": {"eval_every": 0, "amp": "off"}}
    one = tmp_path / "one.yaml"
    one.write_text(yaml.safe_dump(small(synth, tmp_path / "one", data={"batch_size": 4}, **{
        k: v for k, v in common.items() if k != "data"})))
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump(small(synth, tmp_path / "two", data={"batch_size": 2}, **common)))
    subprocess.run([sys.executable, "-m", "lgd_tutorial", "train", "--config", str(one)], env=run_env(),
                   check=True, capture_output=True, timeout=300)
    port = free_port
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                               "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "lgd-test",
                               "-m", "lgd_tutorial", "train", "--config", str(two)],
                              env=run_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for _ in range(2)]
    outs = [n.communicate(timeout=400)[0] for n in nodes]
    for n, out in zip(nodes, outs):
        assert n.returncode == 0, out
        assert "terminate called" not in out
    a = load_checkpoint(checkpoints_in(tmp_path / "one")[0])
    b = load_checkpoint(checkpoints_in(tmp_path / "two")[0])
    assert a["global_step"] == b["global_step"] == 4 and b["world"] == 2
    worst = max(float((a["model"][k].float() - b["model"][k].float()).abs().max()) for k in a["model"])
    # Same data and the same mean gradient, summed in a different order: float32 rounding only.
    assert worst < 1e-5, worst
    assert len(list(Path(tmp_path / "two").glob("step_*.pt"))) >= 1


@pytest.mark.slow
def test_the_slurm_script_starts_torchrun_with_a_rendezvous_on_the_first_node(synth, tmp_path, free_port):
    """The shipped sbatch script, run with stand-ins for srun and scontrol on one 'node' of 2 workers,
    trains to the end and leaves a 2-process checkpoint."""
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shims / "scontrol").write_text("#!/bin/sh\necho 127.0.0.1\necho 127.0.0.2\n")
    # srun drops its own options and runs the command once (one task on this one node).
    (shims / "srun").write_text('#!/bin/sh\nwhile [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n')
    for shim in ("python", "scontrol", "srun"):
        (shims / shim).chmod(0o755)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small(synth, tmp_path / "run", optim={"epochs": 1})))
    env = dict(run_env(), PATH=f"{shims}:{os.environ['PATH']}", SLURM_JOB_NODELIST="node[1-2]", SLURM_NNODES="1",
               SLURM_JOB_ID="4242", GPUS_PER_NODE="2", CONFIG=str(config), PORT=str(free_port))
    script = CONFIG_DIR / "slurm_train.sbatch"
    done = subprocess.run(["bash", str(script), "run.log_every=2"], env=env, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    state = load_checkpoint(checkpoints_in(tmp_path / "run")[0])
    assert state["world"] == 2 and state["epoch"] == 1
    assert state["config"]["run"]["log_every"] == 2


def test_metrics_keep_the_wall_clock_time_to_the_millisecond(tmp_path):
    from lgd_tutorial.metrics import MetricsLog

    log = MetricsLog(tmp_path)
    for t in (1795580123.4567, 1795580124.25):                   # a second apart: six digits would merge them
        log.write({"time": t, "epoch": 0, "split": "train", "loss": 1.23456789}, step=0)
    rows = pd.read_csv(tmp_path / "metrics.csv")
    assert list(rows["time"]) == [pytest.approx(1795580123.457, abs=1e-3), pytest.approx(1795580124.25, abs=1e-3)]
    assert rows["loss"].iloc[0] == pytest.approx(1.23457)        # the rest keeps six significant digits


def test_the_same_seed_trains_the_same_whether_or_not_a_run_came_before_it_in_the_process(tmp_path):
    """The bf16 probe (measured once per process) must not draw from the global generator: before it had
    its own, the first seeded run of a process saw other dropout masks than every later run with that seed."""
    from lgd_tutorial import utils

    state = torch.get_rng_state()
    utils.cpu_bf16_gemm_speedup.__wrapped__(n=64, repeats=1)
    assert torch.equal(torch.get_rng_state(), state)
    synth = tmp_path / "synth"
    losses = []
    for run in ("first", "second"):
        if run == "first":
            utils.cpu_bf16_gemm_speedup.cache_clear()              # the probe runs in the first run only
        cfg = load_config("tiny_synthetic_cpu", [f"data.root={synth}", "data.synthetic_videos_per_class=4",
                                                 "data.synthetic_val_per_class=1", "data.crop_size=32",
                                                 "data.scale=[32,40]", "data.test_short_side=32", "data.batch_size=4",
                                                 "optim.epochs=1", "run.max_steps_per_epoch=2", "run.log_every=1",
                                                 "run.progress=false", f"run.out_dir={tmp_path / run}"])
        training.Trainer.from_config(cfg).fit()
        losses.append(list(pd.read_csv(tmp_path / run / "metrics.csv").query("split == 'train'")["loss"]))
    assert losses[0] == losses[1]


@pytest.mark.parametrize("arch", ["se_p3d_tiny", "gc_p3d_tiny", "nonlocal_p3d_tiny"])
def test_context_models_train_evaluate_and_predict_by_name(arch, synth, tmp_path):
    cfg = from_dict(small(synth, tmp_path / "run", model={"arch": arch}, optim={"epochs": 1}))
    training.Trainer.from_config(cfg).fit()
    model, loaded = model_from_checkpoint(tmp_path / "run" / "best.pt")
    assert loaded.model.arch == arch and model.diffusion == "none" and model.context == arch.split("_")[0]
    assert lgd(["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--clips", "1", "--crops", "1",
                "--out", str(tmp_path / "eval")]) == 0
    assert len(pd.read_csv(tmp_path / "eval" / "predictions.csv")) == 4
    video = next(p for p in sorted(synth.rglob("*")) if p.suffix in (".mp4", ".avi", ".webm"))
    assert lgd(["predict", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--format", "csv", str(video)]) == 0


def test_a_network_without_diffusion_refuses_a_diffusion_setting_by_name(synth, tmp_path):
    from lgd_tutorial.builders import model_from_config

    cfg = from_dict(small(synth, tmp_path, model={"arch": "gc_p3d_tiny", "diffusion": "global_to_local"}))
    with pytest.raises(ConfigError, match="model.diffusion='global_to_local': gc_p3d_tiny has no diffusion"):
        model_from_config(cfg.model)
    cfg = from_dict(small(synth, tmp_path, model={"arch": "p3d_tiny"}))       # the default, "both", is ignored
    assert model_from_config(cfg.model).diffusion == "none"


def test_a_resume_with_changed_settings_is_refused_by_name_unless_asked_for(synth, tmp_path):
    cfg = from_dict(small(synth, tmp_path / "r", optim={"epochs": 1}))
    training.Trainer.from_config(cfg).fit()
    changed = from_dict(small(synth, tmp_path / "r", optim={"epochs": 2, "lr": 0.1}))
    with pytest.raises(ConfigError, match=r"optim\.epochs: 1 -> 2; optim\.lr: 0\.05 -> 0\.1.*run\.resume_changed"):
        training.Trainer.from_config(changed).fit()
    faster = from_dict(small(synth, tmp_path / "r", optim={"epochs": 1}, run={"log_every": 3, "keep_last": 5}))
    training.Trainer.from_config(faster).fit()                                    # only how it runs changed: resumes silently
    allowed = from_dict(small(synth, tmp_path / "r", optim={"epochs": 2, "lr": 0.1}, run={"resume_changed": True}))
    assert training.Trainer.from_config(allowed).fit()["epoch"] == 2


def test_falling_back_to_an_older_checkpoint_leaves_no_duplicate_metrics_rows(synth, tmp_path):
    cfg = from_dict(small(synth, tmp_path / "r", run={"checkpoint_every": 1, "keep_last": 3}))
    training.Trainer.from_config(cfg).fit()
    newest = checkpoints_in(tmp_path / "r")[0]
    newest.write_bytes(newest.read_bytes()[:1000])                     # the last checkpoint is damaged
    training.Trainer.from_config(cfg).fit()                                        # resumes from the one before and redoes
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv")
    val = metrics[metrics["split"] == "val"]
    assert list(val["epoch"]) == sorted(set(val["epoch"])), val             # one validation row per epoch
    train = metrics[metrics["split"] == "train"]
    assert train["global_step"].is_monotonic_increasing and train["global_step"].is_unique


def test_a_trainer_trains_what_it_is_given_and_builds_nothing(synth, tmp_path, monkeypatch):
    """Trainer(cfg, model, train_set, val_set) receives what it trains: no dataset or model is built, and the
    model it holds is the one passed in (moved, not replaced); from_config is what builds a run."""
    from lgd_tutorial.builders import build_datasets
    from lgd_tutorial.models import build_model

    cfg = from_dict(small(synth, tmp_path / "given", optim={"epochs": 1}))
    model, (train_set, val_set) = build_model("lgd3d_tiny", 4, dropout=0.0), build_datasets(cfg)

    def refuse(*args, **kwargs):
        raise AssertionError("the Trainer built something it was meant to be given")

    monkeypatch.setattr(training, "build_datasets", refuse)
    monkeypatch.setattr(training, "model_from_config", refuse)
    monkeypatch.setattr(training, "fill_caches", refuse)
    trainer = training.Trainer(cfg, model, train_set, val_set)
    assert trainer.model is model and trainer.train_set is train_set
    before = [p.detach().clone() for p in model.parameters()]
    stats = trainer.fit()
    assert stats["epoch"] == 1 and any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
