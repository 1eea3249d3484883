"""Datasets in memory as uint8 tensors, loaded from a spec string, and whole-batch transforms.

``load_dataset("cifar10:data/cifar")`` reads a dataset (``digits``, ``mnist:DIR``, ``fashion-mnist:DIR``,
``cifar10:DIR``, ``folder:DIR`` or ``folder:FILE.tar``) into a ``DataSplits``.
"""

from squeezelab.data.dataset import DataError, DataSplits, ImageDataset, load_dataset, split_validation
from squeezelab.data.download import DATASET_URLS, download
from squeezelab.data.transforms import BatchTransform, normalize, random_crop, random_flip

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
