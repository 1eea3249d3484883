import gzip
import struct
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def user_cache(tmp_path_factory, monkeypatch):
    """Caches that cannot go beside the data go here, never into the real home folder."""
    folder = tmp_path_factory.mktemp("user-cache")
    monkeypatch.setenv("SQUEEZELAB_CACHE", str(folder))
    return folder


def _write_idx(path: Path, array: np.ndarray) -> Path:
    """An IDX file: magic (uint8 type 0x08, dimension count), big-endian dimensions, then the bytes."""
    data = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.fixture
def write_idx():
    """write_idx(path, uint8 array) writes an IDX file, gzipped when the name ends in .gz."""
    return _write_idx


@pytest.fixture
def make_mnist():
    """make_mnist(folder, n_train, n_test, gz) writes a small MNIST in IDX files; returns its arrays."""

    def make(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True) -> dict[str, tuple]:
        rng = np.random.default_rng(0)
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".gz" if gz else ""
        arrays = {}
        for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
            if n == 0:
                continue
            images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, n, dtype=np.uint8)
            _write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
            _write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
            arrays[split] = (images, labels)
        return arrays

    return make
