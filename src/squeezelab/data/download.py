"""Fetch MNIST, Fashion-MNIST and CIFAR-10 from where they are published, checked against published MD5s.

The checksums are those torchvision lists for the same files. A file is written to a temporary name beside
its destination and renamed into place only once its checksum matches, so an interrupted or corrupted
download never looks like a dataset.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from squeezelab.errors import DataError

MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TIMEOUT_S = 30

# dataset -> file name -> (url, md5 of the file as published)
DATASET_URLS: dict[str, dict[str, tuple[str, str]]] = {
    "mnist": {
        name: (MNIST_MIRROR + name, md5)
        for name, md5 in [
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ]
    },
    "fashion-mnist": {
        name: (FASHION_MNIST_MIRROR + name, md5)
        for name, md5 in [
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ]
    },
    "cifar10": {"cifar-10-python.tar.gz": (CIFAR10_URL, "c58f30108f718f92721af3b95e74349a")},
}


def download(
    dataset: str, folder: str | Path, names: Iterable[str] | None = None, *, progress: bool = True
) -> list[Path]:
    """Download ``names`` (default: every file of ``dataset``) into ``folder``; returns the paths written.

    Files already in ``folder`` are left as they are, unchecked: only missing files are fetched.
    """
    if dataset not in DATASET_URLS:
        raise DataError(f"cannot download {dataset!r}; downloadable datasets: {', '.join(DATASET_URLS)}")
    table = DATASET_URLS[dataset]
    names = list(table) if names is None else list(names)
    unknown = [name for name in names if name not in table]
    if unknown:
        raise DataError(f"{dataset} has no file {', '.join(unknown)}; its files are {', '.join(table)}")
    folder = Path(folder).expanduser()
    wanted = [name for name in names if not (folder / name).exists()]
    if wanted:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create {folder} to download {dataset} into: {exc.strerror or exc}") from None
    written = []
    for i, name in enumerate(wanted):
        url, md5 = table[name]
        try:
            _fetch(url, md5, folder / name, progress)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DataError(
                f"could not download {url} ({reason}); to set it up by hand, download "
                f"{', '.join(wanted[i:])} and put {'it' if i == len(wanted) - 1 else 'them'} in {folder}"
            ) from None
        written.append(folder / name)
    return written


def _fetch(url: str, md5: str, dest: Path, progress: bool) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DataError(
                f"{url} downloaded with MD5 {digest.hexdigest()}, but the published file has {md5}; it was not "
                "kept (a broken mirror or proxy?); try again or download it by hand"
            )
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
