import gzip

import numpy as np
import pytest
import torch

from squeezelab.data import DataError, load_dataset


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, make_mnist, gz):
    arrays = make_mnist(tmp_path / "mnist", n_train=12, n_test=5, gz=gz)
    splits = load_dataset(f"mnist:{tmp_path / 'mnist'}")
    for ds, (images, labels) in ((splits.train, arrays["train"]), (splits.test, arrays["test"])):
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(images), 1, 28, 28)
        assert ds.images.is_contiguous()
        assert torch.equal(ds.images[:, 0], torch.from_numpy(images))
        assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == labels.tolist()
        assert ds.classes == [str(d) for d in range(10)] and ds.name == "mnist"
    assert splits.mean == pytest.approx((arrays["train"][0].mean() / 255,))
    assert splits.std == pytest.approx((arrays["train"][0].std() / 255,))


def test_fashion_mnist_names_and_optional_test_split(tmp_path, make_mnist):
    make_mnist(tmp_path, n_test=0)
    splits = load_dataset(f"fashion-mnist:{tmp_path}")
    assert splits.test is None
    assert splits.train.classes[0] == "T-shirt/top" and splits.train.classes[-1] == "Ankle boot"
    assert splits.train.name == "fashion-mnist"


def test_resize_and_channels_apply_to_idx(tmp_path, make_mnist):
    make_mnist(tmp_path)
    splits = load_dataset(f"mnist:{tmp_path}", image_size=32, grayscale=False)
    assert splits.train.images.shape == (12, 3, 32, 32) and splits.test.images.shape == (5, 3, 32, 32)
    assert torch.equal(splits.train.images[:, 0], splits.train.images[:, 2])
    assert len(splits.mean) == 3


def test_wrong_magic(tmp_path, make_mnist, write_idx):
    make_mnist(tmp_path)
    # A label file where the images should be: magic 2049, not 2051.
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros(12, np.uint8))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz is not an IDX image file.*2049.*2051"):
        load_dataset(f"mnist:{tmp_path}")


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_file(tmp_path, make_mnist, gz):
    make_mnist(tmp_path, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    path = tmp_path / name
    data = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    path.write_bytes(gzip.compress(data[:-100]) if gz else data[:-100])
    with pytest.raises(DataError, match=rf"{name} is truncated"):
        load_dataset(f"mnist:{tmp_path}")


def test_cut_off_gzip_stream(tmp_path, make_mnist):
    make_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="cannot read .*train-labels-idx1-ubyte.gz"):
        load_dataset(f"mnist:{tmp_path}")


def test_extra_bytes_are_an_error(tmp_path, make_mnist):
    make_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DataError, match="1 bytes more than its header"):
        load_dataset(f"mnist:{tmp_path}")


def test_image_and_label_counts_must_match(tmp_path, make_mnist, write_idx):
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(DataError, match="12 images but .* 11 labels"):
        load_dataset(f"mnist:{tmp_path}")


def test_labels_must_be_digits(tmp_path, make_mnist, write_idx):
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(12, 10, np.uint8))
    with pytest.raises(DataError, match="label 10"):
        load_dataset(f"mnist:{tmp_path}")


def test_half_a_test_split_is_an_error(tmp_path, make_mnist):
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\[\.gz\] is missing"):
        load_dataset(f"mnist:{tmp_path}")


def test_missing_folder_or_file_points_to_download(tmp_path, make_mnist):
    with pytest.raises(DataError, match=r"not found; pass --download"):
        load_dataset(f"mnist:{tmp_path / 'nowhere'}")
    make_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"has no train-labels-idx1-ubyte\[\.gz\]; pass --download"):
        load_dataset(f"mnist:{tmp_path}")
