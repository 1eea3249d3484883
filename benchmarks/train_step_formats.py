"""Training-step images/s of squeezenet_cifar by memory format and precision: what fast-cifar10 runs in.

    python benchmarks/train_step_formats.py

One SGD step (forward, cross-entropy, backward, Nesterov update) on a fixed random batch of 32x32 images,
for the paper-style model and the current and earlier fast-cifar10 models (BatchNorm), in NCHW and
channels-last, fp32 and bf16 autocast. The median of the steps after three warm-up steps; nothing else runs
in the process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from _common import machine

from squeezelab.models import create_model
from squeezelab.profile import count_macs
from squeezelab.train import preset
from squeezelab.train.host_memory import keep_freed_host_memory

FAST = preset("fast-cifar10").run.model_kwargs
MODELS = {
    "squeezenet_cifar (paper-style, no BN)": {},
    "earlier fast-cifar10 model (BN, squeeze 1/4, eight modules)": {
        **FAST,
        "squeeze_ratio": 0.25,
        "pct_3x3": 0.5,
        "stages": (2, 2, 4),
    },
    "fast-cifar10 model (BN, squeeze 1/2, 3/4 in 3x3, six modules)": FAST,
}


def images_per_second(kwargs: dict, batch: int, channels_last: bool, bf16: bool, steps: int) -> float:
    torch.manual_seed(0)
    model = create_model("squeezenet_cifar", **{"num_classes": 10, **kwargs})
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    times = []
    for _ in range(steps + 3):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--keep-host-memory",
        action="store_true",
        help="keep freed host memory for reuse, as fit() does on the CPU (squeezelab.train.host_memory)",
    )
    args = parser.parse_args()
    if args.keep_host_memory:
        keep_freed_host_memory()
    kept = "freed host memory kept" if args.keep_host_memory else "glibc's default malloc"
    print(f"machine: {machine()}; batch {args.batch_size}; {kept}\n")
    print(
        "| model | params | MACs | NCHW fp32 | NCHW bf16 | channels-last fp32 | channels-last bf16 "
        "| best / NCHW fp32 | best: training GFLOP/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, kwargs in MODELS.items():
        model = create_model("squeezenet_cifar", **{"num_classes": 10, **kwargs})
        params = sum(p.numel() for p in model.parameters())
        macs = count_macs(model, (3, 32, 32))
        rates = [
            images_per_second(kwargs, args.batch_size, channels_last, bf16, args.steps)
            for channels_last in (False, True)
            for bf16 in (False, True)
        ]
        cells = " | ".join(f"{r:,.0f}" for r in rates)
        # A training step costs about three forward passes: 2 FLOPs per MAC, times 3.
        gflops = 6 * macs * max(rates) / 1e9
        print(f"| {name} | {params:,} | {macs / 1e6:.1f}M | {cells} | {max(rates) / rates[0]:.2f}x | {gflops:.0f} |")


if __name__ == "__main__":
    main()
