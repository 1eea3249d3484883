"""What a run shows on the terminal: a bar over each epoch's batches and a line per epoch; only rank 0 shows.

``verbose``, as in Keras: 0 silent, 1 the bar and the lines, 2 the lines alone. Everything goes to stderr, so
that a command's stdout holds its result alone.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from torch import Tensor
from tqdm import tqdm

from squeezelab.train.config import ScheduleConfig
from squeezelab.train.tasks import Task


class Progress:
    def __init__(self, sched: ScheduleConfig, verbose: int, is_main: bool) -> None:
        self.sched, self.is_main = sched, is_main
        self.bars = verbose == 1 and is_main
        self.lines = bool(verbose) and is_main

    def label(self, number: int, share_done: float) -> str:
        # A time-keyed run ends when its time or its epochs run out, mostly the time on a CPU.
        if self.sched.time_schedule:
            return f"{number} ({share_done:.0%} of {self.sched.max_time:g} s or {self.sched.epochs} epochs)"
        return f"{number}/{self.sched.epochs}"

    def epoch_bar(self, number: int, batches: int, share_done: float) -> EpochBar:
        return EpochBar(f"epoch {self.label(number, share_done)}", batches, self.bars)

    def epoch_line(self, metrics: dict, share_done: float) -> None:
        if not self.lines:
            return
        shown = {k: v for k, v in metrics.items() if k not in ("epoch", "time", "val_seconds") and v is not None}
        text = "  ".join(f"{k} {v:.4g}" for k, v in shown.items())
        tqdm.write(f"epoch {self.label(metrics['epoch'], share_done)}  {text}", file=sys.stderr)

    def resumed(self, trained_with: int, world_size: int, batch_size: int) -> None:
        if trained_with != world_size and self.is_main:
            print(
                f"resuming a run trained with {trained_with} process(es) in {world_size}: the global batch "
                f"stays {batch_size}, each process now takes {batch_size // world_size}",
                file=sys.stderr,
            )

    def interrupted(self, epoch: int, finished: int, run_dir: Path | None) -> None:
        """After Ctrl-C in ``epoch`` (from 0), with ``finished`` epochs checkpointed: what is kept, how to go on."""
        if not self.is_main:
            return
        kept = f"the checkpoint of epoch {finished} is kept" if finished else "no epoch had finished, nothing to resume"
        print(f"\ninterrupted in epoch {epoch + 1}; {kept}", file=sys.stderr)
        if run_dir is not None and finished:
            print(f"resume with: squeezelab train --resume {run_dir}", file=sys.stderr)


class EpochBar:
    def __init__(self, description: str, batches: int, shown: bool) -> None:
        self.shown = shown
        self.bar = tqdm(
            total=batches, desc=description, unit="batch", disable=not shown, leave=False, dynamic_ncols=True
        )

    def step(self, step: int, task: Task, totals: Tensor, start: float) -> None:
        """After training step ``step`` (from 0), with the epoch's metric totals so far; ``start``: its clock."""
        if not self.shown:
            return
        self.bar.update()
        if step % 10 == 0:  # summarising syncs with the device, so not on every step
            running = task.summarize(totals)
            shown = {k: f"{v:.4g}" for k, v in running.items() if k in ("loss", "acc1", "psnr", "bpp")}
            self.bar.set_postfix(**shown, img_s=f"{totals[-1].item() / (time.perf_counter() - start):.0f}")

    def close(self) -> None:
        self.bar.close()
