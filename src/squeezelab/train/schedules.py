"""What changes over a run: the learning-rate factor of each step, and the image size of each epoch.

Progress is the share of the epochs' steps taken or, with ``time_schedule``, the share of ``max_time`` spent
or of the epochs' steps taken, whichever is further, so the schedule completes with the budget that runs
out first.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from squeezelab.train.config import TrainConfig

# The usual one-cycle split without an explicit warm-up: 30% of the run up, 70% down.
ONECYCLE_WARMUP_SHARE = 0.3


def lr_lambda(cfg: TrainConfig, steps_per_epoch: int, share_done: Callable[[], float]) -> Callable[[int], float]:
    """The learning-rate factor of each optimizer step, for ``LambdaLR``; ``share_done()`` is the run's progress.

    A time-keyed one-cycle keeps its warm-up in steps, where the optimizer's early stability lies, and decays
    to zero as the run ends.
    """
    sched = cfg.sched
    # With SWA the schedule runs its course in the first (1 - swa_share) of the run, decaying to the averaging
    # phase's constant rate rather than to zero, as in Izmailov et al. (2018).
    main_share = 1 - sched.swa_share
    swa_factor = swa_lr(cfg) / cfg.optim.lr
    total = max(1, sched.epochs * steps_per_epoch)
    main_total = max(1, main_share * total)
    warmup = sched.warmup_epochs * steps_per_epoch
    if sched.schedule == "onecycle" and not warmup and not sched.time_schedule:
        warmup = ONECYCLE_WARMUP_SHARE * main_total

    def factor(step: int) -> float:
        if not sched.swa_share:
            return main_factor(step)
        done = share_done() if sched.time_schedule else step / total
        if done >= main_share:
            return swa_factor
        # A one-cycle run without warm-up epochs rises for the first 30% of its (main) course.
        rising = sched.schedule == "onecycle" and not warmup and done / main_share < ONECYCLE_WARMUP_SHARE
        if step < warmup or rising:
            return main_factor(step)
        return swa_factor + (1 - swa_factor) * main_factor(step)

    def main_factor(step: int) -> float:
        if sched.time_schedule:
            return _time_keyed_factor(sched.schedule, share_done() / main_share, step, warmup)
        if step < warmup:
            return (step + 1) / warmup
        if sched.schedule == "step":
            return sched.gamma ** ((step // steps_per_epoch) // sched.step_size)
        progress = min(1.0, (step - warmup) / max(1.0, main_total - warmup))
        if sched.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if sched.schedule == "onecycle":
            return max(0.0, 1 - progress)
        return 1.0

    return factor


def swa_lr(cfg: TrainConfig) -> float:
    return cfg.sched.swa_lr if cfg.sched.swa_lr is not None else cfg.optim.lr / 4


def _time_keyed_factor(schedule: str, done: float, step: int, warmup_steps: float) -> float:
    done = min(1.0, done)
    if schedule == "onecycle" and not warmup_steps:
        return min(done / ONECYCLE_WARMUP_SHARE, (1 - done) / (1 - ONECYCLE_WARMUP_SHARE))
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    if schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * done))
    if schedule == "onecycle":
        return warm * (1 - done)
    return warm


def time_share(cfg: TrainConfig, seconds: float, steps: int, steps_per_epoch: int) -> float:
    """How far a time-keyed run is: the share of max_time or of the epochs' steps, whichever is further."""
    return max(seconds / cfg.sched.max_time, steps / (cfg.sched.epochs * steps_per_epoch))


def low_res_size(cfg: TrainConfig, epoch: int, share_done: float) -> int | None:
    """The image size ``epoch`` trains at under progressive resizing; None for the images' own size.

    The first ``low_res_share`` of the run (of its epochs, or with ``time_schedule`` of its progress) trains
    at the low resolutions, an equal part of it at each size in turn.
    """
    sizes, share = cfg.augment.low_res, cfg.augment.low_res_share
    if not sizes:
        return None
    if cfg.sched.time_schedule:
        if share_done >= share:
            return None
        return sizes[int(share_done / share * len(sizes))]
    low_res_epochs = round(share * cfg.sched.epochs)
    if epoch >= low_res_epochs:
        return None
    return sizes[epoch * len(sizes) // low_res_epochs]
