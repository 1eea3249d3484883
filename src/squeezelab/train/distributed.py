"""The three things that change when training runs in several processes, kept in one place.

Sharding the epoch's sample order, summing metrics over processes, and letting only rank 0 write. With one
process (the default) each is a no-op; under ``torchrun`` they follow ``torch.distributed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This process's share of an epoch's sample order (strided, so shares differ by at most one)."""
        return order[self.rank :: self.world_size]

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a tensor of metric totals over all processes."""
        if self.world_size > 1:
            values = values.clone()
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values


def current_group() -> ProcessGroup:
    if dist.is_available() and dist.is_initialized():
        return ProcessGroup(dist.get_rank(), dist.get_world_size())
    return ProcessGroup()
