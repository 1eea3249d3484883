import pytest
import torch

from squeezelab.data import DataError, DataSplits, ImageDataset, load_dataset, split_validation


def test_digits():
    splits = load_dataset("digits")
    train = splits.train
    assert train.images.shape == (1797, 1, 8, 8) and train.images.dtype == torch.uint8
    assert train.images.max() == 255 and train.images.min() == 0
    assert train.labels.dtype == torch.int64 and train.labels.bincount().tolist()[0] == 178
    assert train.classes == [str(d) for d in range(10)] and train.name == "digits" and splits.test is None
    assert train.channels == 1 and train.image_size == (8, 8)
    expected = (train.images.double() / 255).mean().item()
    assert splits.mean == pytest.approx((expected,)) and splits.spec == "digits"


def test_digits_resized_in_one_batch():
    small, large = load_dataset("digits").train, load_dataset("digits", image_size=28, grayscale=False).train
    assert large.images.shape == (1797, 3, 28, 28) and large.images.dtype == torch.uint8
    assert torch.equal(large.labels, small.labels)
    # Bilinear upsampling keeps the overall brightness.
    assert large.images.double().mean().item() == pytest.approx(small.images.double().mean().item(), rel=0.05)


@pytest.mark.parametrize("spec", ["mnist", "cifar10:", "imagenet:/data", "digits:/x", "folder:", ""])
def test_malformed_specs_list_the_valid_forms(spec):
    with pytest.raises(DataError, match=r"unknown dataset .*; use one of: digits, mnist:DIR, .*folder:FILE.tar"):
        load_dataset(spec)


def test_bad_options():
    with pytest.raises(DataError, match="on_bad_image"):
        load_dataset("digits", on_bad_image="ignore")
    with pytest.raises(DataError, match="image size"):
        load_dataset("digits", image_size=0)


def _dataset(n=100, classes=4, labelled=True) -> ImageDataset:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2)
    labels = torch.arange(n) % classes if labelled else None
    return ImageDataset(images, labels, [str(c) for c in range(classes)] if labelled else [], "toy")


@pytest.mark.parametrize("labelled", [True, False])
def test_split_validation_is_seeded_disjoint_and_covering(labelled):
    ds = _dataset(labelled=labelled)
    train, val = split_validation(ds, 0.2, seed=3)
    again_train, again_val = split_validation(ds, 0.2, seed=3)
    other_train, _ = split_validation(ds, 0.2, seed=4)
    ids = lambda part: part.images[:, 0, 0, 0].tolist()  # noqa: E731
    assert ids(train) == ids(again_train) and ids(val) == ids(again_val)
    assert ids(other_train) != ids(train)
    assert len(val) == 20 and sorted(ids(train) + ids(val)) == list(range(100))
    assert ids(train) == sorted(ids(train))  # original order kept
    if labelled:
        assert torch.equal(val.labels, val.images[:, 0, 0, 0].long() % 4)
        assert val.labels.bincount().tolist() == [5, 5, 5, 5]
        assert val.classes == ds.classes


def test_stratified_split_hits_the_requested_size():
    labels = torch.tensor([0] * 7 + [1] * 5 + [2] * 1)
    ds = ImageDataset(torch.zeros(13, 1, 1, 1, dtype=torch.uint8), labels, ["a", "b", "c"], "toy")
    for fraction in (0.1, 0.3, 0.5, 0.9):
        _, val = split_validation(ds, fraction, seed=0)
        assert len(val) == round(13 * fraction)


def test_split_validation_rejects_bad_fractions():
    for fraction in (0, 1, 1.5, -0.1):
        with pytest.raises(DataError, match="between 0 and 1"):
            split_validation(_dataset(), fraction, seed=0)


def test_image_dataset_checks_and_subset():
    ds = _dataset(10)
    part = ds.subset(torch.tensor([7, 2]))
    assert part.images[:, 0, 0, 0].tolist() == [7, 2] and part.labels.tolist() == [3, 2] and part.images.is_contiguous()
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(torch.zeros(2, 1, 4, 4), None, [], "x")
    with pytest.raises(ValueError, match="int64"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32), [], "x")


def test_splits_from_a_dataset_in_memory():
    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    images[:, 0] = 255
    images[:2, 1] = 255
    splits = DataSplits.from_train(ImageDataset(images, None, [], "mem"))
    assert splits.mean == pytest.approx((1.0, 0.5, 0.0)) and splits.std == pytest.approx((0.0, 0.5, 0.0))
    assert splits.spec == "mem" and splits.test is None
