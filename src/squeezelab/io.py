"""Writing files so that readers never see half of one, and JSON for the types results hold."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from squeezelab.errors import storage_error


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write to a temporary file beside ``path`` and rename it over: readers never see half a file.

    If the machine refuses (a full disk, a file-size limit, a read-only folder), ``path`` keeps what it held,
    no temporary file is left, and the error is a one-line ``StorageError`` naming ``path``.
    """
    atomic_write_all({Path(path): data})


def atomic_write_all(files: dict[Path, bytes | str]) -> None:
    """Write several files as one set: every one to a temporary file first, then all renamed, in order.

    A failure or a kill while writing (the long part) leaves every file as it was; only the renames, which
    take microseconds, could be cut between two files. Put the file that vouches for the others last.
    """
    written: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            written.append((_write_temporary(path, data), path))
        for tmp, path in written:
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and (fault := storage_error(exc, path)):
            raise fault from None
        raise


def _write_temporary(path: Path, data: bytes | str) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())  # on disk before a rename makes it the file
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError) and (fault := storage_error(exc, path)):
            raise fault from None
        raise
    return tmp


def json_default(value):
    """``json.dumps(..., default=json_default)``: tuples as lists, paths as strings."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
