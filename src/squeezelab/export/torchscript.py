"""TorchScript files: a traced model, with the metadata as an extra file inside the archive.

Tracing, not scripting: the models' forward passes are plain Python (shape checks, loops over modules)
that ``torch.jit.script`` rejects, and with the spatial size fixed a trace records everything that varies,
the batch size, as a dynamic dimension. TorchScript is deprecated in PyTorch (its calls warn so) but still
the format that C++ (libtorch) deployments load.

A TorchScript file holds code that the TorchScript interpreter runs: load only files you trust.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from squeezelab.errors import SqueezelabError

META_FILE = "squeezelab.json"  # the extra file holding the JSON metadata


def serialize(model: nn.Module, example: Tensor, meta: dict) -> bytes:
    """The TorchScript archive of ``model`` traced on ``example``, batch dimension dynamic."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # The models' input checks compare the shape with Python ints; the trace keeps their outcome as a
        # constant, which holds for every batch size since only the batch dimension varies.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with torch.no_grad():
            traced = torch.jit.trace(model, example)
        torch.jit.save(traced, buffer, _extra_files={META_FILE: json.dumps(meta)})
    return buffer.getvalue()


class TorchScriptModel:
    """A TorchScript file: call it on a float32 batch; ``meta_json`` is its metadata (None if it has none)."""

    def __init__(self, source: bytes | Path) -> None:
        extra = {META_FILE: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(
                    io.BytesIO(source) if isinstance(source, bytes) else str(source),
                    map_location="cpu",
                    _extra_files=extra,
                )
        except (RuntimeError, ValueError) as exc:
            name = "the exported TorchScript model" if isinstance(source, bytes) else source
            first_line = str(exc).strip().splitlines()[0]
            raise SqueezelabError(f"cannot read {name} as a TorchScript file: {first_line}") from None
        self.module.eval()
        self.meta_json = extra[META_FILE].decode() if extra[META_FILE] else None

    def __call__(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.module(x.float())
