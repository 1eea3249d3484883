"""Stochastic weight averaging (Izmailov et al. 2018): the mean of the weights after each epoch of its phase.

The last ``swa_share`` of a run trains at a constant rate (see ``schedules``); after each of its epochs the
weights join a running average. Averaged weights never ran, so no batch-norm statistics belong to them: they
are recomputed on the training split before the average is scored, and it is the average that the run
validates and, at its end, keeps.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from squeezelab.data import BatchTransform
from squeezelab.train.config import TrainConfig
from squeezelab.train.device import autocast_for, gather_batch
from squeezelab.train.distributed import ProcessGroup


def averaging(cfg: TrainConfig, epoch: int, share_done: float) -> bool:
    """Whether ``epoch`` trains at the constant rate of the SWA phase, so that its weights join the average."""
    if not cfg.sched.swa_share:
        return False
    done = share_done if cfg.sched.time_schedule else epoch / cfg.sched.epochs
    return done >= 1 - cfg.sched.swa_share


class WeightAverage:
    """The running average of a model's weights, and the training images its BN statistics are computed on.

    ``images`` are the training split as the trainer placed them; ``transform`` normalises them.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        images: torch.Tensor,
        transform: BatchTransform,
        device: torch.device,
        group: ProcessGroup,
    ) -> None:
        self.average = AveragedModel(model)
        self.cfg, self.images, self.transform, self.device, self.group = cfg, images, transform, device, group
        self.stale = False  # its BN statistics are those of older weights

    @property
    def epochs(self) -> int:
        """How many epochs the average holds so far."""
        return int(self.average.n_averaged)

    def add(self, model: nn.Module) -> None:
        self.average.update_parameters(model)
        self.stale = True

    def scored_model(self) -> nn.Module:
        """The averaged model, with batch-norm statistics of its own weights."""
        if self.stale:
            self.recompute_batch_norm(self.average.module)
            self.stale = False
        return self.average.module

    def adopt_average(self, model: nn.Module) -> None:
        """Give ``model`` the average's weights and BN statistics."""
        model.load_state_dict(self.scored_model().state_dict())

    @torch.no_grad()
    def recompute_batch_norm(self, model: nn.Module) -> None:
        """BN running statistics for averaged weights: a cumulative average over the (un-augmented) training split.

        Each process passes over its shard; the statistics are then pooled over the processes.
        """
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        was_training = model.training
        model.train()
        # In a seeded random order, the same in every process: train-mode BN normalises each batch by its own
        # statistics, so batches must mix the classes as training batches do. In storage order, a split kept
        # class by class (a sorted image folder) gives single-class batches and statistics that fit no input.
        generator = torch.Generator(device=self.device).manual_seed(self.cfg.run.seed)
        order = torch.randperm(len(self.images), generator=generator, device=self.device)
        order = self.group.shard(order)
        local_batch = self.cfg.optim.batch_size // self.group.world_size
        with autocast_for(self.cfg.compute, self.device):
            for begin in range(0, len(order), local_batch):
                images, _ = gather_batch(self.images, None, order[begin : begin + local_batch], self.device)
                model(self.transform(images, train=False))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
        if self.group.world_size > 1:
            for m in norms:
                moments = torch.stack([m.running_mean, m.running_var + m.running_mean**2])
                mean, mean_square = self.group.sum(moments) / self.group.world_size
                m.running_mean.copy_(mean)
                m.running_var.copy_(mean_square - mean**2)
