"""The Fire module (SqueezeNet, Iandola et al. 2016, section 3.2).

A 1x1 *squeeze* convolution cuts the channel count, then parallel 1x1 and 3x3 *expand* convolutions
(optionally a 5x5 one as well) are concatenated. Attribute names match torchvision's ``Fire`` so that
published state dicts load unchanged; the 5x5 branch and the bypass only exist when asked for.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from squeezelab.errors import ConfigError

Bypass = Literal["none", "identity", "conv"]


def batch_norm_or_identity(channels: int, enabled: bool) -> nn.Module:
    """The BN that follows a convolution when ``enabled``, else an Identity: forward is the same code either way."""
    return nn.BatchNorm2d(channels) if enabled else nn.Identity()


class Fire(nn.Module):
    def __init__(
        self,
        inplanes: int,
        squeeze_planes: int,
        expand1x1_planes: int,
        expand3x3_planes: int,
        expand5x5_planes: int = 0,
        bypass: Bypass = "none",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.inplanes = inplanes
        self.out_channels = expand1x1_planes + expand3x3_planes + expand5x5_planes
        # With batch norm each convolution is followed by its own BN (its bias would be redundant), which
        # inference folds back into the convolution.
        bias = not batch_norm
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1, bias=bias)
        self.squeeze_bn = batch_norm_or_identity(squeeze_planes, batch_norm)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1, bias=bias)
        self.expand1x1_bn = batch_norm_or_identity(expand1x1_planes, batch_norm)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1, bias=bias)
        self.expand3x3_bn = batch_norm_or_identity(expand3x3_planes, batch_norm)
        self.expand3x3_activation = nn.ReLU(inplace=True)
        if expand5x5_planes:
            self.expand5x5 = nn.Conv2d(squeeze_planes, expand5x5_planes, kernel_size=5, padding=2, bias=bias)
            self.expand5x5_bn = batch_norm_or_identity(expand5x5_planes, batch_norm)
            self.expand5x5_activation = nn.ReLU(inplace=True)
        else:
            self.expand5x5 = None
        if bypass == "identity" and inplanes != self.out_channels:
            raise ConfigError(f"an identity bypass needs equal channels, got {inplanes} -> {self.out_channels}")
        if bypass not in ("none", "identity", "conv"):
            raise ConfigError(f"bypass must be 'none', 'identity' or 'conv', got {bypass!r}")
        self.bypass_kind = bypass
        # The paper's complex bypass: a 1x1 conv where the channel counts differ.
        self.bypass = nn.Conv2d(inplanes, self.out_channels, kernel_size=1) if bypass == "conv" else None

    def forward(self, x: Tensor) -> Tensor:
        s = self.squeeze_activation(self.squeeze_bn(self.squeeze(x)))
        branches = [
            self.expand1x1_activation(self.expand1x1_bn(self.expand1x1(s))),
            self.expand3x3_activation(self.expand3x3_bn(self.expand3x3(s))),
        ]
        if self.expand5x5 is not None:
            branches.append(self.expand5x5_activation(self.expand5x5_bn(self.expand5x5(s))))
        out = torch.cat(branches, 1)
        if self.bypass is not None:
            out = out + self.bypass(x)
        elif self.bypass_kind == "identity":
            out = out + x
        return out


def check_levers(squeeze_ratio: float, pct_3x3: float) -> None:
    """The paper's design-space levers (section 5): the squeeze ratio and the share of 3x3 expand filters."""
    if not 0 < squeeze_ratio <= 1 or not 0 <= pct_3x3 <= 1:
        raise ConfigError("squeeze_ratio must be in (0, 1] and pct_3x3 in [0, 1]")


def fire_planes(out_planes: int, squeeze_ratio: float, pct_3x3: float) -> tuple[int, int, int]:
    """(squeeze, expand 1x1, expand 3x3) planes of a module with ``out_planes`` outputs, from the levers."""
    expand3x3 = round(pct_3x3 * out_planes)
    return max(1, round(squeeze_ratio * out_planes)), out_planes - expand3x3, expand3x3


def fire_for(inplanes: int, out_planes: int, squeeze_ratio: float, pct_3x3: float, batch_norm: bool = False) -> Fire:
    """A Fire module with ``out_planes`` outputs, its squeeze and expand planes set by the levers."""
    return Fire(inplanes, *fire_planes(out_planes, squeeze_ratio, pct_3x3), batch_norm=batch_norm)


class Expand(nn.Module):
    """Fire's expand half on its own: parallel 1x1 and 3x3 convolutions, concatenated, then ReLU."""

    def __init__(self, inplanes: int, out_planes: int, pct_3x3: float, batch_norm: bool = False) -> None:
        super().__init__()
        _, expand1x1, expand3x3 = fire_planes(out_planes, 1.0, pct_3x3)
        self.expand1x1 = nn.Conv2d(inplanes, expand1x1, kernel_size=1, bias=not batch_norm)
        self.expand1x1_bn = batch_norm_or_identity(expand1x1, batch_norm)
        self.expand3x3 = nn.Conv2d(inplanes, expand3x3, kernel_size=3, padding=1, bias=not batch_norm)
        self.expand3x3_bn = batch_norm_or_identity(expand3x3, batch_norm)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(torch.cat([self.expand1x1_bn(self.expand1x1(x)), self.expand3x3_bn(self.expand3x3(x))], 1))


class FireUp(Expand):
    """Decoder counterpart of Fire: squeeze with 1x1 at low resolution, upsample, then expand 1x1 | 3x3.

    Squeezing before upsampling keeps the expensive 3x3 expand on few input channels, the same economy
    the encoder's Fire module makes.
    """

    def __init__(
        self, inplanes: int, out_planes: int, squeeze_ratio: float, pct_3x3: float, batch_norm: bool = False
    ) -> None:
        squeeze = fire_planes(out_planes, squeeze_ratio, pct_3x3)[0]
        super().__init__(squeeze, out_planes, pct_3x3, batch_norm)
        self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1, bias=not batch_norm)
        self.squeeze_bn = batch_norm_or_identity(squeeze, batch_norm)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        s = nn.functional.interpolate(torch.relu(self.squeeze_bn(self.squeeze(x))), size=size, mode="nearest")
        return super().forward(s)
