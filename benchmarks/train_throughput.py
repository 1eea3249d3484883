"""Training images/s of ``fit()`` against a minimal hand-written PyTorch loop over the same tensors.

    python benchmarks/train_throughput.py \
        --cifar folder:../shared/data/cifar10/cifar10-train-jpg.tar --mnist mnist:../shared/data/mnist

Both loops see the same uint8 images held in memory, the same model, optimizer and batch size, in the same
process; runs alternate (loop, fit, loop, fit, ...) so drifts in machine speed hit both alike. The table
gives the best epoch of each and the ratio of best to best and of median to median: a dense_ae epoch on
MNIST takes half a second, so single epochs vary by 10% or more. ``fit()`` must reach >= 0.95x the minimal
loop. Achieved GFLOP/s count a training step as 3x the forward FLOPs (forward, and backward for activations
and weights). The second workload is the ``fast-cifar10`` preset's model and precision (bf16 autocast,
channels-last), both loops alike; the bf16 matmul peak is printed beside the fp32 one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from _common import machine, matmul_peak_gflops

from squeezelab.data import DataSplits, ImageDataset, load_dataset, normalize
from squeezelab.profile import count_macs
from squeezelab.train import TrainConfig, create_model_for, fit, preset
from squeezelab.train.host_memory import keep_freed_host_memory


def minimal_loop(model, data: ImageDataset, cfg: TrainConfig, mean, std, reconstruction: bool) -> float:
    """The loop a person would write by hand; returns training images/s of one epoch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum)
    if cfg.compute.channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    start = time.perf_counter()
    order = torch.randperm(len(data))
    for begin in range(0, len(data), cfg.optim.batch_size):
        index = order[begin : begin + cfg.optim.batch_size]
        images = data.images[index]
        x = normalize(images, mean, std)
        if cfg.compute.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.compute.bf16):
            out = model(x).float()
        loss = F.mse_loss(out, images.float() / 255) if reconstruction else F.cross_entropy(out, data.labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return len(data) / (time.perf_counter() - start)


def compare(name: str, model_name: str, data: ImageDataset, cfg: TrainConfig, rounds: int) -> dict:
    splits = DataSplits.from_train(data)
    reconstruction = model_name.endswith("_ae")
    mean, std = ((0.0,) * data.channels, (1.0,) * data.channels) if reconstruction else (splits.mean, splits.std)
    torch.manual_seed(0)
    hand_model = create_model_for(model_name, cfg.run.model_kwargs, data)
    fit_model = create_model_for(model_name, cfg.run.model_kwargs, data)
    hand, fitted = [], []
    for _ in range(rounds):
        hand.append(minimal_loop(hand_model, data, cfg, mean, std, reconstruction))
        history = fit(fit_model, splits, cfg, verbose=0)
        fitted.append(history.epochs[-1]["images_per_s"])
    macs = count_macs(fit_model, tuple(data.images.shape[1:]))
    best_hand, best_fit = max(hand), max(fitted)
    median_ratio = statistics.median(fitted) / statistics.median(hand)
    return {
        "workload": name,
        "model": model_name,
        "images": len(data),
        "batch_size": cfg.optim.batch_size,
        "loop_images_per_s": best_hand,
        "fit_images_per_s": best_fit,
        "ratio": best_fit / best_hand,
        "median_ratio": median_ratio,
        "train_gflops": best_fit * 3 * 2 * macs / 1e9,
        "all_loop": hand,
        "all_fit": fitted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cifar", default="folder:../shared/data/cifar10/cifar10-train-jpg.tar")
    parser.add_argument("--mnist", default="mnist:../shared/data/mnist")
    parser.add_argument("--cifar-images", type=int, default=10_000, help="images per epoch for squeezenet_cifar")
    parser.add_argument("--rounds", type=int, default=3, help="epochs of each loop for squeezenet_cifar")
    parser.add_argument("--small-rounds", type=int, default=10, help="epochs of each loop for dense_ae")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    # fit() keeps freed host memory from its first call on, process-wide; the minimal loop gets the same
    # allocator from the start, so that the comparison is of the loops, not of malloc settings.
    keep_freed_host_memory()

    peak = matmul_peak_gflops()
    bf16_peak = matmul_peak_gflops(dtype=torch.bfloat16)
    print(f"machine: {machine()}; matmul peak fp32 {peak:.0f} GFLOP/s, bf16 {bf16_peak:.0f} GFLOP/s")
    one_epoch = dict(epochs=1, validation_split=0.0, shuffle=True, optimizer="sgd", momentum=0.9, normalize="auto")
    cifar = load_dataset(args.cifar, progress=False).train
    cifar = cifar.subset(torch.randperm(len(cifar), generator=torch.Generator().manual_seed(0))[: args.cifar_images])
    mnist = load_dataset(args.mnist, progress=False).train
    results = [
        compare(
            "squeezenet_cifar, 32x32",
            "squeezenet_cifar",
            cifar,
            TrainConfig(batch_size=128, lr=0.01, **one_epoch),
            args.rounds,
        ),
        compare(
            "squeezenet_cifar, fast-cifar10 model and precision (BN, bf16, channels-last)",
            "squeezenet_cifar",
            cifar,
            TrainConfig(
                batch_size=512,
                lr=0.01,
                model_kwargs=preset("fast-cifar10").run.model_kwargs,
                bf16=True,
                channels_last=True,
                **one_epoch,
            ),
            args.rounds,
        ),
        compare(
            "dense_ae, MNIST 28x28",
            "dense_ae",
            mnist,
            TrainConfig(batch_size=256, lr=0.01, **one_epoch),
            args.small_rounds,
        ),
    ]
    print(
        "| workload | images/epoch | batch | epochs each | minimal loop img/s | fit() img/s | fit / loop (best) "
        "| fit / loop (median) | fit GFLOP/s | of peak |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['workload']} | {r['images']:,} | {r['batch_size']} | {len(r['all_fit'])} | "
            f"{r['loop_images_per_s']:,.0f} | {r['fit_images_per_s']:,.0f} | {r['ratio']:.3f} | "
            f"{r['median_ratio']:.3f} | {r['train_gflops']:.1f} | {r['train_gflops'] / peak:.1%} |"
        )
    print("GFLOP/s are counted in the step's own precision; 'of peak' is against the fp32 matmul peak.")
    if args.json:
        with open(args.json, "w") as f:
            summary = {"machine": machine(), "matmul_peak_gflops": peak, "bf16_matmul_peak_gflops": bf16_peak}
            json.dump({**summary, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
