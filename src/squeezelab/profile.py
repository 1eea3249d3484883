"""What a model costs: parameters, bytes, MACs, latency, throughput and activation memory.

MACs are counted with ``torch.utils.flop_counter``, which counts convolutions and matrix products (the
operations that dominate these networks) and reports FLOPs = 2 x MACs. Element-wise work (ReLU, pooling,
bias) is not counted, as in torchvision's and the SqueezeNet paper's figures.
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Profile:
    model: str
    input_shape: tuple[int, ...]  # one sample: (C, H, W)
    batch_size: int
    params: int
    trainable_params: int
    fp32_bytes: int  # 4 bytes for every parameter and floating-point buffer
    file_bytes: int  # the state dict written as a safetensors file
    macs: int  # multiply-accumulates of one forward pass of one sample
    flops: int  # 2 x macs
    latency_ms: float  # median forward time at batch size 1
    throughput: float  # samples per second at batch_size
    peak_activation_bytes: int  # most tensor memory alive at once during a forward at batch_size
    device: str
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def fp32_bytes(model: nn.Module) -> int:
    tensors = list(model.state_dict().values())
    return sum(t.numel() * (4 if t.is_floating_point() else t.element_size()) for t in tensors)


def file_bytes(model: nn.Module) -> int:
    state = {
        k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    return len(safetensors_bytes(state))


def _device_of(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass of one sample. Works on meta-device models, without allocating."""
    x = torch.zeros(1, *input_shape, device=_device_of(model))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


class _PeakMemory(TorchDispatchMode):
    """Tracks the bytes of tensor storages created inside the mode and still alive; keeps the maximum."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: dict[int, list[int]] = {}  # storage address -> [bytes, references]

    def _release(self, key: int) -> None:
        entry = self._live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self._live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key not in self._live:
                self._live[key] = [storage.nbytes(), 0]
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
            self._live[key][1] += 1
            weakref.finalize(t, self._release, key)
        return out


def median_seconds(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup``, synchronising CUDA around each."""

    def timed() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    for _ in range(warmup):
        timed()
    return statistics.median(timed() for _ in range(repeats))


def profile_model(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int = 64,
    warmup: int = 3,
    repeats: int = 10,
    name: str | None = None,
) -> Profile:
    """Measure a model in eval mode on the device it lives on; ``input_shape`` is one sample, e.g. (3, 32, 32)."""
    device = _device_of(model)
    params, trainable = count_parameters(model)
    macs = count_macs(model, input_shape)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            one = torch.rand(1, *input_shape, device=device)
            batch = torch.rand(batch_size, *input_shape, device=device)
            latency = median_seconds(lambda: model(one), device, warmup, repeats)
            batch_seconds = median_seconds(lambda: model(batch), device, warmup, repeats)
            tracker = _PeakMemory()
            with tracker:
                model(batch)
    finally:
        model.train(was_training)
    return Profile(
        model=name or getattr(model, "name", type(model).__name__),
        input_shape=tuple(input_shape),
        batch_size=batch_size,
        params=params,
        trainable_params=trainable,
        fp32_bytes=fp32_bytes(model),
        file_bytes=file_bytes(model),
        macs=macs,
        flops=2 * macs,
        latency_ms=latency * 1e3,
        throughput=batch_size / batch_seconds,
        peak_activation_bytes=tracker.peak,
        device=str(device),
        threads=torch.get_num_threads(),
    )
