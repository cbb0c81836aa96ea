"""Training: one plain loop from a laptop CPU to many GPUs.

    lgd train --config tiny_synthetic_cpu                     # CPU, minutes
    torchrun --nproc-per-node 8 -m lgd_tutorial.train --config k400_full
    lgd train --config k400_subset_gpu optim.lr=0.02 run.out_dir=runs/k400_50

The same entry point runs alone or under ``torchrun`` (which sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT): with more than one process it
wraps the model in DistributedDataParallel (NCCL on GPUs, gloo on CPU),
shards the data, and lets rank 0 log and write checkpoints.

What one optimizer step does (read ``Trainer.train_epoch``):
  clips -> model (autocast on CUDA) -> loss -> backward (x ``accumulate``)
  -> clip gradients -> SGD step with the LR of this step -> metrics.

Checkpoints hold everything needed to continue exactly: model, optimizer,
GradScaler, epoch, step inside the epoch, and the RNG states; the data order
and augmentations depend only on (seed, epoch, index), so a resumed run sees
the same batches. SIGTERM and SIGUSR1 (cluster pre-emption) write a
checkpoint and stop after the current step.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .config import Config, ConfigError, load_config, save_config
from .data.clips import ClipDataset, FailureReport
from .data.transforms import test_transform, train_transform
from .models import build_model, inflate_from_2d

log = logging.getLogger("lgd_tutorial.train")
METRIC_FIELDS = ["time", "epoch", "step", "global_step", "split", "loss", "acc1", "acc5", "lr",
                 "clips_per_s", "data_wait_frac", "failed_videos"]
PREEMPTED = 75          # exit status after a pre-emption checkpoint (EX_TEMPFAIL: "run me again")


# --------------------------------------------------------------------------- processes

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup_distributed(device_kind: str) -> Dist:
    """Join the process group when started by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return Dist(rank, world, local_rank)


def cleanup_distributed(d: Dist) -> None:
    """A barrier before destroying the group: gloo may abort at exit when a peer is still talking."""
    if d.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def pick_device(kind: str, d: Dist) -> torch.device:
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("bad value for run.device: 'cuda' (no CUDA device is available)")
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- data order

class ShardedSampler(torch.utils.data.Sampler):
    """The indices of one epoch for one process, from a given position on.

    A permutation seeded by (seed, epoch), padded to a multiple of
    ``world x batch`` by repeating its start (as DistributedSampler does), and
    dealt out round-robin. ``start`` skips the samples this process already
    used in the epoch (resume inside an epoch).
    """

    def __init__(self, size: int, shuffle: bool, seed: int, rank: int = 0, world: int = 1, pad: bool = True):
        self.size, self.shuffle, self.seed, self.rank, self.world, self.pad = size, shuffle, seed, rank, world, pad
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        if self.pad:
            total = math.ceil(self.size / self.world) * self.world
            order = (order * math.ceil(total / max(1, len(order))))[:total]
        return order[self.rank::self.world]

    def __iter__(self):
        return iter(self.indices()[self.start:])

    def __len__(self) -> int:
        return max(0, len(self.indices()) - self.start)


# --------------------------------------------------------------------------- learning rate

def lr_at(step: int, steps_per_epoch: int, cfg: Config, world: int) -> float:
    """The learning rate at optimizer step ``step``: linear warm-up, then cosine or steps.

    The base LR is given for ``optim.lr_batch`` clips and scaled linearly with
    the global batch (clips per step over all processes and accumulation).
    """
    o = cfg.optim
    global_batch = cfg.data.batch_size * world * o.accumulate
    base = o.lr * global_batch / o.lr_batch
    epoch = step / max(1, steps_per_epoch)
    if o.warmup_epochs > 0 and epoch < o.warmup_epochs:
        return base * (epoch + 1 / max(1, steps_per_epoch)) / o.warmup_epochs
    if o.schedule == "cosine":
        span = max(1e-8, o.epochs - o.warmup_epochs)
        progress = min(1.0, (epoch - o.warmup_epochs) / span)
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    return base * o.gamma ** sum(epoch >= m for m in o.milestones)


# --------------------------------------------------------------------------- building blocks

def build_datasets(cfg: Config):
    """(train, val) ClipDatasets for the configured data (the synthetic set is generated if needed)."""
    d = cfg.data
    root = Path(d.root)
    if d.dataset == "synthetic":
        from .data.synthetic import generate
        generate(root, seed=d.synthetic_seed, videos_per_class=d.synthetic_videos_per_class,
                 val_per_class=d.synthetic_val_per_class, progress=False)
        train_manifest, val_manifest = root / d.train_manifest, root / d.val_manifest
    elif d.dataset in ("ucf101", "hmdb51"):
        from .data.transfer import split_manifests
        train_manifest, val_manifest = split_manifests(d.dataset, root, d.split_dir, d.split)
    else:
        train_manifest, val_manifest = root / d.train_manifest, root / d.val_manifest
    mode = "tsn" if d.sampling == "tsn" else "train"
    common = dict(root=root, num_frames=d.num_frames, stride=d.stride, backend=d.backend, strict=d.strict,
                  short_side=d.decode_short_side or None, seed=cfg.run.seed)
    train = ClipDataset(train_manifest, mode=mode,
                        transform=train_transform(d.crop_size, tuple(d.scale), d.resized_crop), **common)
    val = None
    if val_manifest and Path(val_manifest).exists():
        val = ClipDataset(val_manifest, mode="tsn" if d.sampling == "tsn" else "test", num_clips=1,
                          transform=test_transform(d.crop_size, d.test_short_side, 1), tsn_random=False, **common)
    return train, val


def build(cfg: Config) -> nn.Module:
    """The configured model, with ImageNet inflation or a starting checkpoint when asked."""
    m = cfg.model
    model = build_model(m.arch, m.num_classes, diffusion=m.diffusion, kernel=m.kernel, dropout=m.dropout)
    if m.pretrained_2d:
        report = inflate_from_2d(model, m.pretrained_2d)
        log.info("inflated ImageNet weights from %s: %s", m.pretrained_2d, report)
    if m.init_from:
        state = load_checkpoint(m.init_from)["model"]
        if m.new_classifier:
            state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        wrong = [k for k in missing if not (m.new_classifier and k.startswith("classifier."))]
        if wrong or unexpected:
            raise ConfigError(f"model.init_from {m.init_from}: missing {wrong[:5]}, unexpected {unexpected[:5]}")
    return model


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers keep their statistics and affine parameters (fine-tuning on little data)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """SGD with momentum and Nesterov; no weight decay on biases and norms; ``lr_mult`` per group."""
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        head = name.startswith("classifier.") or ".classifier." in name
        decay = p.ndim > 1 and "log_" not in name
        key = (head, decay)
        groups.setdefault(key, []).append(p)
    param_groups = [{"params": ps, "weight_decay": cfg.optim.weight_decay if decay else 0.0,
                     "lr_mult": 1.0 if head else cfg.optim.backbone_lr_mult}
                    for (head, decay), ps in sorted(groups.items())]
    return torch.optim.SGD(param_groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                           nesterov=cfg.optim.nesterov and cfg.optim.momentum > 0)


def compute_loss(out: dict, labels: torch.Tensor, cfg: Config) -> torch.Tensor:
    """w_c CE(combined) + w_h (CE(local) + CE(global)): the release trains the heads (w_c=0, w_h=1)."""
    o = cfg.optim
    ce = lambda logits: F.cross_entropy(logits.float(), labels, label_smoothing=o.label_smoothing)  # noqa: E731
    loss = o.combined_weight * ce(out["logits"]) if o.combined_weight else 0.0
    if o.heads_weight:
        heads = [out["local_logits"]] + ([out["global_logits"]] if "global_logits" in out else [])
        loss = loss + o.heads_weight * sum(ce(h) for h in heads)
    return loss


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[int]:
    k = min(max(ks), logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hits = top == labels[:, None]
    return [int(hits[:, :min(kk, k)].any(1).sum()) for kk in ks]


# --------------------------------------------------------------------------- checkpoints

def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_pos": random.getstate()[2],
             "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict, path: Path) -> Path:
    """Write atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


class CheckpointError(RuntimeError):
    pass


def load_checkpoint(path, map_location="cpu") -> dict:
    """``torch.load(weights_only=True)``; a truncated or corrupt file raises CheckpointError naming it."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a checkpoint of this project (no 'model' entry)")
    return state


def checkpoints_in(folder: Path) -> list[Path]:
    """Step checkpoints, newest first (by global step in the name)."""
    return sorted(folder.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]), reverse=True)


def newest_good_checkpoint(folder: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; damaged ones are reported and skipped."""
    for path in checkpoints_in(folder):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as e:
            log.warning("%s; trying the previous one", e)
    return None


# --------------------------------------------------------------------------- the trainer

class Trainer:
    """Holds the run's state; ``fit()`` trains and validates, ``evaluate_clips()`` validates."""

    def __init__(self, cfg: Config, dist_info: Dist | None = None):
        self.cfg = cfg
        self.dist = dist_info or Dist()
        self.device = pick_device(cfg.run.device, self.dist)
        self.out = Path(cfg.run.out_dir)
        seed_everything(cfg.run.seed)
        self.train_set, self.val_set = build_datasets(cfg)
        model = build(cfg)
        if cfg.optim.freeze_bn:
            freeze_batchnorm(model)
        cuda = self.device.type == "cuda"
        if self.dist.enabled and cfg.run.sync_bn and not cfg.optim.freeze_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(self.device)
        self.memory_format = torch.channels_last_3d if (cuda and cfg.run.channels_last) else torch.contiguous_format
        if cuda and cfg.run.channels_last:
            model.to(memory_format=torch.channels_last_3d)
        self.model = model
        self.optimizer = make_optimizer(model, cfg)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.net = model
        if self.dist.enabled:
            self.net = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if cuda else None)
        if cfg.run.compile:
            self.net = torch.compile(self.net)
        self.sampler = ShardedSampler(len(self.train_set), True, cfg.run.seed, self.dist.rank, self.dist.world)
        per_step = cfg.data.batch_size * cfg.optim.accumulate
        self.steps_per_epoch = max(1, math.ceil(len(self.sampler.indices()) / per_step))
        if cfg.run.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.run.max_steps_per_epoch)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_acc = -1.0
        self.stop_requested = None
        self.failures = FailureReport(self.train_set)
        self.tb = None

    def _amp_dtype(self):
        amp = self.cfg.run.amp
        if self.device.type != "cuda" or amp == "off":
            return None
        if amp == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    # ----- state
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step, "best_acc": self.best_acc, "rng": rng_state(),
                "config": self.cfg.to_dict(), "world": self.dist.world,
                "classes": getattr(self, "classes", None) or []}

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
        if not self.cfg.run.resume:
            return False
        found = newest_good_checkpoint(self.out)
        if found is None:
            return False
        path, state = found
        self.load_state_dict(state)
        if self.dist.main:
            log.info("resumed from %s (epoch %d, step %d in epoch)", path, self.epoch, self.step_in_epoch)
        return True

    # ----- signals
    def install_signal_handlers(self):
        def handler(signum, frame):
            self.stop_requested = signal.Signals(signum).name
        previous = {}
        for sig in (signal.SIGTERM, getattr(signal, "SIGUSR1", None)):
            if sig is not None:
                try:
                    previous[sig] = signal.signal(sig, handler)
                except ValueError:                  # not the main thread (e.g. some notebook set-ups)
                    pass
        return previous

    # ----- metrics
    def log_metrics(self, row: dict) -> None:
        if not self.dist.main:
            return
        path = self.out / "metrics.csv"
        new = not path.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        if self.tb is not None:
            for k in ("loss", "acc1", "acc5", "lr", "clips_per_s", "data_wait_frac"):
                if row.get(k) not in (None, ""):
                    self.tb.add_scalar(f"{row['split']}/{k}", float(row[k]), self.global_step)

    def _reduce(self, values: list[float]) -> list[float]:
        if not self.dist.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return t.tolist()

    # ----- one epoch
    def loader(self):
        self.train_set.set_epoch(self.epoch)
        start = self.step_in_epoch * self.cfg.data.batch_size * self.cfg.optim.accumulate
        self.sampler.set_epoch(self.epoch, start)
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=self.cfg.data.batch_size, sampler=self.sampler,
            num_workers=self.cfg.data.workers, pin_memory=self.device.type == "cuda",
            persistent_workers=False, drop_last=False,
            # Its own generator: creating a loader must not draw from the global RNG (exact resume).
            generator=torch.Generator().manual_seed(self.cfg.run.seed * 1009 + self.epoch))

    def train_epoch(self) -> dict:
        cfg = self.cfg
        self.net.train()
        if cfg.optim.freeze_bn:
            freeze_batchnorm(self.model)
        self.failures.reset()
        accumulate = cfg.optim.accumulate
        totals = {"loss": 0.0, "correct1": 0, "correct5": 0, "clips": 0}
        window = {"loss": 0.0, "correct1": 0, "clips": 0, "wait": 0.0, "start": time.perf_counter()}
        bar = None
        if cfg.run.progress and self.dist.main:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, desc=f"epoch {self.epoch}",
                       unit="step", leave=False)
        batches = iter(self.loader())
        non_blocking = self.device.type == "cuda"
        while self.step_in_epoch < self.steps_per_epoch:
            lr = lr_at(self.global_step, self.steps_per_epoch, cfg, self.dist.world)
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group["lr_mult"]
            got = 0
            for micro in range(accumulate):
                t0 = time.perf_counter()
                try:
                    clips, labels, _, failed = next(batches)
                except StopIteration:
                    break
                window["wait"] += time.perf_counter() - t0
                self.failures.update(failed)
                clips = clips.to(self.device, non_blocking=non_blocking).contiguous(memory_format=self.memory_format)
                labels = labels.to(self.device, non_blocking=non_blocking)
                sync = contextlib.nullcontext()
                if self.dist.enabled and micro < accumulate - 1:
                    sync = self.net.no_sync()
                with sync:
                    with self.autocast():
                        out = self.net(clips, return_heads=True)
                        loss = compute_loss(out, labels, cfg)
                    self.scaler.scale(loss / accumulate).backward()
                got += 1
                n = labels.shape[0]
                c1, c5 = topk_correct(out["logits"].detach().float(), labels)
                totals["loss"] += float(loss.detach()) * n
                totals["correct1"] += c1
                totals["correct5"] += c5
                totals["clips"] += n
                window["loss"] += float(loss.detach()) * n
                window["correct1"] += c1
                window["clips"] += n
            if got == 0:
                break
            if cfg.optim.clip_grad:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.step_in_epoch += 1
            self.global_step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{window['loss'] / max(1, window['clips']):.3f}", lr=f"{lr:.3g}")
            if self.global_step % cfg.run.log_every == 0 or self.step_in_epoch == self.steps_per_epoch:
                elapsed = time.perf_counter() - window["start"]
                loss_sum, c1, clips_n = self._reduce([window["loss"], window["correct1"], window["clips"]])
                self.log_metrics({"time": time.time(), "epoch": self.epoch, "step": self.step_in_epoch,
                                  "global_step": self.global_step, "split": "train",
                                  "loss": loss_sum / max(1, clips_n), "acc1": c1 / max(1, clips_n), "acc5": "",
                                  "lr": lr, "clips_per_s": clips_n / max(1e-9, elapsed),
                                  "data_wait_frac": window["wait"] / max(1e-9, elapsed),
                                  "failed_videos": self.failures.count})
                window = {"loss": 0.0, "correct1": 0, "clips": 0, "wait": 0.0, "start": time.perf_counter()}
            if cfg.run.checkpoint_every and self.global_step % cfg.run.checkpoint_every == 0:
                self.save()
            if self.stop_requested:
                break
        if bar is not None:
            bar.close()
        loss_sum, c1, c5, clips_n = self._reduce([totals["loss"], totals["correct1"], totals["correct5"], totals["clips"]])
        if self.failures.count and self.dist.main:
            log.warning("epoch %d: %s", self.epoch, self.failures.summary())
        return {"loss": loss_sum / max(1, clips_n), "acc1": c1 / max(1, clips_n), "acc5": c5 / max(1, clips_n),
                "clips": clips_n, "failed": self.failures.count}

    @torch.no_grad()
    def evaluate_clips(self) -> dict:
        """Single-view validation, sharded over processes (each sample counted once)."""
        if self.val_set is None:
            return {}
        self.net.eval()
        sampler = ShardedSampler(len(self.val_set), False, 0, self.dist.rank, self.dist.world, pad=False)
        loader = torch.utils.data.DataLoader(self.val_set, batch_size=self.cfg.data.batch_size, sampler=sampler,
                                             num_workers=self.cfg.data.workers, generator=torch.Generator())
        loss_sum, c1, c5, n = 0.0, 0, 0, 0
        for clips, labels, _, _ in loader:
            if clips.dim() == 6:                      # (N, views, C, T, H, W): one view in validation
                clips = clips[:, 0]
            clips = clips.to(self.device).contiguous(memory_format=self.memory_format)
            labels = labels.to(self.device)
            with self.autocast():
                logits = self.model(clips)
            loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
            a, b = topk_correct(logits.float(), labels)
            c1, c5, n = c1 + a, c5 + b, n + labels.shape[0]
        loss_sum, c1, c5, n = self._reduce([loss_sum, c1, c5, n])
        return {"loss": loss_sum / max(1, n), "acc1": c1 / max(1, n), "acc5": c5 / max(1, n), "clips": n}

    def fit(self) -> dict:
        cfg = self.cfg
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out / "config.yaml")
            if cfg.run.tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                    self.tb = SummaryWriter(self.out / "tensorboard")
                except ImportError:
                    log.warning("run.tensorboard: the tensorboard package is not installed; skipping")
        self.try_resume()
        previous = self.install_signal_handlers()
        result = {"status": "done"}
        try:
            while self.epoch < cfg.optim.epochs:
                stats = self.train_epoch()
                if self.stop_requested:
                    self.save()
                    if self.dist.main:
                        log.warning("%s received: checkpoint written at step %d; stopping",
                                    self.stop_requested, self.global_step)
                    result = {"status": "preempted", "signal": self.stop_requested}
                    break
                result["train"] = stats
                self.epoch += 1
                self.step_in_epoch = 0
                best = False
                if cfg.run.eval_every and (self.epoch % cfg.run.eval_every == 0 or self.epoch == cfg.optim.epochs):
                    val = self.evaluate_clips()
                    if val:
                        result["val"] = val
                        best = val["acc1"] > self.best_acc
                        self.best_acc = max(self.best_acc, val["acc1"])
                        self.log_metrics({"time": time.time(), "epoch": self.epoch - 1, "step": self.steps_per_epoch,
                                          "global_step": self.global_step, "split": "val", **val, "lr": ""})
                if self.dist.main:
                    val_text = f", val acc {result['val']['acc1']:.3f}" if "val" in result else ""
                    print(f"epoch {self.epoch - 1}: train loss {stats['loss']:.3f} acc {stats['acc1']:.3f}{val_text}",
                          flush=True)
                self.save(best=best)
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            if self.tb is not None:
                self.tb.close()
        result.update(epoch=self.epoch, global_step=self.global_step, best_acc=self.best_acc)
        return result


def train(cfg: Config) -> dict:
    """Train with ``cfg`` in this process (and its torchrun peers). Returns the final stats."""
    device_kind = "cuda" if (cfg.run.device == "cuda" or (cfg.run.device == "auto" and torch.cuda.is_available())) else "cpu"
    d = setup_distributed(device_kind)
    try:
        return Trainer(cfg, d).fit()
    finally:
        cleanup_distributed(d)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="lgd train", description="Train an LGD model (alone, or under torchrun for DDP).",
        epilog="Overrides: section.key=value, e.g. optim.lr=0.05 data.batch_size=8 run.out_dir=runs/x")
    parser.add_argument("--config", required=True, help="a recipe name (lgd_tutorial/configs) or a YAML file")
    parser.add_argument("overrides", nargs="*", help="key=value")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
        result = train(cfg)
    except ConfigError as e:
        print(f"lgd train: error: {e}", file=sys.stderr)
        return 2
    if result["status"] == "preempted":
        return PREEMPTED
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: epoch {result['epoch']}, step {result['global_step']}, best val acc {result['best_acc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
