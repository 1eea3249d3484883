"""Where training runs: the device, its process group, its number format, and where the training data lives."""

from __future__ import annotations

import contextlib
import warnings

import torch

from squeezelab.data import ImageDataset
from squeezelab.errors import ConfigError, SqueezelabError
from squeezelab.train.config import ComputeConfig
from squeezelab.train.distributed import ProcessGroup, init_distributed, local_rank
from squeezelab.train.host_memory import keep_freed_host_memory


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; an explicit device that is not there is a user error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SqueezelabError(f"--device {name}: PyTorch sees no CUDA device here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SqueezelabError(f"--device {name}: MPS is not available here; use --device cpu")
    return device


def training_device(name: str, group: ProcessGroup | None = None) -> tuple[torch.device, ProcessGroup]:
    """This process's device and the process group it trains in (the one ``torchrun`` started, if any)."""
    device = resolve_device(name)
    group = group or init_distributed(device)
    if group.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank())  # one GPU per process
    if device.type == "cpu":
        keep_freed_host_memory()
    return device, group


def autocast_for(cfg: ComputeConfig, device: torch.device):
    """The mixed-precision context of a training step: bf16 or fp16 autocast, or none (fp32)."""
    if cfg.bf16:
        if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            # Measured on Zen 3 (AVX2): a squeezenet_cifar step ran at 40 images/s in bf16 against 386 in fp32.
            warnings.warn(
                "bf16 on this CPU (no AVX512-BF16 or AMX) is emulated and several times slower than fp32: "
                "add --no-bf16",
                stacklevel=2,
            )
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if cfg.fp16:
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


# A GPU keeps the decoded training split in its own memory when it takes at most this share of it: batches are
# then gathered there without any copy. A larger split stays in pinned host memory and each batch is copied.
DEVICE_DATA_SHARE = 0.25


def data_stays_on_host(nbytes: int, device: torch.device, device_bytes: int | None) -> bool:
    """Whether training data of ``nbytes`` should stay in (pinned) host memory rather than move to ``device``."""
    if device.type == "cpu":
        return False
    return device_bytes is not None and nbytes > DEVICE_DATA_SHARE * device_bytes


def place_data(data: ImageDataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    device_bytes = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None
    if data_stays_on_host(data.images.numel(), device, device_bytes):
        return data.images.pin_memory(), data.labels
    labels = None if data.labels is None else data.labels.to(device)
    return data.images.to(device), labels


def gather_batch(
    images: torch.Tensor, labels: torch.Tensor | None, index: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One batch on ``device``: gathered where the data lives, copied asynchronously from pinned host memory."""
    if images.device == index.device:
        return images[index], None if labels is None else labels[index]
    host_index = index.cpu()
    batch = images[host_index].pin_memory().to(device, non_blocking=True)
    return batch, None if labels is None else labels[host_index].to(device, non_blocking=True)
