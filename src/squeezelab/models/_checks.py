"""Input validation shared by the models, so a wrong shape fails with a message instead of deep in a conv."""

from __future__ import annotations

from torch import Tensor, fx

from squeezelab.errors import InputShapeError


def check_images(
    x: Tensor,
    model: str,
    channels: int,
    min_size: int | None = None,
    size: tuple[int, int] | None = None,
) -> None:
    """Require an (N, channels, H, W) batch with H, W >= min_size, or exactly ``size`` when given."""
    if isinstance(x, fx.Proxy):  # symbolic tracing (FX int8 quantization) has no concrete shape to check
        return
    shape = tuple(x.shape)
    if size is not None:
        expected = f"(N, {channels}, {size[0]}, {size[1]})"
        ok = x.dim() == 4 and shape[1] == channels and shape[2:] == tuple(size)
    else:
        expected = f"(N, {channels}, H, W) with H, W >= {min_size}"
        ok = x.dim() == 4 and shape[1] == channels and min(shape[2:]) >= min_size
    if not ok:
        raise InputShapeError(f"{model} expects input of shape {expected}, got {shape}")


def pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
