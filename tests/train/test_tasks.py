"""Test-time views of the classification task: the mirror, and the one-pixel shifts."""

import torch
from torch import nn

from squeezelab.data import BatchTransform
from squeezelab.train.tasks import Classification


class _LeftHeavy(nn.Module):
    """Logits that depend on which half of the image is bright: a mirror changes them."""

    def forward(self, x):
        left = x[..., : x.shape[-1] // 2].mean((1, 2, 3))
        right = x[..., x.shape[-1] // 2 :].mean((1, 2, 3))
        return torch.stack([left, right], 1)


def test_tta_flip_averages_an_image_and_its_mirror():
    images = torch.zeros(4, 1, 4, 4, dtype=torch.uint8)
    images[..., :2] = 255
    labels = torch.zeros(4, dtype=torch.long)
    transform = BatchTransform((0.0,), (1.0,))
    _, _, plain = Classification().batch(_LeftHeavy(), images, labels, transform, train=False)
    _, _, averaged = Classification(tta_flip=True).batch(_LeftHeavy(), images, labels, transform, train=False)
    assert plain[0].tolist() == [1.0, 0.0]
    assert averaged[0].tolist() == [0.5, 0.5]
    # Training never averages: the augmentation already flips.
    _, _, train = Classification(tta_flip=True).batch(_LeftHeavy(), images, labels, transform, train=True)
    assert train[0].tolist() == [1.0, 0.0]


class _TwoPixels(nn.Module):
    """Logits that read two fixed pixels: a one-pixel shift changes them."""

    def forward(self, x):
        return torch.stack([x[:, 0, 0, 0], x[:, 0, 2, 2]], 1)


def test_tta_translate_weights_the_centre_half_and_each_reflect_padded_shift_a_quarter():
    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    images[:, :, 1, 1] = 255
    labels = torch.zeros(2, dtype=torch.long)
    transform = BatchTransform((0.0,), (1.0,))
    task = Classification(tta_translate=True)
    _, _, averaged = task.batch(_TwoPixels(), images, labels, transform, train=False)
    # Centre reads (0, 0); shifted down-right, pixel (0, 0) is the reflection of (1, 1): (1, 1); shifted
    # up-left, (0, 0) is (1, 1) and (2, 2) is (3, 3): (1, 0). Half of the first, a quarter of each other.
    assert averaged[0].tolist() == [0.5, 0.25]
    _, _, train = task.batch(_TwoPixels(), images, labels, transform, train=True)
    assert train[0].tolist() == [0.0, 0.0]
