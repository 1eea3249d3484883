"""Augmentation and normalisation of whole batches, on whatever device the batch is on.

Each operation works on a (N, C, H, W) batch at once, with a random draw per image from an optional
``torch.Generator``, so that a seeded run augments identically every time and no Python loop runs per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from squeezelab.errors import ConfigError

PaddingMode = Literal["zeros", "reflect"]


def normalize(images_uint8: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """float32 ``(x / 255 - mean) / std`` per channel; mean 0 and std 1 give plain [0, 1] scaling."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"normalize takes uint8 images, got {images_uint8.dtype}")
    channels = images_uint8.shape[-3]
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(f"{channels}-channel images need {channels} means and stds, got {len(mean)} and {len(std)}")
    shape = (channels, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=images_uint8.device).view(shape)
    std_t = torch.tensor(std, dtype=torch.float32, device=images_uint8.device).view(shape)
    return images_uint8.float().div_(255).sub_(mean_t).div_(std_t)


def _draw_device(batch: Tensor, generator: torch.Generator | None) -> torch.device:
    # Random numbers must be drawn where the generator lives, then moved to the batch.
    return batch.device if generator is None else generator.device


def random_crop(
    batch: Tensor, padding: int, generator: torch.Generator | None = None, mode: PaddingMode = "zeros"
) -> Tensor:
    """Pad each side by ``padding``, then crop every image back to its size at its own random offset.

    ``mode="zeros"`` pads with black (torchvision's ``RandomCrop``); ``"reflect"`` mirrors the border (airbench
    and Page's ResNet), so the crops hold no artificial black edges that evaluation images never show.
    """
    if padding < 0:
        raise ConfigError(f"padding must be at least 0, got {padding}")
    if mode not in ("zeros", "reflect"):
        raise ConfigError(f"padding mode must be 'zeros' or 'reflect', got {mode!r}")
    if padding == 0:
        return batch
    n, _, height, width = batch.shape
    if mode == "reflect" and padding >= min(height, width):
        raise ConfigError(f"reflect padding must be smaller than the image, got {padding} for {height}x{width}")
    pad = (padding, padding, padding, padding)
    padded = F.pad(batch, pad, mode="reflect") if mode == "reflect" else F.pad(batch, pad)
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=_draw_device(batch, generator))
    offsets = offsets.to(batch.device)
    # Every window of every padded image as a view, (N, C, 2p+1, 2p+1, H, W); one gather copies the chosen
    # ones, about 6x faster than indexing rows and columns pixel by pixel.
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)
    return windows[torch.arange(n, device=batch.device), :, offsets[0], offsets[1]]


def random_flip(batch: Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> Tensor:
    """Mirror (left-right) each image with probability ``p``."""
    if not 0 <= p <= 1:
        raise ConfigError(f"p must be between 0 and 1, got {p}")
    chosen = torch.rand(batch.shape[0], generator=generator, device=_draw_device(batch, generator)) < p
    return flip_where(batch, chosen)


def random_cutout(
    batch: Tensor, size: int, fill: Sequence[int] | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Cutout (DeVries and Taylor 2017): blank a ``size`` x ``size`` square of each image with ``fill``.

    As in the paper each square's centre is drawn uniformly over the image, so squares near a border are
    clipped by it: an image keeps part of its content however large ``size`` is. ``fill`` is one value per
    channel (zeros when not given); the dataset mean makes the square zero after normalisation, as in the
    paper, which cuts normalised images.
    """
    if size < 0:
        raise ConfigError(f"cutout size must be at least 0, got {size}")
    if size == 0:
        return batch
    n, channels, height, width = batch.shape
    fill = (0,) * channels if fill is None else tuple(fill)
    if len(fill) != channels:
        raise ConfigError(f"{channels}-channel images need {channels} fill values, got {len(fill)}")
    draw = _draw_device(batch, generator)
    centre_y = torch.randint(0, height, (n,), generator=generator, device=draw).to(batch.device)
    centre_x = torch.randint(0, width, (n,), generator=generator, device=draw).to(batch.device)
    top, left = centre_y - size // 2, centre_x - size // 2
    rows = torch.arange(height, device=batch.device)[None, :] - top[:, None]  # (N, H): offset into the square
    cols = torch.arange(width, device=batch.device)[None, :] - left[:, None]
    inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    fill_t = torch.tensor(fill, dtype=batch.dtype, device=batch.device).view(1, channels, 1, 1)
    return torch.where(inside[:, None], fill_t, batch)


def flip_where(batch: Tensor, chosen: Tensor) -> Tensor:
    """Mirror (left-right) the images of ``batch`` where the boolean vector ``chosen`` is true."""
    return torch.where(chosen.to(batch.device)[:, None, None, None], batch.flip(-1), batch)


def alternating_flips(parity: Tensor, epoch: int) -> Tensor:
    """Which images to mirror in ``epoch``: a fixed random half in even epochs, the other half in odd ones.

    airbench's alternating flip: over any two consecutive epochs every image is seen once as it is and once
    mirrored, where independent coin flips show a quarter of the images the same way twice.
    """
    return parity ^ bool(epoch % 2)


@dataclass(frozen=True)
class BatchTransform:
    """uint8 batch -> float32 model input: random crop, flip and cutout when training, then normalisation.

    With ``channels_last`` the float batch comes out in channels-last memory order, for models kept in it.
    With ``size`` it is also resized (bilinear, antialiased) to ``size`` x ``size``: the cheap early epochs of
    progressive resizing.

    ``augment`` and ``normalize`` are also available apart, for autoencoders, whose target is the augmented
    image itself.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0
    flip: bool = False
    channels_last: bool = False
    size: int | None = None
    cutout: int = 0
    padding_mode: PaddingMode = "zeros"

    def augment(self, images_uint8: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.crop_padding:
            images_uint8 = random_crop(images_uint8, self.crop_padding, generator, self.padding_mode)
        if self.flip:
            images_uint8 = random_flip(images_uint8, generator)
        if self.cutout:
            fill = [round(m * 255) for m in self.mean]  # zero once normalised
            images_uint8 = random_cutout(images_uint8, self.cutout, fill, generator)
        return images_uint8

    def normalize(self, images_uint8: Tensor) -> Tensor:
        x = normalize(images_uint8, self.mean, self.std)
        if self.size is not None and x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def __call__(self, images_uint8: Tensor, train: bool, generator: torch.Generator | None = None) -> Tensor:
        return self.normalize(self.augment(images_uint8, generator) if train else images_uint8)
