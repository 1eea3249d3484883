"""Opening an exported file for inference: a callable on normalised batches plus the metadata inside the file."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from squeezelab.data import BatchTransform
from squeezelab.errors import SqueezelabError
from squeezelab.export.onnx import OnnxModel
from squeezelab.export.torchscript import TorchScriptModel

META_FORMAT = "squeezelab-export"
META_VERSION = 1
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


def format_of(path: str | Path) -> str | None:
    """'onnx' or 'torchscript' for a file name an export would have, else None."""
    suffix = Path(path).suffix.lower()
    return next((fmt for fmt, known in SUFFIXES.items() if suffix == known), None)


def load_runner(fmt: str, source: bytes | Path) -> OnnxModel | TorchScriptModel:
    """The file (or its bytes) in its runtime: onnxruntime for ONNX, PyTorch for TorchScript."""
    return OnnxModel(source) if fmt == "onnx" else TorchScriptModel(source)


def parse_meta(text: str | None, name: str | Path) -> dict:
    if text is None:
        raise SqueezelabError(f"{name} carries no squeezelab metadata; make it with 'squeezelab export'")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SqueezelabError(f"{name} has unreadable squeezelab metadata: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise SqueezelabError(f"{name} carries metadata that squeezelab did not write")
    if meta.get("version", 0) > META_VERSION:
        raise SqueezelabError(f"{name} was exported by a newer squeezelab (format version {meta['version']})")
    return meta


@dataclass
class ExportedModel:
    """An exported file ready to run: call it on normalised float32 batches, as the PyTorch model."""

    run: Callable[[Tensor], Tensor]
    meta: dict
    path: Path

    def __call__(self, x: Tensor) -> Tensor:
        return self.run(x)

    @property
    def transform(self) -> BatchTransform:
        return BatchTransform(tuple(self.meta["mean"]), tuple(self.meta["std"]))

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["input_shape"])

    @property
    def kind(self) -> str:
        return self.meta["kind"]


def open_exported(path: str | Path) -> ExportedModel:
    """Open a ``.onnx`` file (with onnxruntime) or a TorchScript ``.pt`` file written by ``export``."""
    path = Path(path)
    fmt = format_of(path)
    if fmt is None:
        raise SqueezelabError(f"{path} is not an exported model: expected a .onnx or TorchScript .pt file")
    if not path.is_file():
        raise SqueezelabError(f"exported model not found: {path}")
    runner = load_runner(fmt, path)
    return ExportedModel(runner, parse_meta(runner.meta_json, path), path)
