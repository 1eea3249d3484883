"""What the ``fast-cifar10`` input pipeline costs per batch, beside the training step it feeds.

    OMP_NUM_THREADS=1 python benchmarks/augmentation.py

One thread and a batch of 128: one process's share of the preset's global batch of 256 under
``torchrun --nproc_per_node 2``. Each operation runs on a uint8 CIFAR-size batch as the trainer runs it;
the median of ``--repeats`` timings is printed. The training step is the preset's model, bf16 autocast and
channels-last, forward, backward and an SGD step, at each size of the preset's resolution ramp.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from _common import machine

from squeezelab.data import BatchTransform
from squeezelab.data.transforms import random_crop, random_cutout, random_flip
from squeezelab.models import create_model
from squeezelab.train import preset

MEAN, STD = (0.491, 0.482, 0.447), (0.247, 0.243, 0.262)


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    fill = [round(m * 255) for m in MEAN]
    print(f"machine: {machine()}; batch {args.batch}\n")
    print("| operation | ms per batch |\n|---|---:|")
    operations = {
        "random crop, padding 4": lambda: random_crop(batch, 4, generator),
        "random flip": lambda: random_flip(batch, generator),
        "cutout 8x8": lambda: random_cutout(batch, 8, fill, generator),
    }
    for size in (16, 20, 24, 32):
        transform = BatchTransform(MEAN, STD, channels_last=True, size=size)
        operations[f"normalise + resize to {size} + channels-last"] = lambda t=transform: t.normalize(batch)
    for name, fn in operations.items():
        print(f"| {name} | {median_ms(fn, args.repeats):.2f} |")

    cfg = preset("fast-cifar10")
    model = create_model(cfg.run.model, **cfg.run.model_kwargs).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    labels = torch.randint(0, 10, (args.batch,))

    def step(x: torch.Tensor) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    print("\n| training step of the preset's model | ms per batch |\n|---|---:|")
    for size in (16, 20, 24, 32):
        x = BatchTransform(MEAN, STD, channels_last=True, size=size).normalize(batch)
        print(f"| {size}x{size} | {median_ms(lambda x=x: step(x), max(5, args.repeats // 5)):.1f} |")


if __name__ == "__main__":
    main()
