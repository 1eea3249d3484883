"""scikit-learn's bundled 8x8 handwritten digits: a dataset that needs no download."""

from __future__ import annotations

import numpy as np
import torch

from squeezelab.data.dataset import ImageDataset


def load_digits() -> ImageDataset:
    from sklearn.datasets import (
        load_digits as sklearn_digits,  # here: scikit-learn takes a second to import, and only digits needs it
    )

    digits = sklearn_digits()
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)  # 0..16 -> 0..255
    images = torch.from_numpy(pixels).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return ImageDataset(images, labels, [str(d) for d in range(10)], "digits")
