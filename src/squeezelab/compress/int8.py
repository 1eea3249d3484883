"""Post-training static int8 quantization through PyTorch's own stack (``torch.ao.quantization``, FX mode).

Weights are quantized per channel, activations per tensor with ranges observed on calibration batches of
training images; the x86 backend runs the int8 convolutions with VNNI where the CPU has it.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor, nn

from squeezelab.data import BatchTransform
from squeezelab.errors import SqueezelabError
from squeezelab.profile import median_seconds

CALIBRATION_BATCHES = 16
CALIBRATION_BATCH_SIZE = 32


def calibration_batches(
    images: Tensor, transform: BatchTransform, seed: int, batches: int = CALIBRATION_BATCHES
) -> Iterator[Tensor]:
    """Seeded random batches of training ``images`` (uint8), normalised: what int8 ranges are observed on.

    Drawn lazily, as 512 images at 224x224 would hold 300 MB at once.
    """
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(images), generator=generator)[: batches * CALIBRATION_BATCH_SIZE]
    return (transform.normalize(images[p]) for p in picks.split(CALIBRATION_BATCH_SIZE))


def quantize_int8(model: nn.Module, calibration: Iterable[Tensor], backend: str = "x86") -> nn.Module:
    """An int8 copy of ``model`` calibrated on ``calibration`` (normalised input batches); ``model`` is untouched."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if backend not in torch.backends.quantized.supported_engines:
        raise SqueezelabError(
            f"this PyTorch build has no {backend} quantized engine; it has {torch.backends.quantized.supported_engines}"
        )
    torch.backends.quantized.engine = backend
    batches = iter(calibration)
    first = next(batches, None)
    if first is None:
        raise SqueezelabError("int8 calibration needs at least one batch of training images")
    fp32 = copy.deepcopy(model).float().cpu().eval()
    with warnings.catch_warnings():
        # torch 2.13 marks FX quantization deprecated in favour of torchao's PT2E; it is still the stack that
        # runs int8 convolutions eagerly on fbgemm/x86 kernels, which PT2E does only through torch.compile.
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning, UserWarning))
        prepared = prepare_fx(fp32, get_default_qconfig_mapping(backend), (first,))
        with torch.no_grad():
            prepared(first)
            for batch in batches:
                prepared(batch)
        return convert_fx(prepared)


def freeze(model: nn.Module, example: Tensor) -> torch.jit.ScriptModule:
    """``model`` traced and frozen with TorchScript, for CPU inference at small batches.

    FX's int8 model runs op by op from Python; traced and frozen, the graph runs in C++ with its weights
    prepacked as constants: squeezenet_cifar at batch 1 went from 1.26 ms to 0.60 ms (fp32: 1.26 -> 0.85 ms).
    The trace keeps no Python: the model's input checks are not in it.
    """
    with warnings.catch_warnings(), torch.no_grad():
        # Tracing warns about the input checks it drops, and torch 2.13 about TorchScript being deprecated.
        warnings.simplefilter("ignore")
        return torch.jit.freeze(torch.jit.trace(model.eval(), example))


def latency_ms(model: nn.Module, x: Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of one forward pass in milliseconds."""
    with torch.inference_mode():
        return 1e3 * median_seconds(lambda: model(x), x.device, warmup, repeats)
