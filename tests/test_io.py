"""atomic_write: a file is the old one or the whole new one, and a refusal of the machine is one clear error."""

import errno
import os
import resource
import subprocess
import sys
import textwrap

import pytest

from squeezelab.errors import EXIT_ENVIRONMENT, StorageError
from squeezelab.io import atomic_write


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.json"
    atomic_write(target, "old")
    with pytest.raises(TypeError):
        atomic_write(target, 12345)  # not bytes: fails while writing
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


@pytest.mark.parametrize(
    "code, fix",
    [
        (errno.ENOSPC, "the disk is full: free space there or write elsewhere"),
        (errno.EROFS, "the file system is read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_a_refusal_of_the_machine_is_a_storage_error_naming_the_file(tmp_path, monkeypatch, code, fix):
    target = tmp_path / "model.safetensors"
    atomic_write(target, b"old")

    def refuse(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("squeezelab.io.os.fsync", refuse)
    with pytest.raises(StorageError, match=f"cannot write {target}: {fix}") as error:
        atomic_write(target, b"new")
    assert error.value.exit_code == EXIT_ENVIRONMENT == 3
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_other_os_errors_pass_through(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no-such-folder" / "f.json", "x")


def test_a_file_size_limit_keeps_the_old_file_byte_for_byte(tmp_path):
    """A real ``ulimit -f``: the write past the limit fails (Python ignores SIGXFSZ) and nothing is lost."""
    target = tmp_path / "last.safetensors"
    target.write_bytes(b"old" * 100)
    script = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from squeezelab.io import atomic_write
        atomic_write({str(target)!r}, b"0" * 100_000)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"StorageError: cannot write {target}: the file is larger than this process may write" in done.stderr
    assert target.read_bytes() == b"old" * 100 and [p.name for p in tmp_path.iterdir()] == [target.name]
    assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] != 4096  # the limit stayed in the child
