"""A run's folder: ``config.json``, ``metrics.jsonl`` and the ``last``, ``best`` and ``swa`` checkpoints.

Every process reads it; only rank 0 writes, so that processes never race on a file. A run without a folder
reads and writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from squeezelab.checkpoint import load_checkpoint, save_checkpoint
from squeezelab.errors import SqueezelabError
from squeezelab.io import atomic_write
from squeezelab.train.config import TrainConfig


class RunDir:
    def __init__(self, path: Path | None, is_main: bool) -> None:
        self.path = path
        self.writes = path is not None and is_main

    def start(self, cfg: TrainConfig) -> None:
        if self.writes:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path / "config.json", json.dumps(cfg.to_dict(), indent=2))

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
