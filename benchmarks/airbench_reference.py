"""A reference point for the held-out CIFAR-10 figures: airbench94's recipe on this data and split.

    python benchmarks/airbench_reference.py --data folder:../shared/data/cifar10/cifar10-train-jpg.tar

airbench94 (Keller Jordan, github.com/KellerJordan/cifar10-airbench) scores 94.01% on the official CIFAR-10
test split, averaged over 1,000 runs, after training on the 50,000 original (PNG-exact) training images.
The shared data is those images recompressed as JPEG (quality 75, 4:2:0 chroma), and squeezelab holds out a
seeded 10% of them for validation. This script trains a plain-torch re-implementation of airbench94's network
and published hyperparameters on the same 45,000 images as the ``fast-cifar10`` preset and scores it on the
same 5,000 held-out ones, so the gap to 94.01% measures what the data and the split cost a known recipe, and
the preset's held-out accuracy can be read against it.

The recipe: a 2x2 convolution initialised to whiten the pixel patches (frozen weights, its bias trained for 3
epochs), three blocks of conv-pool-BN-GELU-conv-BN-GELU (64, 256, 256 channels), 3x3 max pool, a linear layer
scaled by 1/9; 9.9 epochs at batch 1024, Nesterov SGD (momentum 0.85, learning rate 11.5 and weight decay
0.0153 per 1024 summed samples, 64x the rate on BN biases), a triangular schedule (0.2 to 1 at 23% of the
steps, then to 0.07), label smoothing 0.2, reflect-padded translation by up to 2 pixels, alternating flips,
a lookahead average of the weights from epoch 3, and evaluation averaging mirrored and one-pixel-shifted
views. On this CPU it trains in bf16 autocast, channels-last, in one process.

Writes ``airbench_reference.json`` (per epoch: training seconds, held-out top-1 without test-time views; the
final held-out top-1 with them) to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import machine
from torch import nn

from squeezelab.data import load_dataset
from squeezelab.data.dataset import split_validation
from squeezelab.data.transforms import alternating_flips, flip_where, normalize, random_crop
from squeezelab.profile import count_parameters

BATCH_SIZE = 1024
EPOCHS = 9.9
LR_PER_1024 = 11.5
MOMENTUM = 0.85
WEIGHT_DECAY_PER_1024 = 0.0153
BN_BIAS_LR_SCALE = 64.0
LABEL_SMOOTHING = 0.2
WHITEN_BIAS_EPOCHS = 3
LOOKAHEAD_START_EPOCH, LOOKAHEAD_EVERY, LOOKAHEAD_BASE, LOOKAHEAD_POWER = 3, 5, 0.95, 3.0
TRANSLATE = 2


class FrozenScaleBatchNorm(nn.BatchNorm2d):
    # airbench keeps BN's scale at 1 (only the shift learns) and lets the running statistics move fast.
    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=1e-12, momentum=0.4)
        self.weight.requires_grad_(False)


def identity_initialised_conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    # The first cin filters start as the identity, an implicit residual connection.
    nn.init.dirac_(conv.weight.data[:cin])
    return conv


class ConvGroup(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            identity_initialised_conv(cin, cout),
            nn.MaxPool2d(2),
            FrozenScaleBatchNorm(cout),
            nn.GELU(),
            identity_initialised_conv(cout, cout),
            FrozenScaleBatchNorm(cout),
            nn.GELU(),
        )


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def airbench94_net(num_classes: int = 10) -> nn.Sequential:
    whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
    nn.init.zeros_(whiten.bias)
    whiten.weight.requires_grad_(False)
    return nn.Sequential(
        whiten,
        nn.GELU(),
        ConvGroup(24, 64),
        ConvGroup(64, 256),
        ConvGroup(256, 256),
        nn.MaxPool2d(3),
        nn.Flatten(),
        nn.Linear(256, num_classes, bias=False),
        Scale(1 / 9),
    )


@torch.no_grad()
def init_whitening(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Filters = the eigenvectors of the 2x2 patch covariance scaled to unit variance, and their negatives."""
    k = conv.kernel_size[0]
    patches = images.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3 * k * k).double()
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    filters = (eigenvectors.T / (eigenvalues[:, None] + eps).sqrt()).flip(0).reshape(-1, 3, k, k)
    conv.weight.copy_(torch.cat([filters, -filters]).float())


def triangle(step: int, total: int, start: float = 0.2, peak_at: float = 0.23, end: float = 0.07) -> float:
    peak = int(peak_at * total)
    if step < peak:
        return start + (1 - start) * step / peak
    return 1 + (end - 1) * (step - peak) / (total - peak)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, views: bool, batch: int = 2000) -> torch.Tensor:
    """Logits; with ``views`` airbench's weighting: 1/2 the image and its mirror, 1/4 each shifted pair."""

    def mirrored(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (model(x) + model(x.flip(-1)))

    model.eval()
    out = []
    for x in images.split(batch):
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if not views:
                out.append(model(x).float())
                continue
            padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
            side = x.shape[-1]
            shifted = [padded[..., :side, :side], padded[..., 2:, 2:]]
            logits = 0.5 * mirrored(x) + 0.25 * (mirrored(shifted[0]) + mirrored(shifted[1]))
            out.append(logits.float())
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="folder:../shared/data/cifar10/cifar10-train-jpg.tar")
    parser.add_argument("--out-dir", default="runs/airbench-reference")
    parser.add_argument("--epochs", type=float, default=EPOCHS, help="airbench94 trains 9.9 epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine())

    splits = load_dataset(args.data, progress=False)
    # The preset's split: validation_split 0.1, seed 0.
    train, val = split_validation(splits.train, 0.1, seed=0)
    train_x = normalize(train.images, splits.mean, splits.std)
    val_x = normalize(val.images, splits.mean, splits.std)
    train_y, val_y = train.labels, val.labels

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    model = airbench94_net().to(memory_format=torch.channels_last)
    init_whitening(model[0], train_x[:5000])
    total, trainable = count_parameters(model)
    print(f"airbench94 network: {total:,} parameters, {trainable:,} trained (the whitening filters are frozen)")

    # airbench states the rate and decay per 1024 summed samples, independent of the momentum; PyTorch's SGD
    # with Nesterov momentum m steps (1 + 1/(1-m)) times further than one gradient, so both are divided by it.
    kilostep = 1024 * (1 + 1 / (1 - MOMENTUM))
    lr = LR_PER_1024 / kilostep
    decay = WEIGHT_DECAY_PER_1024 * BATCH_SIZE / kilostep
    bn_biases = [m.bias for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    others = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in bn_biases)]
    bn_lr = lr * BN_BIAS_LR_SCALE
    optimizer = torch.optim.SGD(
        [
            dict(params=bn_biases, lr=bn_lr, weight_decay=decay / bn_lr),
            dict(params=others, lr=lr, weight_decay=decay / lr),
        ],
        momentum=MOMENTUM,
        nesterov=True,
    )
    steps_per_epoch = len(train_x) // BATCH_SIZE  # airbench drops the last partial batch
    total_steps = math.ceil(steps_per_epoch * args.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: triangle(step, total_steps))

    parity = torch.rand(len(train_x), generator=generator) < 0.5
    slow_weights = None
    step, trained, curve = 0, 0.0, []
    for epoch in range(math.ceil(args.epochs)):
        start = time.perf_counter()
        model[0].bias.requires_grad_(epoch < WHITEN_BIAS_EPOCHS)
        images = random_crop(flip_where(train_x, alternating_flips(parity, epoch)), TRANSLATE, generator, "reflect")
        order = torch.randperm(len(images), generator=generator)
        model.train()
        for begin in range(0, steps_per_epoch * BATCH_SIZE, BATCH_SIZE):
            index = order[begin : begin + BATCH_SIZE]
            x = images[index].contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), train_y[index], label_smoothing=LABEL_SMOOTHING, reduction="sum")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            # airbench's own lookahead, not squeezelab.train.optim's: the slow copy starts at the first fifth
            # step of epoch 4 and lives across epochs, and each epoch ends by resetting the weights to it.
            if epoch >= LOOKAHEAD_START_EPOCH and step % LOOKAHEAD_EVERY == 0:
                state = [t for t in model.state_dict().values() if t.is_floating_point()]
                if slow_weights is None:
                    slow_weights = [t.clone() for t in state]
                else:
                    # Average harder as training ends: the pull grows with the cube of the share done.
                    rho = LOOKAHEAD_BASE**LOOKAHEAD_EVERY * (step / total_steps) ** LOOKAHEAD_POWER
                    for slow, fast in zip(slow_weights, state, strict=True):
                        slow.lerp_(fast, 1 - rho)
                        fast.copy_(slow)
            if step >= total_steps:
                break
        if slow_weights is not None:
            state = [t for t in model.state_dict().values() if t.is_floating_point()]
            for slow, fast in zip(slow_weights, state, strict=True):
                fast.copy_(slow)
        trained += time.perf_counter() - start
        accuracy = (predict(model, val_x, views=False).argmax(1) == val_y).float().mean().item()
        curve.append(
            {"epoch": epoch + 1, "train_seconds": trained, "val_acc1": accuracy, "train_loss": loss.item() / len(index)}
        )
        print(f"epoch {epoch + 1}  {trained:.0f} s of training  held-out top-1 {accuracy:.4f}")
    final = (predict(model, val_x, views=True).argmax(1) == val_y).float().mean().item()
    print(f"held-out top-1 with mirrored and shifted views: {final:.4f} after {trained:.0f} s of training")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "epochs": args.epochs, "seed": args.seed, "val_acc1_tta": final, "curve": curve}
    (out_dir / "airbench_reference.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
