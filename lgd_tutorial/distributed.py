"""Processes: joining a torchrun process group, and the order in which each process sees the data.

``lgd train`` runs alone or under ``torchrun`` (which sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR/PORT). Started by ``torchrun``, ``setup`` joins the
process group (NCCL on GPUs, gloo on CPU), even with one process: the model
is then wrapped in DistributedDataParallel exactly as with many, so
``torchrun --nproc-per-node 1`` runs the multi-GPU code path on one GPU.
``ShardedSampler`` deals each process its share of every epoch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    joined: bool = False            # in a process group (started by torchrun), even when alone in it

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether the model is wrapped in DDP and results are summed over a process group."""
        return self.joined or self.world > 1

    def barrier(self) -> None:
        """Wait for every process (nothing when alone)."""
        if self.enabled:
            dist.barrier()

    def all_sum(self, values: list[float], device: torch.device | None = None) -> list[float]:
        """Sum ``values`` over all processes (the values themselves when alone)."""
        if not self.enabled:
            return values
        on = device if device is not None and device.type == "cuda" else "cpu"
        t = torch.tensor(values, dtype=torch.float64, device=on)
        dist.all_reduce(t)
        return t.tolist()


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (or another launcher that sets RANK and MASTER_ADDR)."""
    return "RANK" in os.environ and "MASTER_ADDR" in os.environ


def setup(device_kind: str) -> Dist:
    """Join the process group when started by torchrun (one process or many); alone otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not launched_by_torchrun():
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_kind == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(rank, world, local_rank, joined=True)


def cleanup(d: Dist) -> None:
    """A barrier before destroying the group: gloo may abort at exit when a peer is still talking."""
    if d.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class ShardedSampler(torch.utils.data.Sampler):
    """The indices of one epoch for one process, from a given position on.

    A permutation seeded by (seed, epoch), padded to a multiple of the number
    of processes by repeating its start (as DistributedSampler does), and
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
