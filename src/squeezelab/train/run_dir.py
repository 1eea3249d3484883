"""A run's folder: ``config.json``, ``metrics.jsonl`` and the ``last``, ``best`` and ``swa`` checkpoints.

Every process reads it; only rank 0 writes, so that processes never race on a file. A run without a folder
reads and writes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from squeezelab.checkpoint import load_checkpoint, save_checkpoint
from squeezelab.errors import SqueezelabError, os_error
from squeezelab.io import atomic_write
from squeezelab.train.config import TrainConfig


class RunDir:
    def __init__(self, path: Path | None, is_main: bool) -> None:
        self.path = path
        self.writes = path is not None and is_main
        self.created = False

    def start(self, cfg: TrainConfig, resume: bool) -> None:
        """Write ``config.json``; a new run first claims the folder, so that of two runs given one folder the
        second is refused instead of interleaving its epochs with the first's."""
        if not self.writes:
            return
        config = self.path / "config.json"
        if not resume:
            try:
                self.path.mkdir(parents=True)
                self.created = True
            except FileExistsError:
                pass
            except OSError as exc:
                raise os_error(exc, self.path, "create the run directory") from None
            try:
                os.close(os.open(config, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                raise SqueezelabError(
                    f"{self.path} already holds a run (its config.json exists); choose another name, or resume it"
                ) from None
            except OSError as exc:
                raise os_error(exc, config, "start the run") from None
        atomic_write(config, json.dumps(cfg.to_dict(), indent=2))

    def abandon(self) -> None:
        """After a run failed before its first checkpoint: remove what it wrote, so that its name is free again."""
        if not self.writes or (self.path / "last.safetensors").exists():
            return
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for name in ("config.json", "metrics.jsonl"):
            (self.path / name).unlink(missing_ok=True)

    def append(self, metrics: dict) -> None:
        if self.writes:
            with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(metrics) + "\n")

    def save(
        self,
        name: str,
        model: nn.Module,
        meta: dict,
        optimizer: torch.optim.Optimizer | None = None,
        average: nn.Module | None = None,
    ) -> None:
        if self.writes:
            save_checkpoint(self.path / name, model, meta, optimizer, average)

    def last(self) -> tuple[Path, dict[str, torch.Tensor], dict]:
        """The last checkpoint's stem, weights and sidecar: where a resumed run goes on from."""
        stem = self.path / "last"
        if not stem.with_suffix(".safetensors").exists():
            raise SqueezelabError(f"{self.path} has no finished epoch to resume from; start the run again")
        return stem, *load_checkpoint(stem.with_suffix(".safetensors"))

    def epochs(self, count: int) -> list[dict]:
        """The metrics of the first ``count`` epochs; lines after them are dropped, from the file too.

        Epochs logged after the last checkpoint (a crash between the two writes) are trained again.
        """
        path = self.path / "metrics.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        epochs = [json.loads(line) for line in lines if line.strip()][:count]
        if self.writes:
            atomic_write(path, "".join(json.dumps(epoch) + "\n" for epoch in epochs))
        return epochs
