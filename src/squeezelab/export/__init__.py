"""Deployment files: ``export`` a model to ONNX or TorchScript, verified; ``open_exported`` runs one.

An exported file holds the network alone, with a dynamic batch dimension and the spatial size fixed at
export (SqueezeNet's ceil-mode pooling and the adaptive pooling layers compute their windows from the
input size, so a graph with a dynamic height and width would not be the model that was checked). What
``predict`` needs besides the network travels in the file as JSON metadata: the model name and arguments,
kind, precision, input shape, class names and the normalisation, which stays outside the network exactly
as in the PyTorch path (uint8 pixels / 255, minus mean, over std).

Every export is verified by default before anything is written: the file's bytes are run in their own
runtime (onnxruntime, or PyTorch for TorchScript) on the same inputs as the PyTorch model in eval mode, at
batch 1 and 5; fp32 outputs must agree within 1e-4 (largest absolute difference).

``int8=True`` (ONNX only) quantizes that verified fp32 graph with onnxruntime into QDQ form, calibrated on
training images of the checkpoint's dataset, and checks the result on its held-out images against the fp32
PyTorch model: classifiers must give the same top-1 class for at least 99% of them, autoencoders a
reconstruction MSE at most 10% above the fp32 one (``export/int8.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from squeezelab.checkpoint import Checkpoint
from squeezelab.data import BatchTransform
from squeezelab.errors import InputShapeError, SqueezelabError
from squeezelab.export import int8 as int8_export
from squeezelab.export import onnx, torchscript
from squeezelab.export.runtime import (
    META_FORMAT,
    META_VERSION,
    SUFFIXES,
    ExportedModel,
    format_of,
    load_runner,
    open_exported,
)
from squeezelab.export.verify import Verification, VerificationError, verify_fp32, verify_int8
from squeezelab.inference import open_checkpoint
from squeezelab.io import atomic_write
from squeezelab.models import Autoencoder, model_info

FORMATS = tuple(SUFFIXES)
_SERIALIZERS = {"onnx": onnx.serialize, "torchscript": torchscript.serialize}
_EXAMPLE_BATCH = 2  # torch.export would fix a batch dimension it sees at size 1
_VERIFY_BATCHES = (1, 5)

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "ExportResult",
    "ExportedModel",
    "Verification",
    "VerificationError",
    "export",
    "format_of",
    "open_exported",
]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    file_bytes: int
    input_shape: tuple[int, int, int]
    meta: dict
    checks: tuple[Verification, ...]  # in the order they ran: the fp32 graph, then the int8 file; () if skipped

    @property
    def verification(self) -> Verification | None:
        """The check of the file as written."""
        return self.checks[-1] if self.checks else None


def _model_meta(model: nn.Module) -> dict:
    """Metadata of a bare model: no class names, and its own input size where it has one."""
    spec = getattr(model, "squeezelab_spec", None)
    if isinstance(model, Autoencoder):
        shape = [model.in_chans, *model.img_size]
    elif spec is not None:
        shape = list(model_info(spec["name"]).default_input)
        shape[0] = getattr(model, "in_chans", shape[0])
    else:
        shape = None
    return {"model": spec, "input_shape": shape, "classes": []}


def _checkpoint_meta(ckpt: Checkpoint) -> dict:
    data = ckpt.meta["data"]
    return {
        "model": ckpt.meta["model"],
        "input_shape": list(data["input_shape"]),
        "classes": data["classes"],
        "mean": list(data["mean"]),
        "std": list(data["std"]),
    }


def _resolve_shape(input_size: tuple[int, ...] | None, default: list[int] | None) -> tuple[int, int, int]:
    """(C, H, W) from ``input_size`` given as (C, H, W) or (H, W), the channels then coming from ``default``."""
    if input_size is None:
        if default is None:
            raise SqueezelabError("this model has no known input size; pass input_size=(C, H, W)")
        return tuple(default)
    size = tuple(int(n) for n in input_size)
    if len(size) == 2:
        if default is None:
            raise SqueezelabError("this model's channel count is unknown; pass input_size=(C, H, W)")
        size = (default[0], *size)
    if len(size) != 3 or min(size) < 1:
        raise SqueezelabError(f"the input size must be (C, H, W) or (H, W) of positive integers, got {input_size}")
    return size


def _check_input(model: nn.Module, name: str, x: Tensor) -> None:
    """Run ``model`` once on ``x`` so that a size it cannot take fails here, with its own message."""
    size = "x".join(map(str, x.shape[1:]))
    try:
        with torch.no_grad():
            model(x)
    except InputShapeError as exc:
        raise SqueezelabError(f"{name} cannot take input {size}: {exc}") from None
    except RuntimeError as exc:  # e.g. a pooling or convolution window larger than its feature map
        first_line = str(exc).strip().splitlines()[0]
        raise SqueezelabError(f"{name} cannot take input {size}: {first_line}") from None


def export(
    source: nn.Module | Checkpoint | str | os.PathLike,
    path: str | os.PathLike,
    format: str = "onnx",
    input_size: tuple[int, ...] | None = None,
    verify: bool = True,
    meta: dict | None = None,
    int8: bool = False,
) -> ExportResult:
    """Write ``source`` as an ONNX or TorchScript file at ``path``; verify it first unless ``verify=False``.

    ``source`` is a model (put in eval mode; on the CPU), an opened checkpoint, or the path of a run
    directory, a checkpoint or a ``.sqz`` file. ``input_size`` is (C, H, W) or (H, W), by default the size
    the model was trained at (bare models: the registry's default input). ``meta`` overrides or adds
    metadata entries, e.g. ``{"classes": [...], "mean": [...], "std": [...]}`` for a bare model. The file is
    written atomically, and only once it passed verification; a failed check raises ``VerificationError``.

    ``int8=True`` writes a QDQ int8 ONNX file. It needs the images the model was trained on, so ``source``
    must be a checkpoint (or run, or ``.sqz``) that records its dataset, exported at its trained size.
    """
    if format not in FORMATS:
        raise SqueezelabError(f"unsupported export format {format!r}; choose {' or '.join(FORMATS)}")
    if int8 and format != "onnx":
        raise SqueezelabError(f"int8 export writes ONNX (QDQ, run by onnxruntime) only, not {format}")
    path = Path(path)
    if not path.parent.is_dir():
        raise SqueezelabError(f"cannot write {path}: the folder {path.parent} does not exist")
    if isinstance(source, (str, os.PathLike)):
        source = open_checkpoint(source)
    if isinstance(source, Checkpoint):
        model, derived = source.model, _checkpoint_meta(source)
    elif int8:
        raise SqueezelabError(
            "int8 export calibrates on the model's training images: export a run directory, checkpoint or .sqz "
            "file that records its dataset, not a bare model"
        )
    else:
        model, derived = source, _model_meta(source)
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise SqueezelabError("export runs on the CPU; move the model there first (model.cpu())")
    model.eval()

    shape = _resolve_shape(input_size, derived["input_shape"])
    name = derived["model"]["name"] if derived["model"] else type(model).__name__
    _check_input(model, name, torch.zeros(1, *shape))
    info = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "kind": "autoencoder" if isinstance(model, Autoencoder) else "classifier",
        "precision": "fp32",
        "mean": [0.0] * shape[0],  # a bare model takes images scaled to [0, 1]
        "std": [1.0] * shape[0],
        **derived,
        **(meta or {}),
        "input_shape": list(shape),
    }
    if not len(info["mean"]) == len(info["std"]) == shape[0]:
        raise SqueezelabError(
            f"{shape[0]}-channel input needs {shape[0]} means and stds, got {info['mean']}, {info['std']}"
        )

    # Inputs with the statistics of real images: random uint8 pixels through the model's own normalisation.
    transform = BatchTransform(tuple(info["mean"]), tuple(info["std"]))
    if int8:
        if shape != source.input_shape:
            raise SqueezelabError(
                f"int8 export calibrates and checks on the run's images, at the size the model was trained at "
                f"({'x'.join(map(str, source.input_shape))}); leave the input size out"
            )
        images = int8_export.run_images(source, transform)  # before the fp32 export: a missing dataset fails fast
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(
        0, 256, (_EXAMPLE_BATCH + sum(_VERIFY_BATCHES), *shape), dtype=torch.uint8, generator=generator
    )
    inputs = transform.normalize(pixels)
    data = _SERIALIZERS[format](model, inputs[:_EXAMPLE_BATCH], info)

    checks = []
    if verify:
        batches = list(inputs[_EXAMPLE_BATCH:].split(_VERIFY_BATCHES))
        checks.append(verify_fp32(model, load_runner(format, data), batches))
        if not checks[-1].passed:
            raise VerificationError(
                f"the exported {format} file does not match {name} in PyTorch: {checks[-1].describe()}; "
                f"{path} was not written"
            )
    if int8:
        info["precision"] = "int8"
        info["quantization"] = {
            "by": "onnxruntime quantize_static, QDQ",
            "weights": "int8, per channel",
            "weight_bits": int8_export.weight_bits(),
            "activations": "uint8, per tensor, MinMax",
            "calibration_images": images.calibration_images,
        }
        data = int8_export.quantize_qdq(data, images.calibration, info)
        if verify:
            reconstructs = info["kind"] == "autoencoder"
            checks.append(verify_int8(model, load_runner(format, data), images.verification, transform, reconstructs))
            if not checks[-1].passed:
                raise VerificationError(
                    f"the int8 ONNX file strays too far from {name} in PyTorch fp32: {checks[-1].describe()}; "
                    f"{path} was not written"
                )
    atomic_write(path, data)
    return ExportResult(path, format, len(data), shape, info, tuple(checks))
