"""Evaluation metrics for classifiers (top-k, confusion matrix) and autoencoders (MSE, PSNR, SSIM).

Everything is batched torch on the tensors' own device, with one value per sample where that makes sense, so
callers can average over a data set themselves (weighting batches by size) and keep per-sample values for plots.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from squeezelab.errors import ConfigError, InputShapeError


def topk_correct(logits: Tensor, labels: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, Tensor]:
    """Number of samples whose label is among the k largest logits, for each k, as 0-dim int64 tensors.

    ``logits`` is (N, num_classes) and ``labels`` (N,). A k above the class count is clamped to it (so top-5 of a
    3-class problem counts every sample), which keeps one ``ks`` usable for every data set.
    """
    num_classes = logits.shape[1]
    top = logits.topk(min(max(ks), num_classes), dim=1).indices  # (N, max k), best first
    hits = top == labels.unsqueeze(1)  # at most one True per row
    return {k: hits[:, : min(k, num_classes)].any(dim=1).sum() for k in ks}


def confusion_matrix(preds: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """int64 (num_classes, num_classes) counts: rows are true classes, columns predicted classes."""
    preds, labels = preds.long().flatten(), labels.long().flatten()
    if preds.numel() and (min(preds.min(), labels.min()) < 0 or max(preds.max(), labels.max()) >= num_classes):
        raise ConfigError(f"class indices must lie in [0, {num_classes}), got a value outside it")
    # One bincount over (true, predicted) pairs flattened to a single index counts every cell at once.
    counts = torch.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def per_class_accuracy(confusion: Tensor) -> Tensor:
    """Recall of each class from a confusion matrix (rows = true); NaN for classes with no samples."""
    return confusion.diagonal() / confusion.sum(dim=1)  # true division gives floats, and 0 / 0 the NaN


def _check_pair(x_hat: Tensor, x: Tensor, dims: int | None = None) -> None:
    """Same shape, a batch dimension, and exactly ``dims`` dimensions when given."""
    if x_hat.shape != x.shape or x.dim() == 0 or dims is not None and x.dim() != dims:
        expected = "(N, C, H, W) batches" if dims == 4 else "batches"
        raise InputShapeError(f"expected two {expected} of one shape, got {tuple(x_hat.shape)} and {tuple(x.shape)}")


def mse(x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean squared error of each sample over all its values, shape (N,)."""
    _check_pair(x_hat, x)
    return (x_hat - x).pow(2).reshape(len(x), -1).mean(dim=1)


def psnr(x_hat: Tensor, x: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio of each sample in dB, shape (N,).

    ``data_range`` is the span of valid values (1 for images in [0, 1]). A perfect reconstruction has zero error
    and gives ``inf``; average PSNR over samples with that in mind (or average the MSE and convert once).
    """
    return psnr_from_mse(mse(x_hat, x), data_range)


def psnr_from_mse(errors: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB of per-sample mean squared errors already computed (saves a second pass over the images)."""
    return 10 * torch.log10(data_range**2 / errors)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    weights = torch.exp(-coords.pow(2) / (2 * sigma**2))
    return weights / weights.sum()


def ssim(
    x_hat: Tensor,
    x: Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
) -> Tensor:
    """Structural similarity (Wang et al. 2004) of each sample, shape (N,), for (N, C, H, W) batches.

    Local means, variances and the covariance are weighted by a Gaussian window (population statistics,
    K1 = 0.01, K2 = 0.03); the SSIM map is kept only where the window fits inside the image ('valid'), averaged
    over positions, then over channels. With the defaults this matches scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.

    An image smaller than the window (say 8x8 against 11x11) uses a window of the image's size instead, with the
    same ``sigma``: the Gaussian is truncated earlier and the map shrinks to a few positions, where scikit-image
    would refuse the image.
    """
    _check_pair(x_hat, x, dims=4)
    _, channels, height, width = x.shape
    # Variances are differences of nearby squares (E[x^2] - E[x]^2): half precision would cancel them away.
    dtype = torch.promote_types(x.dtype, torch.float32)
    x_hat, x = x_hat.to(dtype), x.to(dtype)

    size = min(window_size, height, width)
    window = _gaussian_window(size, sigma, dtype, x.device)
    # The five local statistics of every channel come from one grouped, separable convolution pass.
    maps = torch.cat([x_hat, x, x_hat * x_hat, x * x, x_hat * x], dim=1)
    groups = maps.shape[1]
    maps = F.conv2d(maps, window.view(1, 1, size, 1).expand(groups, 1, size, 1), groups=groups)
    maps = F.conv2d(maps, window.view(1, 1, 1, size).expand(groups, 1, 1, size), groups=groups)
    mu_a, mu_b, aa, bb, ab = maps.split(channels, dim=1)
    var_a, var_b, cov = aa - mu_a.pow(2), bb - mu_b.pow(2), ab - mu_a * mu_b

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a.pow(2) + mu_b.pow(2) + c1) * (var_a + var_b + c2))
    return ssim_map.flatten(2).mean(dim=2).mean(dim=1)
