"""Checking an exported file against the PyTorch model it came from, on the same inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from squeezelab.data import BatchTransform
from squeezelab.errors import VerificationError

# fp32 outputs (logits or reconstructions) may differ by float rounding only: kernels sum in another order.
FP32_MAX_ABS_DIFF = 1e-4
# int8 outputs differ by design; what must hold is the answer: the class, or a reconstruction about as close.
INT8_MIN_AGREEMENT = 0.99
INT8_MAX_MSE_RATIO = 1.10


@dataclass(frozen=True)
class Verification:
    """How closely an exported file reproduces the PyTorch model, and whether that is close enough."""

    metric: str  # what ``value`` measures, e.g. "max abs difference"
    value: float
    limit: float
    passed: bool
    batch_sizes: tuple[int, ...]
    lower_bound: bool = False  # ``limit`` is a minimum (an agreement), not a maximum (a difference)
    inputs: str | None = None  # what it ran on, where that is more than random inputs in ``batch_sizes``

    def describe(self) -> str:
        if self.lower_bound:
            relation = "at or above" if self.passed else "below"
        else:
            relation = "within" if self.passed else "over"
        inputs = self.inputs or "batch " + " and ".join(map(str, self.batch_sizes))
        return f"{self.metric} {self.value:.4g}, {relation} the limit {self.limit:g} ({inputs})"


def verify_fp32(model: nn.Module, exported: Callable[[Tensor], Tensor], batches: list[Tensor]) -> Verification:
    """The largest absolute difference between ``exported`` and ``model`` in eval mode over ``batches``."""
    differences = []
    with torch.no_grad():
        for x in batches:
            expected, got = model(x).float(), exported(x).float()
            if got.shape != expected.shape:
                raise VerificationError(
                    f"the exported model returns shape {tuple(got.shape)} where PyTorch returns {tuple(expected.shape)}"
                )
            differences.append((got - expected).abs().max())
    worst = torch.stack(differences).max().item()  # torch's max keeps a NaN, which then fails the comparison
    return Verification(
        "max abs difference",
        worst,
        FP32_MAX_ABS_DIFF,
        worst <= FP32_MAX_ABS_DIFF,
        tuple(len(x) for x in batches),
    )


def verify_int8(
    model: nn.Module,
    exported: Callable[[Tensor], Tensor],
    images: Tensor,
    transform: BatchTransform,
    reconstructs: bool,
    batch_size: int = 256,
) -> Verification:
    """An int8 file against the fp32 ``model`` in eval mode on held-out uint8 ``images``.

    Classifiers: the share of images whose top-1 class is the same, at least 99%. Autoencoders: the int8
    reconstruction MSE (against the input, as training measures it) over the fp32 one, at most 1.1: what a
    user of a reconstruction sees is its error, which int8 may raise by a tenth.
    """
    expected, got, sizes = [], [], []
    with torch.no_grad():
        for chunk in images.split(batch_size):
            x = transform.normalize(chunk)
            expected.append(model(x).float())
            got.append(exported(x).float())
            sizes.append(len(chunk))
            if got[-1].shape != expected[-1].shape:
                raise VerificationError(
                    f"the exported model returns shape {tuple(got[-1].shape)} where PyTorch returns "
                    f"{tuple(expected[-1].shape)}"
                )
    expected, got = torch.cat(expected), torch.cat(got)
    n = len(images)
    if reconstructs:
        target = images.float() / 255
        fp32_mse, int8_mse = (torch.mean((out - target) ** 2).item() for out in (expected, got))
        ratio = int8_mse / fp32_mse if fp32_mse > 0 else float("inf")
        return Verification(
            "int8 / fp32 reconstruction MSE",
            ratio,
            INT8_MAX_MSE_RATIO,
            ratio <= INT8_MAX_MSE_RATIO,  # False for NaN
            tuple(sizes),
            inputs=f"{n:,} held-out images: MSE {int8_mse:.4g} against {fp32_mse:.4g}",
        )
    same = got.argmax(1) == expected.argmax(1)
    agreement = same.double().mean().item()
    return Verification(
        "int8 top-1 agreement",
        agreement,
        INT8_MIN_AGREEMENT,
        agreement >= INT8_MIN_AGREEMENT,
        tuple(sizes),
        lower_bound=True,
        inputs=f"{n:,} held-out images, {n - int(same.sum()):,} with another class",
    )
