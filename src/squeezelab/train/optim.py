"""The optimizer of a run, and airbench's Lookahead weight averaging on top of it.

Lookahead (Jordan 2024, after Zhang et al. 2019): the optimizer moves the *fast* weights; every few steps a
*slow* copy moves part of the way towards them, ``slow += (1 - decay) * (fast - slow)``, and the fast weights
restart from it. ``decay`` grows with the cube of the training progress, from 0 (plain training early on,
when averaging would only slow learning) to ``0.95 ** 5`` at the end, where averaging the last steps of a
noisy high-learning-rate run is worth most. Batch-norm running statistics are averaged with the weights so
that the two stay consistent.

The trainer starts a ``Lookahead`` at every epoch and synchronises it at the epoch's end, so a checkpoint
holds the slow weights and a resumed run continues exactly: there is no state beyond the model's own.
"""

from __future__ import annotations

import torch
from torch import nn

from squeezelab.errors import ConfigError
from squeezelab.train.config import OptimConfig


def make_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not cfg.decay_norm_and_bias:
        # Vectors are biases and BN scales/shifts: decaying them pulls activations to zero instead of
        # regularising filters.
        params = [
            {"params": [p for p in params if p.dim() > 1]},
            {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
        ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; use sgd, adam or adamw")


class Lookahead:
    def __init__(
        self, model: nn.Module, total_steps: int, step: int = 0, every: int = 5, final_decay: float = 0.95**5
    ) -> None:
        """``step``: the optimizer steps the run has already taken; ``total_steps``: all it will take."""
        self.total_steps = max(1, total_steps)
        self.step = step
        self.every = every
        self.final_decay = final_decay
        # state_dict() tensors share storage with the parameters and buffers the optimizer updates in place.
        self.fast = [t for t in model.state_dict().values() if t.is_floating_point()]
        self.slow = [t.detach().clone() for t in self.fast]
        self.pending = 0

    def decay(self, step: int) -> float:
        return self.final_decay * (min(step, self.total_steps) / self.total_steps) ** 3

    def after_step(self) -> None:
        """Call after every optimizer step."""
        self.step += 1
        self.pending += 1
        if self.pending == self.every:
            self.sync()

    @torch.no_grad()
    def sync(self) -> None:
        """Move the slow weights towards the fast ones and restart the fast ones from them."""
        if not self.pending:
            return
        weight = 1 - self.decay(self.step)
        for slow, fast in zip(self.slow, self.fast, strict=True):
            slow.lerp_(fast, weight)
            fast.copy_(slow)
        self.pending = 0
