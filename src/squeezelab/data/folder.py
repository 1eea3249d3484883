"""Image folders and tar archives of them: one sub-folder per class, images in any format Pillow reads.

Layout rules, applied in order:

- a single top folder that holds only folders (an archive's ``train/<class>/...``) is looked into;
- a top level with ``train`` and ``test`` (or ``val``) folders gives the train and test splits, which share
  the class list of ``train``; when both ``test`` and ``val`` exist, ``test`` is the test split;
- otherwise each sub-folder is a class, in sorted order of names.

Hidden files and folders and files without an image extension are ignored. Each file is decoded once, into
one preallocated uint8 array per split, and the result is cached as one safetensors file, so that the second
load reads one file instead of decoding thousands.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from squeezelab.data.dataset import ImageDataset
from squeezelab.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
# Modes whose pixels carry no colour: a folder of only these is loaded with one channel.
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
# Bumped whenever decoding changes, so that caches written by older code are not read.
CACHE_VERSION = 1
_BAD_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)

Parts = tuple[str, ...]  # a path inside the folder or archive, split at "/"


def decode_image(data: bytes, mode: str, size: int | None) -> tuple[np.ndarray, bool]:
    """The (H, W, C) uint8 pixels of one image file in ``mode``, and whether the file itself was grayscale.

    With ``size``, the centred square of side min(H, W) is resized (bilinear) to size x size: the same as
    scaling the shorter side to ``size`` and cropping the centre, in one resampling step.
    """
    with Image.open(io.BytesIO(data)) as image:
        gray = image.mode in _GRAY_MODES
        converted = image if image.mode == mode else image.convert(mode)
        if size is not None and converted.size != (size, size):
            width, height = converted.size
            side = min(width, height)
            box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
            converted = converted.resize((size, size), Image.Resampling.BILINEAR, box=box)
        pixels = np.asarray(converted)
    return pixels.reshape(pixels.shape[0], pixels.shape[1], -1), gray


def _reason(exc: Exception) -> str:
    # Pillow names the in-memory buffer it read from ("<_io.BytesIO object at 0x...>"), not the file.
    if isinstance(exc, UnidentifiedImageError):
        return "Pillow recognises no image format in it"
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class _File:
    name: str  # for messages: the full path, or archive:member
    split: int  # 0 train, 1 test
    row: int  # its row in the split
    source: Path | tarfile.TarInfo


def _decode_all(
    files: Sequence[_File],
    split_sizes: Sequence[int],
    read: Callable[[_File], bytes],
    *,
    image_size: int | None,
    grayscale: bool | None,
    on_bad_image: str,
    progress: bool,
    desc: str,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Decode ``files`` in the order given into one array per split.

    Returns the arrays (N, C, H, W), one mask per split of the rows that decoded, and the names of the
    files skipped as unreadable. The first image fixes the size that all others must have (unless
    ``image_size`` is given); without ``grayscale``, images are decoded as RGB and reduced to one channel at
    the end when every one of them was grayscale.
    """
    mode = "L" if grayscale else "RGB"
    arrays: list[np.ndarray] = []
    kept = [np.zeros(n, dtype=bool) for n in split_sizes]
    first: tuple[str, tuple[int, ...]] | None = None
    all_gray = True
    skipped: list[str] = []
    for file in tqdm(files, desc=desc, unit="img", disable=not progress):
        try:
            pixels, gray = decode_image(read(file), mode, image_size)
        except _BAD_IMAGE_ERRORS as exc:
            if on_bad_image == "error":
                raise DataError(
                    f"cannot read image {file.name} ({_reason(exc)}); pass --on-bad-image skip to skip unreadable"
                    " images"
                ) from None
            skipped.append(file.name)
            continue
        if first is None:
            first = (file.name, pixels.shape)
            height, width, channels = pixels.shape
            arrays = [np.empty((n, channels, height, width), dtype=np.uint8) for n in split_sizes]
        elif pixels.shape != first[1]:
            raise DataError(
                f"images differ in size: {first[0]} is {first[1][1]}x{first[1][0]}, {file.name} is "
                f"{pixels.shape[1]}x{pixels.shape[0]}; pass an image size (--image-size) to resize them all"
            )
        arrays[file.split][file.row] = pixels.transpose(2, 0, 1)
        kept[file.split][file.row] = True
        all_gray = all_gray and gray
    if first is None:
        raise DataError(f"none of the {len(files)} images could be read, e.g. {skipped[0]}")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable images, e.g. {skipped[0]}", stacklevel=3)
    arrays = [array if mask.all() else array[mask] for array, mask in zip(arrays, kept, strict=True)]
    if grayscale is None and all_gray:
        arrays = [np.ascontiguousarray(array[:, :1]) for array in arrays]
    return arrays, kept, skipped


def read_image_files(
    paths: Sequence[str | Path], size: int, grayscale: bool, on_bad_image: str = "error"
) -> tuple[list[Path], torch.Tensor]:
    """Decode loose image files (for prediction) to uint8 (N, C, size, size), as folders are decoded.

    Returns the paths that decoded, in order, and their pixels; with ``on_bad_image="skip"`` the others are
    left out with a warning.
    """
    files = [_File(str(path), 0, i, Path(path)) for i, path in enumerate(paths)]
    if not files:
        raise DataError("no image files given")
    arrays, kept, _ = _decode_all(
        files,
        [len(files)],
        _read_path,
        image_size=size,
        grayscale=grayscale,
        on_bad_image=on_bad_image,
        progress=False,
        desc="decoding",
    )
    return [Path(path) for path, ok in zip(paths, kept[0], strict=True) if ok], torch.from_numpy(arrays[0])


def _read_path(file: _File) -> bytes:
    return file.source.read_bytes()


# -- layout ----------------------------------------------------------------------------------------------------


def _is_image(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _list_folder(root: Path) -> tuple[dict[Parts, tuple[int, int]], set[Parts]]:
    """Image files (with size and mtime, for the cache key) and folders under ``root``, hidden ones left out."""
    files: dict[Parts, tuple[int, int]] = {}
    folders: set[Parts] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        parts = Path(dirpath).relative_to(root).parts
        folders.add(parts)
        for name in filenames:
            if _is_image(name):
                try:
                    stat = os.stat(os.path.join(dirpath, name))
                    files[(*parts, name)] = (stat.st_size, stat.st_mtime_ns)
                except OSError:  # a broken link: kept, so that decoding reports it
                    files[(*parts, name)] = (-1, -1)
    return files, folders


def _list_tar(tar: tarfile.TarFile) -> tuple[dict[Parts, tarfile.TarInfo], set[Parts]]:
    """Image members and folders (listed or implied by a member's path) of an archive, hidden ones left out."""
    files: dict[Parts, tarfile.TarInfo] = {}
    folders: set[Parts] = {()}
    for member in tar.getmembers():
        parts = tuple(p for p in member.name.split("/") if p not in ("", "."))
        if not parts or any(p.startswith(".") for p in parts):  # also rejects ".." escapes
            continue
        if member.isdir():
            folders.update(parts[:i] for i in range(len(parts) + 1))
        elif member.isfile():
            folders.update(parts[:i] for i in range(len(parts)))
            if _is_image(parts[-1]):
                files[parts] = member
    return files, folders


def _children(folders: set[Parts], parent: Parts) -> list[str]:
    depth = len(parent)
    return sorted({f[depth] for f in folders if len(f) > depth and f[:depth] == parent})


def _layout(files: Sequence[Parts], folders: set[Parts], where: str) -> tuple[list[str], list[list[tuple[Parts, int]]]]:
    """The class names, and per split (train, then test if there is one) its files with their labels."""
    if not files:
        raise DataError(
            f"no images in {where}: expected one sub-folder of images per class ({', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    top: Parts = ()
    while len(_children(folders, top)) == 1 and all(len(f) >= len(top) + 3 for f in files):
        top += (_children(folders, top)[0],)
    names = _children(folders, top)
    test_name = "test" if "test" in names else "val" if "val" in names else None
    roots = [(*top, "train"), (*top, test_name)] if "train" in names and test_name else [top]
    ignored = [f for f in files if not any(f[: len(r)] == r for r in roots)]
    if ignored:
        warnings.warn(
            f"ignoring {len(ignored)} images outside {where}'s train and {test_name} folders, e.g. "
            f"{'/'.join(ignored[0])}",
            stacklevel=3,
        )
    classes = _children(folders, roots[0])
    label_of = {name: label for label, name in enumerate(classes)}
    splits = []
    for root in roots:
        inside = sorted(f for f in files if f[: len(root)] == root)
        if not inside:
            raise DataError(f"no images in {where}/{'/'.join(root)}")
        loose = [f for f in inside if len(f) == len(root) + 1]
        if loose:
            raise DataError(
                f"{where}/{'/'.join(loose[0])} is not in a class folder; put the images in one sub-folder per class"
            )
        for name in _children(folders, root):
            if not any(f[len(root)] == name for f in inside):
                raise DataError(
                    f"class folder {where}/{'/'.join((*root, name))} has no images "
                    f"({', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
            if name not in label_of:
                raise DataError(f"{where}/{'/'.join((*root, name))} is a class that {'/'.join(roots[0])} lacks")
        splits.append([(f, label_of[f[len(root)]]) for f in inside])
    return classes, splits


# -- loading and the cache -------------------------------------------------------------------------------------


def load_folder(
    path: Path, *, image_size: int | None, grayscale: bool | None, on_bad_image: str, cache: bool, progress: bool
) -> tuple[ImageDataset, ImageDataset | None]:
    """(train, test) from a folder or tar of class folders; test is None without a train/test layout."""
    if not path.exists():
        raise DataError(f"{path} not found")
    if path.is_dir():
        listing, folders = _list_folder(path)
        stats = sorted(("/".join(parts), *stat) for parts, stat in listing.items())
        identity = ["folder", stats, sorted("/".join(parts) for parts in folders)]
    elif tarfile.is_tarfile(path):
        stat = path.stat()
        identity = ["tar", stat.st_size, stat.st_mtime_ns]
    else:
        raise DataError(f"{path} is neither a folder nor a tar archive")
    options = {"image_size": image_size, "grayscale": grayscale, "on_bad_image": on_bad_image}
    material = json.dumps([CACHE_VERSION, str(path.resolve()), identity, options])
    key = hashlib.sha256(material.encode()).hexdigest()
    places = _cache_places(path, key)
    if cache:
        for place in places:
            if (found := _read_cache(place, key)) is not None:
                return found

    decode = dict(options, progress=progress, desc=f"decoding {path.name}")
    if path.is_dir():
        classes, splits = _layout(list(listing), folders, str(path))
        files = [
            _File(str(path.joinpath(*parts)), s, row, path.joinpath(*parts))
            for s, items in enumerate(splits)
            for row, (parts, _) in enumerate(items)
        ]
        arrays, kept, skipped = _decode_all(files, [len(items) for items in splits], _read_path, **decode)
    else:
        try:
            with tarfile.open(path) as tar:
                members, folders = _list_tar(tar)
                classes, splits = _layout(list(members), folders, str(path))
                files = [
                    _File(f"{path}:{members[parts].name}", s, row, members[parts])
                    for s, items in enumerate(splits)
                    for row, (parts, _) in enumerate(items)
                ]
                # In archive order: a compressed archive can only be read forwards without starting over.
                files.sort(key=lambda file: file.source.offset)

                def read(file: _File) -> bytes:
                    return tar.extractfile(file.source).read()

                arrays, kept, skipped = _decode_all(files, [len(items) for items in splits], read, **decode)
        except (tarfile.TarError, EOFError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None

    datasets = []
    for array, mask, items in zip(arrays, kept, splits, strict=True):
        labels = np.array([label for _, label in items], dtype=np.int64)[mask]
        datasets.append(
            ImageDataset(torch.from_numpy(array), torch.from_numpy(labels), list(classes), f"folder:{path.name}")
        )
    train, test = datasets[0], (datasets[1] if len(datasets) > 1 else None)
    if cache:
        _write_cache(places, key, train, test, skipped)
    return train, test


def _cache_places(source: Path, key: str) -> list[Path]:
    """Where the cache may be, in order of preference: beside the data, then the user's cache folder."""
    short = key[:16]
    if source.is_dir():
        beside = source / f".squeezelab-cache-{short}.safetensors"
    else:
        beside = source.parent / f".{source.name}.squeezelab-cache-{short}.safetensors"
    user = Path(os.environ.get("SQUEEZELAB_CACHE") or Path.home() / ".cache" / "squeezelab")
    return [beside, user / f"{source.name}-{short}.safetensors"]


def _writable(folder: Path) -> bool:
    # Root may write anywhere, so a folder whose mode has no write bit at all is taken as read-only by intent.
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def _read_cache(place: Path, key: str) -> tuple[ImageDataset, ImageDataset | None] | None:
    if not place.is_file():
        return None
    try:
        with safe_open(str(place), framework="pt") as f:
            info = json.loads(f.metadata()["squeezelab"])
            if info["key"] != key:
                return None
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        datasets = [
            ImageDataset(tensors[f"{split}.images"], tensors[f"{split}.labels"], info["classes"], info["name"])
            for split in ("train", "test")
            if f"{split}.images" in tensors
        ]
    except Exception:  # a damaged, truncated or foreign file is no cache: it is rebuilt
        return None
    if info["skipped"]:
        warnings.warn(
            f"skipped {info['skipped']} unreadable images, e.g. {info['first_skipped']} (from the cache {place})",
            stacklevel=4,
        )
    return datasets[0], (datasets[1] if len(datasets) > 1 else None)


def _write_cache(
    places: Sequence[Path], key: str, train: ImageDataset, test: ImageDataset | None, skipped: list[str]
) -> None:
    tensors = {"train.images": train.images, "train.labels": train.labels}
    if test is not None:
        tensors |= {"test.images": test.images, "test.labels": test.labels}
    info = {
        "key": key,
        "classes": train.classes,
        "name": train.name,
        "skipped": len(skipped),
        "first_skipped": skipped[0] if skipped else None,
    }
    for place in places:
        if place.parent.is_dir() and not _writable(place.parent):
            continue
        try:
            place.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=place.parent, prefix=".tmp-", suffix=".safetensors")
            os.close(fd)
            try:
                save_file(tensors, tmp, metadata={"squeezelab": json.dumps(info)})
                os.replace(tmp, place)  # atomic: a reader sees the old cache or the whole new one
            finally:
                Path(tmp).unlink(missing_ok=True)
            return
        except (OSError, SafetensorError):  # e.g. a read-only data folder: try the next place
            continue
    warnings.warn(f"could not write a cache of {train.name} to {' or '.join(map(str, places))}", stacklevel=3)
