import os
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from squeezelab.data import DataError, load_dataset
from squeezelab.data import folder as folder_module
from squeezelab.data.folder import read_image_files


def _save(path, pixels: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def _rgb(seed: int, height: int = 8, width: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _tree(root, classes=("cat", "dog"), per_class=3, size=(8, 8)) -> dict[str, list[np.ndarray]]:
    """root/<class>/<i>.png of random RGB pixels; returns the pixels by class."""
    return {
        name: [_save(root / name / f"{i}.png", _rgb(10 * c + i, *size)) for i in range(per_class)]
        for c, name in enumerate(classes)
    }


def _load(path, **options):
    return load_dataset(f"folder:{path}", progress=False, **options)


def _chw(pixels: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)


def test_class_folders_of_png_and_jpeg(tmp_path):
    root = tmp_path / "pets"
    cats = [_save(root / "cat" / f"{i}.png", _rgb(i)) for i in range(2)]
    _save(root / "dog" / "a.jpg", _rgb(5))
    (root / "dog" / "notes.txt").write_text("not an image")
    _save(root / "dog" / ".hidden.png", _rgb(6))
    _save(root / ".thumbnails" / "x.png", _rgb(7))
    splits = _load(root)
    train = splits.train
    assert train.classes == ["cat", "dog"] and train.labels.tolist() == [0, 0, 1]
    assert train.images.dtype == torch.uint8 and train.images.shape == (3, 3, 8, 8) and train.images.is_contiguous()
    assert torch.equal(train.images[:2], _chw(cats))  # PNG is lossless
    jpeg = np.asarray(Image.open(root / "dog" / "a.jpg").convert("RGB"))
    assert torch.equal(train.images[2], _chw([jpeg])[0])
    assert train.name == "folder:pets" and splits.test is None and splits.spec == f"folder:{root}"
    assert splits.mean == pytest.approx(tuple((train.images.double() / 255).mean((0, 2, 3)).tolist()))


def test_single_top_folder_is_looked_into(tmp_path):
    _tree(tmp_path / "archive" / "train")
    splits = _load(tmp_path / "archive")
    assert splits.train.classes == ["cat", "dog"] and len(splits.train) == 6 and splits.test is None


@pytest.mark.parametrize("test_name", ["test", "val"])
def test_train_and_test_folders_become_splits(tmp_path, test_name):
    _tree(tmp_path / "train", classes=("a", "b", "c"))
    held_out = _tree(tmp_path / test_name, classes=("b", "c"), per_class=1)
    splits = _load(tmp_path)
    assert splits.train.classes == ["a", "b", "c"] and len(splits.train) == 9
    assert splits.test.classes == ["a", "b", "c"] and splits.test.labels.tolist() == [1, 2]
    assert torch.equal(splits.test.images, _chw(held_out["b"] + held_out["c"]))


def test_test_class_unknown_to_train_is_an_error(tmp_path):
    _tree(tmp_path / "train", classes=("a",))
    _tree(tmp_path / "test", classes=("z",), per_class=1)
    with pytest.raises(DataError, match="test/z is a class that train lacks"):
        _load(tmp_path)


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_tar_of_the_tree_reads_like_the_folder(tmp_path, mode):
    _tree(tmp_path / "tree" / "train")
    archive = tmp_path / "tree.tar"
    with tarfile.open(archive, mode) as tar:
        # Files only, no folder entries, out of name order (as some archivers write them).
        for path in sorted((tmp_path / "tree").rglob("*.png"), reverse=True):
            tar.add(path, arcname=str(path.relative_to(tmp_path / "tree")))
    from_folder, from_tar = _load(tmp_path / "tree"), _load(archive)
    assert from_tar.train.classes == ["cat", "dog"] and from_tar.train.name == "folder:tree.tar"
    assert torch.equal(from_tar.train.images, from_folder.train.images)
    assert torch.equal(from_tar.train.labels, from_folder.train.labels)


def test_image_size_scales_the_shorter_side_and_crops_the_centre(tmp_path):
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, :, 2] = 255
    wide[:, 10:20] = (255, 0, 0)  # red centre square between blue sides
    _save(tmp_path / "a" / "wide.png", wide)
    _save(tmp_path / "a" / "small.png", _rgb(1, 4, 4))
    train = _load(tmp_path, image_size=5).train
    assert train.images.shape == (2, 3, 5, 5)
    reference = Image.fromarray(wide).resize((15, 5), Image.Resampling.BILINEAR).crop((5, 0, 10, 5))
    assert (train.images[1].permute(1, 2, 0).int() - torch.from_numpy(np.array(reference)).int()).abs().max() <= 2
    assert (train.images[1, 0, :, 1:4] == 255).all() and (train.images[1, 2, :, 1:4] == 0).all()


def test_mixed_sizes_need_an_image_size(tmp_path):
    _save(tmp_path / "a" / "0.png", _rgb(0, 8, 8))
    _save(tmp_path / "a" / "1.png", _rgb(1, 8, 9))
    with pytest.raises(DataError, match=r"differ in size: .*0.png is 8x8, .*1.png is 9x8; pass an image size"):
        _load(tmp_path)
    assert _load(tmp_path, image_size=6).train.images.shape == (2, 3, 6, 6)


def test_grayscale_modes(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    _save(tmp_path / "g" / "a" / "0.png", gray)
    _save(tmp_path / "g" / "b" / "1.png", gray[::-1].copy())
    only_gray = _load(tmp_path / "g").train
    assert only_gray.images.shape == (2, 1, 8, 8) and torch.equal(only_gray.images[0, 0], torch.from_numpy(gray))
    assert _load(tmp_path / "g", grayscale=False).train.images.shape == (2, 3, 8, 8)

    color = _save(tmp_path / "g" / "b" / "2.png", _rgb(3))
    mixed = _load(tmp_path / "g").train
    assert mixed.images.shape == (3, 3, 8, 8)
    assert all(torch.equal(mixed.images[0, c], torch.from_numpy(gray)) for c in range(3))
    forced = _load(tmp_path / "g", grayscale=True).train
    expected = np.array(Image.fromarray(color).convert("L"))
    assert forced.images.shape == (3, 1, 8, 8) and torch.equal(forced.images[2, 0], torch.from_numpy(expected))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_image_error_or_skip(tmp_path, damage):
    _tree(tmp_path, per_class=2)
    bad = tmp_path / "dog" / "bad.png"
    if damage == "garbage":
        bad.write_bytes(b"this is not a PNG")
    else:
        _save(bad, _rgb(9, 64, 64))
        bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cannot read image .*dog/bad.png \((.+)\); pass --on-bad-image skip") as error:
        _load(tmp_path)
    reason = error.value.args[0].split("(", 1)[1]
    assert "BytesIO" not in reason and ("no image format" in reason) == (damage == "garbage")
    for _ in range(2):  # from the images, then from the cache: both report the skip
        with pytest.warns(UserWarning, match=r"skipped 1 unreadable images, e.g. .*bad.png"):
            train = _load(tmp_path, on_bad_image="skip").train
        assert len(train) == 4 and train.labels.tolist() == [0, 0, 1, 1]


def test_layout_errors(tmp_path):
    with pytest.raises(DataError, match="nowhere not found"):
        _load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in .*empty"):
        _load(tmp_path / "empty")
    _tree(tmp_path / "some")
    (tmp_path / "some" / "bird").mkdir()
    (tmp_path / "some" / "bird" / "readme.txt").write_text("-")
    with pytest.raises(DataError, match="class folder .*some/bird has no images"):
        _load(tmp_path / "some")
    _tree(tmp_path / "loose")
    _save(tmp_path / "loose" / "stray.png", _rgb(0))
    with pytest.raises(DataError, match="loose/stray.png is not in a class folder"):
        _load(tmp_path / "loose")
    (tmp_path / "file.txt").write_text("-")
    with pytest.raises(DataError, match="neither a folder nor a tar archive"):
        _load(tmp_path / "file.txt")


def _count_decodes(monkeypatch) -> list[int]:
    calls = [0]
    decode = folder_module.decode_image

    def counting(*args):
        calls[0] += 1
        return decode(*args)

    monkeypatch.setattr(folder_module, "decode_image", counting)
    return calls


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    _tree(tmp_path / "data")
    first = _load(tmp_path / "data")
    assert len(list((tmp_path / "data").glob(".squeezelab-cache-*.safetensors"))) == 1
    calls = _count_decodes(monkeypatch)
    second = _load(tmp_path / "data")
    assert calls[0] == 0
    assert torch.equal(second.train.images, first.train.images) and torch.equal(second.train.labels, first.train.labels)
    assert second.train.classes == first.train.classes and second.train.images.is_contiguous()
    assert second.mean == first.mean

    _load(tmp_path / "data", image_size=4)  # other options: another cache
    assert calls[0] == 6
    _load(tmp_path / "data", cache=False)
    assert calls[0] == 12


def test_changed_file_changes_the_key(tmp_path, monkeypatch):
    _tree(tmp_path / "data")
    _load(tmp_path / "data")
    calls = _count_decodes(monkeypatch)
    changed = tmp_path / "data" / "dog" / "1.png"
    _save(changed, _rgb(99))
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    reloaded = _load(tmp_path / "data")
    assert calls[0] == 6
    assert torch.equal(reloaded.train.images[4], _chw([_rgb(99)])[0])


def test_read_only_folder_caches_in_the_user_cache(tmp_path, monkeypatch, user_cache):
    _tree(tmp_path / "data")
    os.chmod(tmp_path / "data", 0o555)
    try:
        _load(tmp_path / "data")
        calls = _count_decodes(monkeypatch)
        _load(tmp_path / "data")
    finally:
        os.chmod(tmp_path / "data", 0o755)
    assert calls[0] == 0
    assert not list((tmp_path / "data").glob(".squeezelab-cache-*"))
    assert len(list(user_cache.glob("data-*.safetensors"))) == 1


def test_tar_cache_sits_beside_the_archive(tmp_path, monkeypatch):
    _tree(tmp_path / "tree")
    with tarfile.open(tmp_path / "tree.tar", "w") as tar:
        tar.add(tmp_path / "tree", arcname="tree")
    _load(tmp_path / "tree.tar")
    assert len(list(tmp_path.glob(".tree.tar.squeezelab-cache-*.safetensors"))) == 1
    calls = _count_decodes(monkeypatch)
    assert len(_load(tmp_path / "tree.tar").train) == 6 and calls[0] == 0


def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    _tree(tmp_path / "data")
    first = _load(tmp_path / "data")
    (cache_file,) = (tmp_path / "data").glob(".squeezelab-cache-*.safetensors")
    cache_file.write_bytes(cache_file.read_bytes()[:1000])
    calls = _count_decodes(monkeypatch)
    assert torch.equal(_load(tmp_path / "data").train.images, first.train.images) and calls[0] == 6
    _load(tmp_path / "data")
    assert calls[0] == 6  # the rebuilt cache is whole again


def test_read_image_files_for_prediction(tmp_path):
    good = tmp_path / "good.png"
    _save(good, _rgb(0, 12, 16))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(DataError, match="bad.jpg"):
        read_image_files([good, bad], size=8, grayscale=False)
    with pytest.warns(UserWarning, match="skipped 1"):
        paths, pixels = read_image_files([good, bad], size=8, grayscale=True, on_bad_image="skip")
    assert paths == [good] and pixels.shape == (1, 1, 8, 8) and pixels.dtype == torch.uint8
