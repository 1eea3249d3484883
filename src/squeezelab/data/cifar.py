"""CIFAR-10 from its python release: the ``cifar-10-batches-py`` folder, or the ``cifar-10-python.tar.gz``
archive read in place.

The batches are pickles, and unpickling can run any code the file names, so they are read with an unpickler
that builds numpy arrays and plain containers and refuses everything else.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from squeezelab.data.dataset import ImageDataset
from squeezelab.data.download import download as fetch
from squeezelab.errors import DataError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"

# What pickled numpy arrays need: numpy.core is numpy < 2's name for numpy._core; protocol 5 uses _frombuffer
# and Python 3's protocol 2 writes bytes through _codecs.encode.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, source: str) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise DataError(
                f"refusing to unpickle {module}.{name} from {self.source}: a CIFAR-10 batch holds only "
                "numpy arrays and lists, so this file is not one (and may be malicious)"
            )
        return super().find_class(module, name)


def unpickle_batch(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from the bytes of one batch file."""
    try:
        batch = _ArrayUnpickler(data, source).load()
    except DataError:
        raise
    except Exception as exc:  # a damaged pickle fails in many ways (UnpicklingError, EOFError, TypeError ...)
        raise DataError(f"{source} is not a readable CIFAR-10 batch: {type(exc).__name__}: {exc}") from None
    if not isinstance(batch, dict):
        raise DataError(f"{source} is not a CIFAR-10 batch: it holds a {type(batch).__name__}, not a dict")
    # The release was pickled by Python 2, so its keys load as bytes; accept batches re-pickled with str keys.
    batch = {key.decode("latin-1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    if "data" not in batch or "labels" not in batch:
        keys = ", ".join(sorted(map(str, batch)))
        raise DataError(f"{source} is not a CIFAR-10 batch: it needs keys data and labels, it has {keys}")
    images, labels = batch["data"], np.asarray(batch["labels"])
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072:
        shape = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataError(f"{source}: data must be a uint8 array of N x 3072 (3 x 32 x 32) pixels, it is {shape}")
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise DataError(f"{source}: labels must be {len(images):,} integers, they are {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(f"{source}: labels must be 0-9, found {labels.min()}..{labels.max()}")
    return images.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_batches(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The batches found in a cifar-10-batches-py folder or the release archive, by file name."""
    wanted = {*TRAIN_BATCHES, TEST_BATCH}
    batches = {}
    if root.is_dir():
        for name in sorted(wanted):
            if (root / name).is_file():
                batches[name] = unpickle_batch((root / name).read_bytes(), str(root / name))
        return batches
    try:
        with tarfile.open(root) as tar:
            # In archive order: seeking backwards in a gzip stream decompresses it again from the start.
            for member in tar:
                name = Path(member.name).name
                if member.isfile() and name in wanted:
                    data = tar.extractfile(member).read()
                    batches[name] = unpickle_batch(data, f"{root}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read {root}: {exc}") from None
    return batches


def _find(folder: Path) -> Path | None:
    for candidate in (folder / FOLDER, folder):
        if (candidate / TRAIN_BATCHES[0]).is_file():
            return candidate
    return folder / ARCHIVE if (folder / ARCHIVE).is_file() else None


def load_cifar10(folder: Path, *, download: bool, progress: bool) -> tuple[ImageDataset, ImageDataset | None]:
    """(train, test) from ``folder``; test is None when the source has no test_batch."""
    root = _find(folder)
    if root is None and download:
        fetch("cifar10", folder, progress=progress)
        root = folder / ARCHIVE
    if root is None:
        problem = f"{folder} not found" if not folder.is_dir() else f"{folder} holds neither {FOLDER}/ nor {ARCHIVE}"
        raise DataError(f"{problem}; pass --download to fetch CIFAR-10 into it, or put {ARCHIVE} there by hand")
    batches = _read_batches(root)
    missing = [name for name in TRAIN_BATCHES if name not in batches]
    if missing:
        raise DataError(f"{root} lacks {', '.join(missing)} of the CIFAR-10 training batches")
    train = _dataset([batches[name] for name in TRAIN_BATCHES])
    test = _dataset([batches[TEST_BATCH]]) if TEST_BATCH in batches else None
    return train, test


def _dataset(parts: list[tuple[np.ndarray, np.ndarray]]) -> ImageDataset:
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), list(CLASSES), "cifar10")
