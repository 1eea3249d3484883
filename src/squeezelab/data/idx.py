"""MNIST and Fashion-MNIST from their IDX files, raw or gzipped.

An IDX file is a big-endian header (magic number, then one uint32 per dimension) followed by the array. The
magic number encodes the element type and the dimension count: 2051 is uint8 with 3 dimensions (images),
2049 uint8 with 1 (labels), so checking it checks both.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from squeezelab.data.dataset import ImageDataset
from squeezelab.data.download import download as fetch
from squeezelab.errors import DataError

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049

CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
# (images, labels) per split; each may also be stored with a .gz suffix.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The array stored in one IDX file, after checking that the file is exactly what its header says."""
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:  # a cut-off gzip stream raises EOFError
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(data) >= 4 and (found := int.from_bytes(data[:4], "big")) != magic:
        what = "image" if magic == IMAGE_MAGIC else "label"
        raise DataError(f"{path} is not an IDX {what} file: its magic number is {found}, expected {magic}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: {len(data)} bytes, shorter than its {header}-byte header")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + math.prod(shape)
    if len(data) < expected:
        raise DataError(f"{path} is truncated: its header promises {expected:,} bytes, it has {len(data):,}")
    if len(data) > expected:
        raise DataError(f"{path} has {len(data) - expected:,} bytes more than its header describes")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_split(kind: str, image_path: Path, label_path: Path) -> ImageDataset:
    images = read_idx(image_path, IMAGE_MAGIC)
    labels = read_idx(label_path, LABEL_MAGIC)
    if len(images) != len(labels):
        raise DataError(f"{image_path} holds {len(images):,} images but {label_path} {len(labels):,} labels")
    if labels.size and labels.max() >= len(CLASSES[kind]):
        raise DataError(f"{label_path} has label {labels.max()}; {TITLES[kind]} labels are 0-9")
    # frombuffer arrays are read-only views of the file's bytes; the copy gives torch memory it may write.
    return ImageDataset(
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        list(CLASSES[kind]),
        kind,
    )


def load_idx(kind: str, folder: Path, *, download: bool, progress: bool) -> tuple[ImageDataset, ImageDataset | None]:
    """(train, test) of ``kind`` ("mnist" or "fashion-mnist"); test is None when the t10k files are absent."""
    missing = [name for pair in FILES.values() for name in pair if _find(folder, name) is None]
    if download and missing:
        fetch(kind, folder, [f"{name}.gz" for name in missing], progress=progress)
    splits: dict[str, ImageDataset | None] = {}
    for split, names in FILES.items():
        paths = [_find(folder, name) for name in names]
        if None not in paths:
            splits[split] = _read_split(kind, *paths)
            continue
        absent = [f"{name}[.gz]" for name, path in zip(names, paths, strict=True) if path is None]
        if split == "test" and len(absent) == 2:
            splits[split] = None
        elif split == "test":
            raise DataError(f"{folder} has only half of the {TITLES[kind]} test split: {absent[0]} is missing")
        else:
            problem = f"{folder} not found" if not folder.is_dir() else f"{folder} has no {' or '.join(absent)}"
            raise DataError(
                f"{problem}; pass --download to fetch {TITLES[kind]} into it, or put "
                f"{' and '.join(f'{name}.gz' for name in names)} there by hand"
            )
    return splits["train"], splits["test"]
