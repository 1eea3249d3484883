"""Autoencoders: the traditional dense and convolutional ones, and the squeeze autoencoder.

Every autoencoder maps images (N, C, H, W) to a flat code (N, code_size) with ``encode`` and back with
``decode``; ``forward`` returns a reconstruction of the input's shape. Outputs pass through a sigmoid, so
targets are images scaled to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from squeezelab.errors import ConfigError
from squeezelab.models._checks import check_images, pair
from squeezelab.models.fire import Expand, FireUp, batch_norm_or_identity, check_levers, fire_for
from squeezelab.models.registry import register_model


class Autoencoder(nn.Module):
    """Common interface: ``encode(x) -> code``, ``decode(code) -> x_hat``, ``forward(x) -> x_hat``."""

    def __init__(self, name: str, in_chans: int, img_size: int | tuple[int, int], code_size: int) -> None:
        super().__init__()
        self.name = name
        self.in_chans = in_chans
        self.img_size = pair(img_size)
        self.code_size = code_size

    @property
    def in_features(self) -> int:
        return self.in_chans * self.img_size[0] * self.img_size[1]

    def encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, code: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x)).reshape(x.shape)


class _FlatInputAutoencoder(Autoencoder):
    """Dense models accept flattened images (N, C*H*W) as well as (N, C, H, W) batches."""

    def _flatten(self, x: Tensor) -> Tensor:
        if not isinstance(x, fx.Proxy) and x.dim() == 2 and x.shape[1] == self.in_features:
            return x  # (FX tracing, for int8, takes the image path: its proxies have no concrete rank)
        check_images(x, self.name, self.in_chans, size=self.img_size)
        return x.flatten(1)

    def _unflatten(self, flat: Tensor) -> Tensor:
        return flat.view(flat.shape[0], self.in_chans, *self.img_size)


def _mlp(sizes: Sequence[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU(inplace=True)]
    return layers


class DenseAutoencoder(_FlatInputAutoencoder):
    def __init__(
        self,
        in_chans: int,
        img_size: int | tuple[int, int],
        encoder_sizes: Sequence[int],
        code_size: int,
        decoder_sizes: Sequence[int],
    ) -> None:
        super().__init__("dense_ae", in_chans, img_size, code_size)
        # ReLU on the code as in the Keras tutorial the source material follows.
        self.encoder = nn.Sequential(*_mlp([self.in_features, *encoder_sizes, code_size]))
        hidden = [code_size, *decoder_sizes]
        self.decoder = nn.Sequential(*_mlp(hidden), nn.Linear(hidden[-1], self.in_features), nn.Sigmoid())

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(self._flatten(x))

    def decode(self, code: Tensor) -> Tensor:
        return self._unflatten(self.decoder(code))


@register_model("autoencoder", (1, 28, 28))
def dense_ae(
    in_chans: int = 1,
    img_size: int | tuple[int, int] = 28,
    encoder_sizes: Sequence[int] = (64,),
    code_size: int = 32,
    decoder_sizes: Sequence[int] = (32, 64),
) -> DenseAutoencoder:
    """Traditional dense autoencoder: 784-64-32 encoder, 32-32-64-784 decoder, sigmoid output."""
    return DenseAutoencoder(in_chans, img_size, encoder_sizes, code_size, decoder_sizes)


def _halvings(size: tuple[int, int], times: int) -> list[tuple[int, int]]:
    """Spatial sizes after each of ``times`` ceil-mode 2x2 poolings, starting with ``size`` itself."""
    sizes = [size]
    for _ in range(times):
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return sizes


class ConvAutoencoder(Autoencoder):
    def __init__(self, in_chans: int, img_size: int | tuple[int, int], channels: Sequence[int], code_size: int) -> None:
        super().__init__("conv_ae", in_chans, img_size, code_size)
        self.sizes = _halvings(self.img_size, len(channels))
        widths = [in_chans, *channels]
        encoder: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            encoder += [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
        self.encoder = nn.Sequential(*encoder)
        h, w = self.sizes[-1]
        self.bottleneck = (channels[-1], h, w)
        self.to_code = nn.Linear(channels[-1] * h * w, code_size)
        self.from_code = nn.Linear(code_size, channels[-1] * h * w)
        rev = widths[::-1]
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1)
            for c_in, c_out in zip(rev[:-1], rev[1:], strict=True)
        )

    def encode(self, x: Tensor) -> Tensor:
        check_images(x, self.name, self.in_chans, size=self.img_size)
        return self.to_code(self.encoder(x).flatten(1))

    def decode(self, code: Tensor) -> Tensor:
        x = F.relu(self.from_code(code)).view(code.shape[0], *self.bottleneck)
        targets = self.sizes[-2::-1]
        for i, (up, size) in enumerate(zip(self.up, targets, strict=True)):
            # output_size picks the output padding that restores odd sizes lost to ceil-mode pooling.
            x = up(x, output_size=size)
            x = torch.sigmoid(x) if i == len(self.up) - 1 else F.relu(x)
        return x


@register_model("autoencoder", (1, 28, 28))
def conv_ae(
    in_chans: int = 1,
    img_size: int | tuple[int, int] = 28,
    channels: Sequence[int] = (16, 32),
    code_size: int = 32,
) -> ConvAutoencoder:
    """Traditional convolutional autoencoder: conv + max-pool encoder, transposed-conv decoder."""
    return ConvAutoencoder(in_chans, img_size, channels, code_size)


class SqueezeAutoencoder(Autoencoder):
    """Fire modules on both sides of a linear code, built with the SqueezeNet paper's levers.

    Encoder: a stride-2 3x3 stem, then Fire modules with a max-pool before each but the first, then a 1x1
    convolution down to ``encoder_channels`` maps. Decoder: the code unfolds to ``decoder_channels`` maps,
    FireUp modules (squeeze, upsample, expand) climb back up, and a 3x3 convolution to 4 maps per channel
    is pixel-shuffled to full size, the sub-pixel head that spares a full-resolution layer. The linear maps
    to and from the code hold most of the parameters, so the decoder gets more maps than the encoder:
    measured on MNIST, the reconstruction needs them more.
    """

    def __init__(
        self,
        in_chans: int,
        img_size: int | tuple[int, int],
        stem_channels: int,
        fire_channels: Sequence[int],
        squeeze_ratio: float,
        pct_3x3: float,
        encoder_channels: int,
        decoder_channels: int,
        unfold_expand: int,
        batch_norm: bool,
        code_size: int,
    ) -> None:
        super().__init__("squeeze_ae", in_chans, img_size, code_size)
        if not fire_channels:
            raise ConfigError("squeeze_ae needs at least one Fire module: give fire_channels")
        check_levers(squeeze_ratio, pct_3x3)
        self.sizes = _halvings(self.img_size, len(fire_channels))
        stem = nn.Conv2d(in_chans, stem_channels, 3, stride=2, padding=1, bias=not batch_norm)
        self.stem = nn.Sequential(stem, batch_norm_or_identity(stem_channels, batch_norm), nn.ReLU(inplace=True))
        widths = [stem_channels, *fire_channels]
        encoder: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            if i:
                encoder.append(nn.MaxPool2d(2, ceil_mode=True))
            encoder.append(fire_for(c_in, c_out, squeeze_ratio, pct_3x3, batch_norm))
        encoder += [nn.Conv2d(widths[-1], encoder_channels, kernel_size=1), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*encoder)
        h, w = self.sizes[-1]
        # The code is linear: a ReLU here would waste code dimensions that land on zero.
        self.to_code = nn.Linear(encoder_channels * h * w, code_size)
        self.from_code = nn.Linear(code_size, decoder_channels * h * w)
        self.unfolded = (decoder_channels, h, w)
        # The unfolded code as the squeeze layer of a Fire module: an expand to many maps is cheap here, and
        # the ReLU on many maps is where conv_ae's 1,568-wide unfolding gets its quality (measured on MNIST).
        self.unfold = Expand(decoder_channels, unfold_expand, pct_3x3, batch_norm) if unfold_expand else nn.ReLU()
        rising = [unfold_expand or decoder_channels, *fire_channels[-2::-1]]
        self.up = nn.ModuleList(
            FireUp(c_in, c_out, squeeze_ratio, pct_3x3, batch_norm)
            for c_in, c_out in zip(rising[:-1], rising[1:], strict=True)
        )
        self.head = nn.Conv2d(rising[-1], in_chans * 4, 3, padding=1)
        # PyTorch's default init shrinks activations through this many thin layers until the sigmoid output is
        # constant and training stalls (measured: no progress in 5 MNIST epochs); He init keeps their scale.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def encode(self, x: Tensor) -> Tensor:
        check_images(x, self.name, self.in_chans, size=self.img_size)
        return self.to_code(self.encoder(self.stem(x)).flatten(1))

    def decode(self, code: Tensor) -> Tensor:
        x = self.unfold(self.from_code(code).view(code.shape[0], *self.unfolded))
        for up, size in zip(self.up, self.sizes[-2:0:-1], strict=True):
            x = up(x, size)
        x = F.pixel_shuffle(self.head(x), 2)  # the stem's stride undone: odd sizes come out one larger
        return torch.sigmoid(x[..., : self.img_size[0], : self.img_size[1]])


@register_model("autoencoder", (1, 28, 28))
def squeeze_ae(
    in_chans: int = 1,
    img_size: int | tuple[int, int] = 28,
    stem_channels: int = 16,
    fire_channels: Sequence[int] = (32, 64),
    squeeze_ratio: float = 0.25,
    pct_3x3: float = 0.5,
    encoder_channels: int = 6,
    decoder_channels: int = 8,
    unfold_expand: int = 64,
    batch_norm: bool = True,
    code_size: int = 32,
) -> SqueezeAutoencoder:
    """Squeeze autoencoder: Fire encoder, FireUp decoder with a pixel-shuffle head; the paper's levers as options."""
    return SqueezeAutoencoder(
        in_chans,
        img_size,
        stem_channels,
        fire_channels,
        squeeze_ratio,
        pct_3x3,
        encoder_channels,
        decoder_channels,
        unfold_expand,
        batch_norm,
        code_size,
    )
