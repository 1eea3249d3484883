"""Datasets in memory as uint8 tensors, loaded from a spec string, and whole-batch transforms.

``load_dataset("cifar10:data/cifar")`` reads a dataset (``digits``, ``mnist:DIR``, ``fashion-mnist:DIR``,
``cifar10:DIR``, ``folder:DIR`` or ``folder:FILE.tar``) into a ``DataSplits``: this module dispatches the spec
to its loader, and every loader returns the types of ``dataset.py``.
"""

from __future__ import annotations

from pathlib import Path

from squeezelab.data import cifar, folder, idx
from squeezelab.data.dataset import DataSplits, ImageDataset, reshape, split_validation
from squeezelab.data.digits import load_digits
from squeezelab.data.download import DATASET_URLS, download
from squeezelab.data.transforms import BatchTransform, normalize, random_crop, random_flip
from squeezelab.errors import DataError

SPEC_FORMS = "digits, mnist:DIR, fashion-mnist:DIR, cifar10:DIR, folder:DIR or folder:FILE.tar"

__all__ = [
    "DATASET_URLS",
    "BatchTransform",
    "DataError",
    "DataSplits",
    "ImageDataset",
    "download",
    "load_dataset",
    "normalize",
    "random_crop",
    "random_flip",
    "split_validation",
]


def load_dataset(
    spec: str,
    *,
    download: bool = False,
    image_size: int | None = None,
    grayscale: bool | None = None,
    on_bad_image: str = "error",
    cache: bool = True,
    progress: bool = True,
) -> DataSplits:
    """Load a dataset from a spec: ``digits``, ``mnist:DIR``, ``fashion-mnist:DIR``, ``cifar10:DIR``,
    ``folder:DIR`` or ``folder:FILE.tar``.

    ``image_size`` makes every image square at that size (shorter side scaled, then centre-cropped);
    ``grayscale`` forces 1 (True) or 3 (False) channels. ``download`` fetches missing MNIST, Fashion-MNIST or
    CIFAR-10 files. ``on_bad_image`` ("error" or "skip") and ``cache`` apply to folders and tars, which are
    decoded once and then read from a safetensors cache.
    """
    if image_size is not None and image_size < 1:
        raise DataError(f"the image size must be a positive whole number, got {image_size!r}")
    if on_bad_image not in ("error", "skip"):
        raise DataError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
    scheme, colon, arg = spec.partition(":")
    path = Path(arg).expanduser()
    if scheme == "digits" and not colon:
        train, test = load_digits(), None
    elif scheme in idx.CLASSES and arg:
        train, test = idx.load_idx(scheme, path, download=download, progress=progress)
    elif scheme == "cifar10" and arg:
        train, test = cifar.load_cifar10(path, download=download, progress=progress)
    elif scheme == "folder" and arg:
        train, test = folder.load_folder(
            path, image_size=image_size, grayscale=grayscale, on_bad_image=on_bad_image, cache=cache, progress=progress
        )
    else:
        raise DataError(f"unknown dataset {spec!r}; use one of: {SPEC_FORMS}")
    if scheme != "folder":  # folders are resized and converted while they are decoded
        train = reshape(train, image_size, grayscale)
        test = None if test is None else reshape(test, image_size, grayscale)
    return DataSplits.from_train(train, test, spec)
