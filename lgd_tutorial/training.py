"""Training: one plain loop from a laptop CPU to many GPUs.

    lgd train --config tiny_synthetic_cpu                     # CPU, minutes
    torchrun --nproc-per-node 8 -m lgd_tutorial train --config k400_full
    lgd train --config k400_subset_gpu optim.lr=0.02 run.out_dir=runs/k400_50

The same entry point runs alone or under ``torchrun``: with more than one
process it wraps the model in DistributedDataParallel (NCCL on GPUs, gloo on
CPU), shards the data, and lets rank 0 log and write checkpoints
(``distributed.py``). The model, datasets, optimizer and learning-rate
schedule come from the recipe through ``builders.py``; checkpoints are
read and written by ``checkpoint.py``.

What one optimizer step does (read ``Trainer.train_step``):
  clips -> model (bf16 autocast where the device has it) -> loss -> backward (x ``accumulate``)
  -> clip gradients -> SGD step with the LR of this step -> metrics.

Checkpoints hold everything needed to continue exactly; the data order and
augmentations depend only on (seed, epoch, index), so a resumed run sees
the same batches. SIGTERM and SIGUSR1 (cluster pre-emption) write a
checkpoint and stop after the current step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .builders import build_datasets, freeze_batchnorm, lr_at, make_optimizer, model_from_config
from .checkpoint import checkpoints_in, newest_good_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import Config, ConfigError, load_config, migrate, save_config
from .data.clips import FailureReport
from .distributed import Dist, ShardedSampler
from .evaluation import view_scores
from .metrics import MetricsLog, Tally
from .utils import amp_dtype, progress, resolve_device, seed_everything

log = logging.getLogger("lgd_tutorial.training")
PREEMPTED = 75          # exit status after a pre-emption checkpoint (EX_TEMPFAIL: "run me again")


STOP_SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if s is not None)


def ignore_stop_signals(worker_id: int) -> None:
    """A loader worker's start: it ignores the pre-emption signals. ``torchrun`` (and a scheduler that signals a
    process group) send them to the workers too; a worker that died of one would take the step, and with it the
    checkpoint the training process is about to write, down with it. The training process stops them itself."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def compute_loss(out: dict, labels: torch.Tensor, cfg: Config) -> torch.Tensor:
    """loss_weight x (w_c CE(combined) + w_h (CE(local) + CE(global))); the release trains the heads
    (w_c=0, w_h=1) with a loss weight of 4 on Kinetics."""
    o = cfg.optim
    ce = lambda logits: F.cross_entropy(logits.float(), labels, label_smoothing=o.label_smoothing)  # noqa: E731
    loss = o.combined_weight * ce(out["logits"]) if o.combined_weight else 0.0
    if o.heads_weight:
        heads = [out["local_logits"]] + ([out["global_logits"]] if "global_logits" in out else [])
        loss = loss + o.heads_weight * sum(ce(h) for h in heads)
    return loss * o.loss_weight


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, clip_grad: float = 0.0,
                   scaler: torch.amp.GradScaler | None = None) -> None:
    """The end of every training step in the package, after the backward pass(es): clip the gradients' norm
    to ``clip_grad`` (0: no clipping; unscaled first under a ``scaler``), step, and zero the gradients.

    ``Trainer.train_step``, the studies' ``train_variant`` and the evidence-spreading experiment all call it."""
    if clip_grad:
        if scaler is not None:
            scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def fill_caches(datasets, dist_info: Dist) -> None:
    """Decode what the datasets' decoded-frame caches lack before training, on every core
    (``DecodedCache.fill``): by the first process of each node while its peers wait."""
    if dist_info.local_rank == 0:
        for dataset in datasets:
            if dataset is not None and dataset.cache is not None:
                dataset.cache.fill(dataset.paths)
    dist_info.barrier()


def configure_backends(run, device: torch.device) -> None:
    """The process-wide kernel choices ``run`` asks for. On CUDA, ``run.cudnn_benchmark`` lets cuDNN time its
    algorithms once per input shape (fast for fixed-size clips). ``run.deterministic`` asks for repeatable results
    instead: deterministic cuDNN and PyTorch algorithms (``warn_only``: the few CUDA kernels without a
    deterministic form, such as max-pool backward, warn and still run) and a fixed cuBLAS workspace."""
    if run.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = bool(run.deterministic)
        torch.backends.cudnn.benchmark = bool(run.cudnn_benchmark) and not run.deterministic


def run_device(cfg: Config, local_rank: int = 0) -> torch.device:
    """The device ``run.device`` names; ConfigError (naming the field) when it cannot be had."""
    try:
        return resolve_device(cfg.run.device, local_rank)
    except ValueError as e:
        raise ConfigError(f"bad value for run.device: {e}") from None


# settings that change how fast or where a run goes, not what it computes: a resume may change them freely
RESUME_FREE = {"run.device", "run.channels_last", "run.channels_last_cpu", "run.compile", "run.cudnn_benchmark",
               "run.deterministic", "run.checkpoint_every",
               "run.keep_last", "run.eval_every", "run.log_every", "run.resume", "run.resume_changed",
               "run.tensorboard", "run.progress", "run.out_dir", "data.workers", "data.backend", "data.decoded_cache"}


def changed_settings(saved: dict, current: dict) -> list[str]:
    """``section.key: saved -> current`` for every setting a resume would change, except ``RESUME_FREE``."""
    saved, current = migrate(saved), migrate(current)
    changes = []
    for section, values in current.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            name = f"{section}.{key}"
            before = (saved.get(section) or {}).get(key, value)        # a key the checkpoint predates: unchanged
            if name not in RESUME_FREE and before != value:
                changes.append(f"{name}: {before!r} -> {value!r}")
    return changes


class Trainer:
    """Holds the run's state; ``fit()`` trains and validates, ``evaluate_clips()`` validates.

    ``Trainer.from_config(cfg)`` builds what a run trains (the model, the datasets, the filled decoded-frame
    caches) and hands it over; ``Trainer.from_config(cfg, model, train_set, val_set)`` trains what it is given and has no
    other side effect than moving the model to the run's device and layout.
    """

    @classmethod
    def from_config(cls, cfg: Config, dist_info: Dist | None = None) -> "Trainer":
        """The run ``cfg`` describes: seeds, builds the model (a missing ImageNet file stops it at once), builds
        the datasets and fills their decoded-frame caches (the first process of each node, its peers wait)."""
        dist_info = dist_info or Dist()
        run_device(cfg, dist_info.local_rank)                # a bad run.device is named before anything is built
        seed_everything(cfg.run.seed)
        model = model_from_config(cfg.model)
        train_set, val_set = build_datasets(cfg)
        fill_caches((train_set, val_set), dist_info)
        return cls(cfg, model, train_set, val_set, dist_info)

    def __init__(self, cfg: Config, model: nn.Module, train_set, val_set=None, dist_info: Dist | None = None):
        self.cfg, self.dist = cfg, dist_info or Dist()
        self.device = run_device(cfg, self.dist.local_rank)
        configure_backends(cfg.run, self.device)
        self.out = Path(cfg.run.out_dir)
        self.train_set, self.val_set = train_set, val_set
        if cfg.optim.freeze_bn:
            freeze_batchnorm(model)
        self.model, self.net = self._place(model)
        self.optimizer = make_optimizer(self.model, cfg)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.sampler = ShardedSampler(len(self.train_set), True, cfg.run.seed, self.dist.rank, self.dist.world)
        per_step = cfg.data.batch_size * cfg.optim.accumulate
        self.steps_per_epoch = max(1, math.ceil(len(self.sampler.indices()) / per_step))
        if cfg.run.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.run.max_steps_per_epoch)
        self.epoch, self.step_in_epoch, self.global_step, self.best_acc = 0, 0, 0, -1.0
        self.stop_requested = None
        self.failures = FailureReport(self.train_set)
        self.metrics = MetricsLog(None)

    def _place(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        """(model, net): the model on the device (channels-last as configured; with synchronised batch norm
        under DDP as configured) and what the steps call: the model, wrapped in DDP and compiled as configured."""
        run, cuda = self.cfg.run, self.device.type == "cuda"
        if self.dist.enabled and run.sync_bn and not self.cfg.optim.freeze_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(self.device)
        last = run.channels_last if cuda else run.channels_last_cpu
        self.memory_format = torch.channels_last_3d if last else torch.contiguous_format
        model.to(memory_format=self.memory_format)
        net = model
        if self.dist.enabled:
            net = nn.parallel.DistributedDataParallel(model, device_ids=[self.device.index] if cuda else None)
        return model, (torch.compile(net) if run.compile else net)

    def _amp_dtype(self):
        try:
            return amp_dtype(self.cfg.run.amp, self.device)
        except ValueError as e:
            raise ConfigError(f"bad value for run.amp: {e}") from None

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ----- state
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step, "best_acc": self.best_acc, "rng": rng_state(),
                "config": self.cfg.to_dict(), "world": self.dist.world}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.best_acc = state["global_step"], state["best_acc"]
        set_rng_state(state["rng"])
        if state.get("world", 1) != self.dist.world:
            log.warning("resuming a %s-process run with %s processes: the data order changes",
                        state.get("world"), self.dist.world)

    def save(self, best: bool = False) -> Path | None:
        if not self.dist.main:
            return None
        path = save_checkpoint(self.state_dict(), self.out / f"step_{self.global_step:08d}.pt")
        for old in checkpoints_in(self.out)[self.cfg.run.keep_last:]:
            old.unlink(missing_ok=True)
        if best:
            save_checkpoint(self.state_dict(), self.out / "best.pt")
        return path

    def try_resume(self) -> bool:
        found = newest_good_checkpoint(self.out) if self.cfg.run.resume else None
        if found is None:
            return False
        path, state = found
        changed = changed_settings(state.get("config") or {}, self.cfg.to_dict())
        if changed and not self.cfg.run.resume_changed:
            raise ConfigError(f"{path} was made with other settings than this run's: {'; '.join(changed)}. Resume "
                              "with the checkpoint's settings, set run.resume_changed=true to go on with these, or "
                              "use another run.out_dir")
        if changed and self.dist.main:
            log.warning("resuming %s with changed settings (run.resume_changed): %s", path, "; ".join(changed))
        self.load_state_dict(state)
        self.metrics.truncate_after(self.global_step)     # rows of an abandoned, newer epoch (a damaged checkpoint)
        if self.dist.main:
            log.info("resumed from %s (epoch %d, step %d in epoch)", path, self.epoch, self.step_in_epoch)
        return True

    def install_signal_handlers(self) -> dict:
        def handler(signum, frame):
            self.stop_requested = signal.Signals(signum).name
        previous = {}
        for sig in STOP_SIGNALS:
            with contextlib.suppress(ValueError):            # not the main thread (some notebook set-ups)
                previous[sig] = signal.signal(sig, handler)
        return previous

    def stop_agreed(self) -> bool:
        """Whether to stop now because a signal reached this process or any other one of the group.

        A scheduler or ``torchrun`` signals the processes one after another, so one may see its signal a step
        later than another; were each to stop on its own, one would wait forever in the next step's gradient
        all-reduce. Every process asks at the same points, and they agree through an all-reduce of the flags."""
        if not self.dist.enabled:
            return bool(self.stop_requested)
        if self.dist.all_sum([1.0 if self.stop_requested else 0.0], self.device)[0] > 0:
            self.stop_requested = self.stop_requested or "another process's signal"
        return bool(self.stop_requested)

    def log_metrics(self, row: dict) -> None:
        if self.dist.main:
            self.metrics.write(row, self.global_step)

    # ----- training
    def loader(self):
        self.train_set.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch, self.step_in_epoch * self.cfg.data.batch_size * self.cfg.optim.accumulate)
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=self.cfg.data.batch_size, sampler=self.sampler,
            num_workers=self.cfg.data.workers, pin_memory=self.device.type == "cuda",
            worker_init_fn=ignore_stop_signals,
            # Its own generator: creating a loader must not draw from the global RNG (exact resume).
            generator=torch.Generator().manual_seed(self.cfg.run.seed * 1009 + self.epoch))

    def train_step(self, batches, tallies: list[Tally]) -> float | None:
        """One optimizer step over ``accumulate`` micro-batches; its learning rate, or None when data ran out."""
        cfg, accumulate = self.cfg, self.cfg.optim.accumulate
        lr = lr_at(self.global_step, self.steps_per_epoch, cfg, self.dist.world)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        got = 0
        for micro in range(accumulate):
            t0 = time.perf_counter()
            clips, labels, _, failed = next(batches, (None, None, None, None))
            if clips is None:
                break
            for tally in tallies:
                tally.wait += time.perf_counter() - t0
            self.failures.update(failed)
            clips = clips.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            labels = labels.to(self.device, non_blocking=True)
            last = micro == accumulate - 1
            with (self.net.no_sync() if self.dist.enabled and not last else contextlib.nullcontext()):
                with self.autocast():
                    out = self.net(clips, return_heads=True)
                    loss = compute_loss(out, labels, cfg)
                self.scaler.scale(loss / accumulate).backward()
            for tally in tallies:
                tally.add(float(loss.detach()), out["logits"], labels)
            got += 1
        if got == 0:
            return None
        optimizer_step(self.model, self.optimizer, cfg.optim.clip_grad, self.scaler)
        self.step_in_epoch, self.global_step = self.step_in_epoch + 1, self.global_step + 1
        return lr

    def train_epoch(self) -> dict:
        cfg = self.cfg
        self.net.train()
        if cfg.optim.freeze_bn:
            freeze_batchnorm(self.model)
        self.failures.reset()
        epoch, window = Tally(), Tally()
        bar = progress(None, cfg.run.progress and self.dist.main, total=self.steps_per_epoch,
                       initial=self.step_in_epoch, desc=f"epoch {self.epoch}", unit="step", leave=False)
        batches = iter(self.loader())
        while self.step_in_epoch < self.steps_per_epoch and not self.stop_agreed():
            lr = self.train_step(batches, [epoch, window])
            if lr is None:
                break
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{window.loss / max(1, window.clips):.3f}", lr=f"{lr:.3g}")
            if self.global_step % cfg.run.log_every == 0 or self.step_in_epoch == self.steps_per_epoch:
                self.log_metrics({"time": time.time(), "epoch": self.epoch, "step": self.step_in_epoch,
                                  "global_step": self.global_step, "split": "train", "lr": lr, "acc5": "",
                                  "failed_videos": self.failures.count,
                                  **{k: v for k, v in window.summed(self.dist, self.device).items() if k != "acc5"}})
                window = Tally()
            if cfg.run.checkpoint_every and self.global_step % cfg.run.checkpoint_every == 0:
                self.save()
        if bar is not None:
            bar.close()
        if self.failures.count and self.dist.main:
            log.warning("epoch %d: %s", self.epoch, self.failures.summary())
        stats = epoch.summed(self.dist, self.device)
        return {k: stats[k] for k in ("loss", "acc1", "acc5", "clips")} | {"failed": self.failures.count}

    def next_epoch(self) -> None:
        """Move on to the first step of the next epoch (its own shuffle and augmentation draws)."""
        self.epoch, self.step_in_epoch = self.epoch + 1, 0

    @torch.no_grad()
    def evaluate_clips(self) -> dict:
        """Single-view validation, sharded over processes (each sample counted once)."""
        if self.val_set is None:
            return {}
        self.net.eval()
        sampler = ShardedSampler(len(self.val_set), False, 0, self.dist.rank, self.dist.world, pad=False)
        loader = torch.utils.data.DataLoader(self.val_set, batch_size=self.cfg.data.batch_size, sampler=sampler,
                                             num_workers=self.cfg.data.workers, generator=torch.Generator(),
                                             worker_init_fn=ignore_stop_signals)
        tally = Tally()
        for clips, labels, _, _ in loader:
            if clips.dim() == 6:                      # (N, views, C, T, H, W): one view in validation
                clips = clips[:, 0]
            clips = clips.to(self.device).contiguous(memory_format=self.memory_format)
            labels = labels.to(self.device)
            with self.autocast():
                logits = view_scores(self.model, clips, self.cfg.data.test_head)
            tally.add(float(F.cross_entropy(logits.float(), labels)), logits, labels)
        stats = tally.summed(self.dist, self.device)
        return {k: stats[k] for k in ("loss", "acc1", "acc5", "clips")}

    def _open_outputs(self) -> None:
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.out / "config.yaml")
            self.metrics = MetricsLog(self.out, self.cfg.run.tensorboard)

    def validate_epoch(self, result: dict) -> bool:
        """Validate when the recipe asks for it after this epoch; True when it is the best so far."""
        cfg = self.cfg
        if not cfg.run.eval_every or (self.epoch % cfg.run.eval_every and self.epoch != cfg.optim.epochs):
            return False
        val = self.evaluate_clips()
        if not val:
            return False
        result["val"], best = val, val["acc1"] > self.best_acc
        self.best_acc = max(self.best_acc, val["acc1"])
        self.log_metrics({"time": time.time(), "epoch": self.epoch - 1, "step": self.steps_per_epoch,
                          "global_step": self.global_step, "split": "val", **val, "lr": ""})
        return best

    def fit(self) -> dict:
        self._open_outputs()
        self.try_resume()
        previous = self.install_signal_handlers()
        result = {"status": "done"}
        try:
            while self.epoch < self.cfg.optim.epochs:
                stats = self.train_epoch()
                if self.stop_agreed():
                    self.save()
                    if self.dist.main:
                        log.warning("%s received: checkpoint written at step %d; stopping",
                                    self.stop_requested, self.global_step)
                    result = {"status": "preempted", "signal": self.stop_requested}
                    break
                result["train"] = stats
                self.next_epoch()
                best = self.validate_epoch(result)
                if self.dist.main:
                    val_text = f", val acc {result['val']['acc1']:.3f}" if "val" in result else ""
                    print(f"epoch {self.epoch - 1}: train loss {stats['loss']:.3f} acc {stats['acc1']:.3f}{val_text}",
                          flush=True)
                self.save(best=best)
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            self.metrics.close()
        result.update(epoch=self.epoch, global_step=self.global_step, best_acc=self.best_acc)
        return result


class Stopped(Exception):
    """A run over several trainings got SIGTERM or SIGUSR1: the current one wrote a checkpoint and stopped,
    and no further training starts."""


def train_fresh(recipe: str, overrides, out_dir) -> tuple[Trainer, float]:
    """Train ``recipe`` with ``overrides`` in this process, from scratch in ``out_dir``, without a progress
    bar (the runs that ``lgd two-stream`` and ``lgd precision`` make over seeds): the finished Trainer and the
    seconds its ``fit`` took. Raises ``Stopped`` when a signal stopped the training."""
    cfg = load_config(recipe, [*overrides, f"run.out_dir={out_dir}", "run.resume=false", "run.progress=false"])
    trainer = Trainer.from_config(cfg)
    started = time.perf_counter()
    result = trainer.fit()
    if result["status"] == "preempted":
        raise Stopped(f"{result['signal']} received: the run in {out_dir} wrote a checkpoint and stopped; "
                      "no further runs were started")
    return trainer, time.perf_counter() - started


def train(cfg: Config) -> dict:
    """Train with ``cfg`` in this process (and its torchrun peers). Returns the final stats."""
    d = distributed.setup(run_device(cfg).type)
    try:
        return Trainer.from_config(cfg, d).fit()
    finally:
        distributed.cleanup(d)

