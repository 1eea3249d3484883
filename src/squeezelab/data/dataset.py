"""Datasets as whole uint8 tensors in memory: the type every loader returns, splits and resizing.

Every dataset this project trains on fits in memory (CIFAR-10 is 150 MB as uint8), so a dataset is one
``(N, C, H, W)`` uint8 tensor and one int64 label tensor: batches are index operations, augmentation runs on
whole batches (see ``transforms``) and no DataLoader worker ever decodes a file.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from squeezelab.errors import DataError, InputShapeError


@dataclass(eq=False)  # compared by identity: field-wise == on tensors has no single truth value
class ImageDataset:
    images: torch.Tensor  # uint8 (N, C, H, W), contiguous
    labels: torch.Tensor | None  # int64 (N,); None for unlabelled images
    classes: list[str]  # class names in label order; [] when unlabelled
    name: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise InputShapeError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        self.images = self.images.contiguous()
        if self.labels is not None:
            if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
                raise InputShapeError(
                    f"labels must be int64 ({len(self.images)},), got {self.labels.dtype} {tuple(self.labels.shape)}"
                )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return self.images.shape[2], self.images.shape[3]

    def subset(self, index: torch.Tensor) -> ImageDataset:
        labels = None if self.labels is None else self.labels[index]
        return ImageDataset(self.images[index], labels, list(self.classes), self.name)


@dataclass(eq=False)
class DataSplits:
    train: ImageDataset
    test: ImageDataset | None  # the source's own test split; None where it has none
    spec: str  # what it was loaded from
    mean: tuple[float, ...]  # per channel, of the train pixels scaled to [0, 1]
    std: tuple[float, ...]

    @classmethod
    def from_train(cls, train: ImageDataset, test: ImageDataset | None = None, spec: str | None = None) -> DataSplits:
        """Splits around datasets already in memory; the statistics come from ``train``."""
        mean, std = channel_stats(train.images)
        return cls(train, test, spec or train.name, mean, std)


def channel_stats(images: torch.Tensor, chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images scaled to [0, 1].

    Computed from a histogram of the 256 pixel values per channel: exact, and several times faster than
    float arithmetic over every pixel; a chunk at a time, so no copy of the whole dataset is made.
    """
    if len(images) == 0:
        raise DataError("cannot compute the statistics of an empty dataset")
    channels = images.shape[1]
    counts = torch.zeros(channels, 256, dtype=torch.int64)
    for part in images.split(chunk):
        for c in range(channels):
            counts[c] += torch.bincount(part[:, c].reshape(-1), minlength=256)
    values = torch.arange(256, dtype=torch.int64)
    n = images.numel() // channels
    mean = [s / n / 255 for s in (counts * values).sum(1).tolist()]
    mean_square = [s / n / 255**2 for s in (counts * values * values).sum(1).tolist()]
    return tuple(mean), tuple(max(q - m * m, 0.0) ** 0.5 for q, m in zip(mean_square, mean, strict=True))


def split_validation(ds: ImageDataset, fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """(train, val): a seeded random split holding out ``fraction`` of ``ds``.

    The same seed always gives the same split. With labels the split is stratified: each class gives the same
    share to validation (rounded so that the total is ``round(fraction * len(ds))``). Both parts keep the
    original order of their samples.
    """
    if not 0 < fraction < 1:
        raise DataError(f"the validation fraction must be between 0 and 1 (exclusive), got {fraction}")
    n = len(ds)
    if n < 2:
        raise DataError(f"{ds.name} has {n} sample(s); a validation split needs at least 2")
    n_val = min(max(round(n * fraction), 1), n - 1)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    if ds.labels is None:
        is_val = torch.zeros(n, dtype=torch.bool)
        is_val[order[:n_val]] = True
    else:
        is_val = _stratified_mask(ds.labels, order, n_val)
    return ds.subset(torch.nonzero(~is_val).flatten()), ds.subset(torch.nonzero(is_val).flatten())


def _stratified_mask(labels: torch.Tensor, order: torch.Tensor, n_val: int) -> torch.Tensor:
    """A mask choosing n_val samples, each class's share in proportion, each class's picks in ``order``."""
    counts = torch.bincount(labels)
    exact = counts.double() * (n_val / len(labels))
    quota = exact.floor().long()
    # Largest remainders take the seats that flooring left over; a full class cannot take one.
    remainder = torch.where(quota < counts, exact - quota, torch.tensor(-1.0, dtype=torch.float64))
    short = n_val - int(quota.sum())
    quota[remainder.argsort(descending=True, stable=True)[:short]] += 1
    # Visit samples in the random order, grouped by class: the first `quota` of each class go to validation.
    grouped = order[labels[order].argsort(stable=True)]
    starts = torch.cumsum(counts, 0) - counts
    grouped_labels = labels[grouped]
    rank = torch.arange(len(labels)) - starts[grouped_labels]
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    is_val[grouped[rank < quota[grouped_labels]]] = True
    return is_val


def resize_batch(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, C, size, size): centre-cropped to a square, then bilinear (antialiased)."""
    height, width = images.shape[2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = images[:, :, top : top + side, left : left + side]
    if side == size:
        return square.contiguous()
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8)
    for begin in range(0, len(images), chunk):
        part = square[begin : begin + chunk].float()
        resized = F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[begin : begin + chunk] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def to_channels(images: torch.Tensor, grayscale: bool | None) -> torch.Tensor:
    """Force 1 channel (grayscale=True) or 3 (False) on uint8 images; None keeps what they have."""
    channels = images.shape[1]
    if grayscale is None or channels == (1 if grayscale else 3):
        return images
    if channels == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    # Pillow's ITU-R 601-2 luma in fixed point, so that in-memory datasets match folders decoded as "L".
    wide = images.to(torch.int32)
    luma = (wide[:, 0] * 19595 + wide[:, 1] * 38470 + wide[:, 2] * 7471 + 0x8000) >> 16
    return luma.unsqueeze(1).to(torch.uint8)


def reshape(ds: ImageDataset, image_size: int | None, grayscale: bool | None) -> ImageDataset:
    images = to_channels(ds.images, grayscale)
    if image_size is not None:
        images = resize_batch(images, image_size)
    return ImageDataset(images, ds.labels, ds.classes, ds.name)
