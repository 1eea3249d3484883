"""AlexNet-style baselines: the "traditional" classifier SqueezeNet is measured against.

``alexnet`` is torchvision's single-tower AlexNet (same layout and keys, 61.1M parameters at 1000 classes).
``alexnet_cifar`` keeps the five convolutions and the two 4096-wide fully connected layers, with 3x3 stride-1
convolutions that suit 32x32 images; its fully connected layers hold most of its parameters, as in AlexNet.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from squeezelab.models._checks import check_images
from squeezelab.models.registry import register_model


class AlexNet(nn.Module):
    def __init__(
        self,
        features: nn.Sequential,
        pooled: int,
        num_classes: int,
        dropout: float,
        in_chans: int,
        min_input_size: int,
        name: str,
    ) -> None:
        super().__init__()
        self.name = name
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.min_input_size = min_input_size
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * pooled * pooled, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, self.name, self.in_chans, min_size=self.min_input_size)
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _features(stem: nn.Conv2d, second_kernel: int, pool: int, pool_stride: int) -> nn.Sequential:
    """The five convolutions (64, 192, 384, 256, 256 channels) with their ReLUs and three max pools."""

    def max_pool() -> nn.MaxPool2d:
        return nn.MaxPool2d(kernel_size=pool, stride=pool_stride)

    return nn.Sequential(
        stem,
        nn.ReLU(inplace=True),
        max_pool(),
        nn.Conv2d(64, 192, kernel_size=second_kernel, padding=second_kernel // 2),
        nn.ReLU(inplace=True),
        max_pool(),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        max_pool(),
    )


@register_model("classifier", (3, 224, 224))
def alexnet(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012), torchvision's layout: the ImageNet-size baseline."""
    stem = nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2)
    features = _features(stem, second_kernel=5, pool=3, pool_stride=2)
    return AlexNet(features, 6, num_classes, dropout, in_chans, min_input_size=63, name="alexnet")


@register_model("classifier", (3, 32, 32))
def alexnet_cifar(num_classes: int = 10, in_chans: int = 3, dropout: float = 0.5) -> AlexNet:
    """AlexNet for 32x32 images: the same five convs and 4096-wide FC layers, 3x3 convs, 2x2 pools."""
    stem = nn.Conv2d(in_chans, 64, kernel_size=3, padding=1)
    features = _features(stem, second_kernel=3, pool=2, pool_stride=2)
    return AlexNet(features, 4, num_classes, dropout, in_chans, min_input_size=16, name="alexnet_cifar")
