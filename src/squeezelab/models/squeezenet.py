"""SqueezeNet (Iandola et al. 2016, "AlexNet-level accuracy with 50x fewer parameters").

``squeezenet1_0`` and ``squeezenet1_1`` follow torchvision's module layout exactly (``features.N``,
``classifier.1``), so torchvision's ImageNet checkpoints load strictly and compute the same outputs.
``squeezenet_cifar`` keeps the Fire macro-architecture but drops the aggressive early downsampling that a
32x32 image cannot afford, and exposes the paper's design-space knobs (section 5) and bypasses (section 6).
"""

from __future__ import annotations

import math
from os import PathLike
from typing import Literal

import torch
from torch import Tensor, nn

from squeezelab.errors import SqueezelabError
from squeezelab.models._checks import check_images
from squeezelab.models.fire import Fire, check_levers
from squeezelab.models.registry import register_model


class SqueezeNet(nn.Module):
    """Features, then a 1x1 conv classifier and global average pooling (no fully connected layer)."""

    def __init__(
        self,
        features: nn.Sequential,
        feature_channels: int,
        num_classes: int,
        dropout: float,
        in_chans: int,
        min_input_size: int,
        relu_logits: bool = True,
        name: str = "squeezenet",
    ) -> None:
        super().__init__()
        self.name = name
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.min_input_size = min_input_size
        self.features = features
        final_conv = nn.Conv2d(feature_channels, num_classes, kernel_size=1)
        # The paper puts a ReLU on the class scores; kept for the ImageNet models so that published weights
        # give published outputs, dropped for the CIFAR model where it zeroes every negative logit.
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            final_conv,
            nn.ReLU(inplace=True) if relu_logits else nn.Identity(),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, self.name, self.in_chans, min_size=self.min_input_size)
        x = self.features(x)
        x = self.classifier(x)
        return torch.flatten(x, 1)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


@register_model("classifier", (3, 224, 224))
def squeezenet1_0(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet v1.0 as in the paper (1.25M parameters, 0.82 GMACs at 224x224)."""
    features = nn.Sequential(
        nn.Conv2d(in_chans, 96, kernel_size=7, stride=2),
        nn.ReLU(inplace=True),
        _pool(),
        Fire(96, 16, 64, 64),
        Fire(128, 16, 64, 64),
        Fire(128, 32, 128, 128),
        _pool(),
        Fire(256, 32, 128, 128),
        Fire(256, 48, 192, 192),
        Fire(384, 48, 192, 192),
        Fire(384, 64, 256, 256),
        _pool(),
        Fire(512, 64, 256, 256),
    )
    return SqueezeNet(features, 512, num_classes, dropout, in_chans, min_input_size=21, name="squeezenet1_0")


@register_model("classifier", (3, 224, 224))
def squeezenet1_1(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet v1.1: 3x3 stem and earlier pooling, 2.4x fewer MACs than v1.0 at the same accuracy."""
    features = nn.Sequential(
        nn.Conv2d(in_chans, 64, kernel_size=3, stride=2),
        nn.ReLU(inplace=True),
        _pool(),
        Fire(64, 16, 64, 64),
        Fire(128, 16, 64, 64),
        _pool(),
        Fire(128, 32, 128, 128),
        Fire(256, 32, 128, 128),
        _pool(),
        Fire(256, 48, 192, 192),
        Fire(384, 48, 192, 192),
        Fire(384, 64, 256, 256),
        Fire(512, 64, 256, 256),
    )
    return SqueezeNet(features, 512, num_classes, dropout, in_chans, min_input_size=17, name="squeezenet1_1")


@register_model("classifier", (3, 32, 32))
def squeezenet_cifar(
    num_classes: int = 10,
    in_chans: int = 3,
    dropout: float = 0.5,
    stem_channels: int = 64,
    stages: tuple[int, ...] = (2, 2, 4),
    base_e: int = 128,
    incr_e: int = 128,
    freq: int = 2,
    squeeze_ratio: float = 0.125,
    pct_3x3: float = 0.5,
    expand_5x5: bool = False,
    bypass: Literal["none", "simple", "complex"] = "none",
    batch_norm: bool = False,
    first_pool: bool = True,
) -> SqueezeNet:
    """SqueezeNet for 32x32 images: 3x3 stride-1 stem, Fire stages split by 2x2 max pooling.

    Fire module i (0-based, eight by default as in the paper) expands to
    ``e_i = base_e + incr_e * floor(i / freq)`` channels and squeezes to ``squeeze_ratio * e_i``;
    ``pct_3x3`` of the expand channels are 3x3 (paper section 5). With ``expand_5x5`` the 3x3 share is split
    evenly between 3x3 and 5x5 kernels, so every module keeps its output width. ``bypass="simple"`` adds
    identity shortcuts around the modules whose input and output widths match; ``"complex"`` adds 1x1 conv
    shortcuts around the others too (paper section 6). ``batch_norm`` puts a BatchNorm after every convolution
    but the classifier: not in the paper, it is what lets a high learning rate converge in few epochs. Without
    ``first_pool`` the first stage runs at full resolution (about 4x its MACs, the same parameters).
    """
    if bypass not in ("none", "simple", "complex"):
        raise SqueezelabError(f"bypass must be 'none', 'simple' or 'complex', got {bypass!r}")
    check_levers(squeeze_ratio, pct_3x3)
    layers: list[nn.Module] = [nn.Conv2d(in_chans, stem_channels, kernel_size=3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(stem_channels))
    layers.append(nn.ReLU(inplace=True))
    channels = stem_channels
    index = 0
    for stage_index, stage_size in enumerate(stages):
        if stage_index or first_pool:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
        for _ in range(stage_size):
            expand = base_e + incr_e * (index // freq)
            e3 = round(expand * pct_3x3)
            e5 = e3 // 2 if expand_5x5 else 0
            e3 -= e5
            e1 = expand - e3 - e5
            if bypass == "none":
                shortcut = "none"
            elif channels == expand:
                shortcut = "identity"
            else:
                shortcut = "conv" if bypass == "complex" else "none"
            squeeze = max(1, math.floor(squeeze_ratio * expand))
            layers.append(Fire(channels, squeeze, e1, e3, e5, bypass=shortcut, batch_norm=batch_norm))
            channels = expand
            index += 1
    # 2x2 pools with ceil mode never produce an empty map, so any size >= 1 works; 16 keeps the design sane.
    return SqueezeNet(
        nn.Sequential(*layers),
        channels,
        num_classes,
        dropout,
        in_chans,
        min_input_size=16,
        relu_logits=False,
        name="squeezenet_cifar",
    )


def load_torchvision_weights(model: nn.Module, path: str | PathLike, strict: bool = True) -> nn.Module:
    """Load a torchvision ``.pth`` state dict into a model of the same layout.

    The file is read with ``weights_only=True``: tensors and plain containers only, never arbitrary pickles.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SqueezelabError(f"weights file not found: {path}") from None
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SqueezelabError(f"cannot read {path} as a weights-only state dict: {first_line}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SqueezelabError(f"{path} does not hold a state dict of tensors")
    own = model.state_dict()
    wrong_shape = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if wrong_shape:
        k = wrong_shape[0]
        raise SqueezelabError(
            f"{path}: {k} has shape {tuple(state[k].shape)}, the model expects {tuple(own[k].shape)} "
            "(a different num_classes or in_chans?)"
        )
    result = model.load_state_dict(state, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise SqueezelabError(
            f"{path} does not match the model: missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
    return model
