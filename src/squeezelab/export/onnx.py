"""ONNX files: written by PyTorch's torch.export-based exporter, run with onnxruntime.

The exporter is ``torch.onnx.export(..., dynamo=True)``, not the TorchScript-based ``dynamo=False`` one:
the latter is deprecated since PyTorch 2.9 ("will be removed") and cannot export ``alexnet_cifar`` (or
``alexnet``) at any input whose feature map is not a multiple of the adaptive pooling's output (it stops at
"output size that are not factor of input size", e.g. at 3x20x20 and 3x40x40), while the dynamo exporter
exports every registry model at every size it takes. It costs a dependency (onnxscript) and one to two
seconds per export.

onnx, onnxscript and onnxruntime are the optional ``onnx`` extra, imported only when needed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import warnings
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn

from squeezelab.errors import SqueezelabError

# The torchlib operators are written for opset 18: asking for it skips a version conversion, and any
# onnxruntime since 1.14 runs it.
OPSET = 18
META_KEY = "squeezelab"  # the metadata_props entry holding the JSON metadata


def _require(module: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SqueezelabError(f"{purpose} needs the onnx extra: pip install 'squeezelab[onnx]'") from None


@contextlib.contextmanager
def _quiet():
    """Silence what the exporter prints that a user can do nothing about.

    It logs a warning per torchvision operator it finds missing (this package has no torchvision) and
    raises deprecation warnings from inside PyTorch.
    """
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def serialize(model: nn.Module, example: Tensor, meta: dict) -> bytes:
    """The ONNX file of ``model`` in eval mode, batch dimension dynamic, other dimensions those of ``example``.

    ``example`` must have a batch of at least 2: torch.export fixes any dimension it sees at size 1.
    """
    for module in ("onnx", "onnxscript"):
        _require(module, "ONNX export")
    with _quiet():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    proto = program.model_proto
    proto.metadata_props.add(key=META_KEY, value=json.dumps(meta))
    return proto.SerializeToString()


class OnnxModel:
    """An ONNX file in an onnxruntime session: call it on a float32 batch; ``meta_json`` is its metadata."""

    def __init__(self, source: bytes | Path) -> None:
        ort = _require("onnxruntime", "running an ONNX file")
        options = ort.SessionOptions()
        # One thread setting (torch.set_num_threads, OMP_NUM_THREADS) governs both runtimes.
        options.intra_op_num_threads = torch.get_num_threads()
        model = source if isinstance(source, bytes) else str(source)
        try:
            self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types, none of them a common base
            name = "the exported ONNX model" if isinstance(source, bytes) else source
            raise SqueezelabError(f"cannot read {name} as an ONNX model: {exc}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.meta_json = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)

    def __call__(self, x: Tensor) -> Tensor:
        (output,) = self.session.run(None, {self.input_name: x.detach().float().cpu().numpy()})
        return torch.from_numpy(output)
