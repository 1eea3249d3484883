"""The things that change when training runs in several processes, kept in one place.

Sharding the epoch's sample order, averaging gradients through DDP, summing metrics over processes, letting
rank 0's clock stand for every process's, and letting only rank 0 write. With one process (the default) each
is a no-op; under ``torchrun`` they follow ``torch.distributed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, order: torch.Tensor, equal: bool = False) -> torch.Tensor:
        """This process's share of a sample order.

        Strided, so the k-th local batches of all processes together are exactly the k-th global batch of the
        unsharded order. ``equal`` first cuts the order to a multiple of the world size (at most N - 1 samples
        left out): in training every process must take the same number of steps, or DDP waits forever.
        """
        if equal and self.world_size > 1:
            order = order[: len(order) - len(order) % self.world_size]
        return order[self.rank :: self.world_size]

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module training steps go through: with several processes DDP, which averages their gradients."""
        if self.world_size == 1:
            return model
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a tensor of metric totals over all processes."""
        if self.world_size > 1:
            values = values.clone()
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def main_value(self, value: float, device: torch.device | None = None) -> float:
        """Rank 0's ``value`` on every process.

        For what is read from a local clock, such as the seconds trained so far: were each process to read its
        own, one could stop a step before the others and leave them waiting in DDP's all-reduce, or set another
        learning rate. ``device`` is where the backend communicates (CUDA for NCCL).
        """
        if self.world_size == 1:
            return value
        shared = torch.tensor([value], dtype=torch.float64, device=device)
        dist.broadcast(shared, src=0)
        return shared.item()


def init_distributed(device: torch.device) -> ProcessGroup:
    """Join the process group that ``torchrun`` describes in the environment (gloo on CPU, NCCL on CUDA).

    A single process (no ``WORLD_SIZE`` above 1) stays alone; an already initialised group is kept.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return current_group()


def finish_distributed() -> None:
    """Leave the process group together with the other processes.

    Rank 0 writes the last checkpoint after the others are done; a process that tears down gloo while its
    peer is still busy can abort ("terminate called without an active exception"), so all meet first.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def current_group() -> ProcessGroup:
    if dist.is_available() and dist.is_initialized():
        return ProcessGroup(dist.get_rank(), dist.get_world_size())
    return ProcessGroup()
