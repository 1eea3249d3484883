"""Write the sample photos scikit-image and scikit-learn ship as 8-bit grayscale PNGs, for ``codec eval``.

    pip install scikit-image
    python benchmarks/codec_photos.py photos/
    squeezelab codec eval --images photos/ --out rd-photos

Ten natural photos from 300x400 to 512x512 (427x640 for sklearn's two), none of them CIFAR-10: images the
codec never saw, larger than its 32x32 training images. Colour photos are converted with Pillow's ITU-R 601
luma, so the PNGs are the same on every machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

SKIMAGE = ("camera", "astronaut", "coffee", "chelsea", "rocket", "coins", "moon", "clock")


def photos() -> dict[str, np.ndarray]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    found = {name: getattr(skimage.data, name)() for name in SKIMAGE}
    sample = load_sample_images()
    for path, image in zip(sample.filenames, sample.images, strict=True):
        found[Path(path).stem] = image
    return found


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, pixels in photos().items():
        Image.fromarray(pixels).convert("L").save(out / f"{name}.png")
        print(out / f"{name}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "photos"))
