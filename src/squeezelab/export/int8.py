"""int8 ONNX files: the verified fp32 graph quantized by onnxruntime into QDQ form, on the run's own images.

The FX-converted int8 model of ``squeezelab compress --int8`` holds quantized-engine operators that the
torch.export-based ONNX exporter cannot trace, so the int8 file is made on the ONNX side instead:
``onnxruntime.quantization.quantize_static`` inserts QuantizeLinear/DequantizeLinear pairs around the
fp32 graph's operators (QDQ), which onnxruntime runs as int8 kernels. The settings are those onnxruntime
recommends for x86 CPUs with VNNI (Cascade Lake, Zen 4 and later): int8 weights per output channel on the
full 8 bits, uint8 activations per tensor with MinMax ranges. For CPUs without VNNI it advises 7-bit weights
(``reduce_range``), as their u8 x s8 products add up in 16 bits and may saturate: on a VNNI machine 7 bits
cost agreement (97.3% against 98.1% top-1 on the CIFAR-10 SqueezeNet run), on an x86 CPU without VNNI the
full 8 bits lose it (98.9% against 99.7% with 7 bits on the digits test run), so the width follows the exporting CPU
(``weight_bits``). The check below runs on the exporting machine too: export on one like the one the file
will run on.

Activation ranges come from the same calibration batches as ``compress --int8``: 16 seeded batches of 32
normalised training images of the run. The check runs on images the calibration never saw, the run's
validation split.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from squeezelab.checkpoint import Checkpoint
from squeezelab.compress.int8 import CALIBRATION_BATCH_SIZE, CALIBRATION_BATCHES, calibration_batches
from squeezelab.data import BatchTransform, load_dataset, split_validation
from squeezelab.errors import SqueezelabError
from squeezelab.export.onnx import META_KEY, _require

VERIFY_IMAGES = 2000  # at most; 0.05% steps of agreement, and seconds rather than minutes at 224x224
_FALLBACK_HOLDOUT = 0.1  # held out for the check where a checkpoint records no validation split


@dataclass(frozen=True)
class RunImages:
    """The images an int8 export needs: normalised calibration batches and uint8 images to verify on."""

    calibration: Iterator[Tensor]
    calibration_images: int
    verification: Tensor


def run_images(ckpt: Checkpoint, transform: BatchTransform) -> RunImages:
    """Calibration batches from the training part of the checkpoint's dataset, check images from the held-out part.

    The split is the run's own (its validation fraction and seed); a checkpoint that records no run, or a run
    that held nothing out, gets a seeded 10% held out here, so the check never sees a calibration image.
    """
    data = ckpt.meta.get("data") or {}
    if not data.get("spec"):
        raise SqueezelabError(
            f"int8 export calibrates on the model's training images, and {ckpt.path} records no dataset; "
            "export a checkpoint of a training run"
        )
    splits = load_dataset(data["spec"], image_size=data.get("image_size"), grayscale=data.get("grayscale"))
    if tuple(splits.train.images.shape[1:]) != ckpt.input_shape:
        raise SqueezelabError(
            f"{splits.spec} gives images of shape {tuple(splits.train.images.shape[1:])}, "
            f"the model takes {ckpt.input_shape}"
        )
    config = ckpt.meta.get("config") or {}
    seed = config.get("seed", 0)
    train, held_out = split_validation(splits.train, config.get("validation_split") or _FALLBACK_HOLDOUT, seed)
    picks = torch.randperm(len(held_out), generator=torch.Generator().manual_seed(seed))[:VERIFY_IMAGES]
    return RunImages(
        calibration_batches(train.images, transform, seed),
        min(len(train), CALIBRATION_BATCHES * CALIBRATION_BATCH_SIZE),
        held_out.images[picks.sort().values],
    )


class _Batches:
    """onnxruntime's CalibrationDataReader protocol (a ``get_next`` method) over normalised batches."""

    def __init__(self, input_name: str, batches: Iterable[Tensor]) -> None:
        self.input_name = input_name
        self.batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch.numpy()}


def weight_bits(cpu_flags: str | None = None) -> int:
    """8 on x86 CPUs with VNNI and on other architectures, 7 on x86 CPUs without VNNI, where 8 may saturate."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return 8
    if cpu_flags is None:
        try:
            cpu_flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return 8  # not Linux: no flags to read, and onnxruntime's default is the full width
    return 8 if re.search(r"\bavx(512)?_vnni\b", cpu_flags) else 7


def quantize_qdq(fp32: bytes, calibration: Iterable[Tensor], meta: dict) -> bytes:
    """The QDQ int8 file of the fp32 ONNX file ``fp32``, its activation ranges observed on ``calibration``."""
    onnx = _require("onnx", "int8 export")
    quantization = _require("onnxruntime.quantization", "int8 export")
    logger = logging.getLogger()  # the quantizer logs its progress and advice on the root logger
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source, prepared, target = (Path(tmp, name) for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
            source.write_bytes(fp32)
            # Shape inference and graph optimisation first, as onnxruntime asks: a tensor of unknown shape stays fp32.
            quantization.quant_pre_process(source, prepared)
            quantization.quantize_static(
                prepared,
                target,
                _Batches(onnx.load(str(prepared)).graph.input[0].name, calibration),
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=True,
                reduce_range=meta["quantization"]["weight_bits"] == 7,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method=quantization.CalibrationMethod.MinMax,
            )
            proto = onnx.load(str(target))
    finally:
        logger.setLevel(level)
    del proto.metadata_props[:]  # what came over from the fp32 file says "fp32"
    proto.metadata_props.add(key=META_KEY, value=json.dumps(meta))
    return proto.SerializeToString()
