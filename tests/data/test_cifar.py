import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from squeezelab.data import DataError, load_dataset
from squeezelab.data.cifar import CLASSES


def _batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    # As in the release (pickled by Python 2): bytes keys, uint8 N x 3072 rows, labels a list of ints.
    return {
        b"batch_label": b"batch",
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"labels": rng.integers(0, 10, n).tolist(),
        b"filenames": [b"x.png"] * n,
    }


def _make_release(folder, n=4):
    """A tiny cifar-10-batches-py folder; returns its batches by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": _batch(n, i) for i in range(1, 6)} | {"test_batch": _batch(n, 9)}
    for name, batch in batches.items():
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES]}, f, protocol=2)
    return batches


def _expected(batches, names):
    images = np.concatenate([batches[name][b"data"] for name in names]).reshape(-1, 3, 32, 32)
    labels = sum((batches[name][b"labels"] for name in names), [])
    return torch.from_numpy(images), labels


def test_batches_folder(tmp_path):
    batches = _make_release(tmp_path / "cifar-10-batches-py")
    for spec in (f"cifar10:{tmp_path}", f"cifar10:{tmp_path / 'cifar-10-batches-py'}"):
        splits = load_dataset(spec)
        images, labels = _expected(batches, [f"data_batch_{i}" for i in range(1, 6)])
        assert splits.train.images.shape == (20, 3, 32, 32) and torch.equal(splits.train.images, images)
        assert splits.train.labels.dtype == torch.int64 and splits.train.labels.tolist() == labels
        test_images, test_labels = _expected(batches, ["test_batch"])
        assert torch.equal(splits.test.images, test_images) and splits.test.labels.tolist() == test_labels
        assert splits.train.classes == CLASSES and len(splits.mean) == 3


def test_release_archive_read_in_place(tmp_path):
    batches = _make_release(tmp_path / "src" / "cifar-10-batches-py")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    splits = load_dataset(f"cifar10:{tmp_path}")
    images, _ = _expected(batches, [f"data_batch_{i}" for i in range(1, 6)])
    assert torch.equal(splits.train.images, images) and len(splits.test) == 4


def test_wrong_keys(tmp_path):
    _make_release(tmp_path)
    with open(tmp_path / "data_batch_3", "wb") as f:
        pickle.dump({b"pixels": np.zeros((4, 3072), np.uint8), b"labels": [0] * 4}, f, protocol=2)
    with pytest.raises(DataError, match="data_batch_3 is not a CIFAR-10 batch: it needs keys data and labels"):
        load_dataset(f"cifar10:{tmp_path}")


@pytest.mark.parametrize(
    "data", [np.zeros((4, 1024), np.uint8), np.zeros((4, 3072), np.float32), np.zeros((4, 3, 32, 32), np.uint8)]
)
def test_wrong_shapes(tmp_path, data):
    _make_release(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": data, b"labels": [0] * 4}, f, protocol=2)
    with pytest.raises(DataError, match="test_batch: data must be a uint8 array of N x 3072"):
        load_dataset(f"cifar10:{tmp_path}")


def test_label_count_must_match(tmp_path):
    _make_release(tmp_path)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}, f)
    with pytest.raises(DataError, match="data_batch_1: labels must be 4 integers"):
        load_dataset(f"cifar10:{tmp_path}")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused(tmp_path):
    _make_release(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "data_batch_2", "wb") as f:
        pickle.dump({b"data": _Exploit(marker), b"labels": []}, f)
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os|nt)\.system from .*data_batch_2"):
        load_dataset(f"cifar10:{tmp_path}")
    assert not marker.exists()


def test_damaged_pickle(tmp_path):
    _make_release(tmp_path)
    (tmp_path / "data_batch_5").write_bytes(b"\x80\x02}q\x00(U")
    with pytest.raises(DataError, match="data_batch_5 is not a readable CIFAR-10 batch"):
        load_dataset(f"cifar10:{tmp_path}")


def test_missing_release_points_to_download(tmp_path):
    with pytest.raises(DataError, match="neither cifar-10-batches-py/ nor cifar-10-python.tar.gz; pass --download"):
        load_dataset(f"cifar10:{tmp_path}")
    _make_release(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="lacks data_batch_4"):
        load_dataset(f"cifar10:{tmp_path}")
