"""Every error a user can cause, one class per kind, each with its exit code.

A ``SqueezelabError`` is a mistake in what the user gave (a name, a shape, a file, an option), not a bug:
the command line prints its message as one line, ``squeezelab: error: ...``, and exits with the class's
``exit_code``. Classes that are also ``ValueError`` keep ``except ValueError`` callers working.
"""

import errno

EXIT_FAILED = 1  # the input was fine, but the result failed its check (a diverged run, an unverified export)
EXIT_USAGE = 2  # the input was wrong: the message names it and the fix
EXIT_ENVIRONMENT = 3  # the input was fine, but the machine refused: a full disk, a read-only folder, no permission
EXIT_INTERRUPTED = 130  # Ctrl-C: the last finished epoch is kept


class SqueezelabError(Exception):
    """A problem with what the user asked for; the message names the thing and the fix."""

    exit_code = EXIT_USAGE


class ConfigError(SqueezelabError, ValueError):
    """An option or argument with a value outside what it accepts."""


class UnknownModelError(ConfigError):
    """A model name the registry does not know."""


class InputShapeError(SqueezelabError, ValueError):
    """A tensor or image whose shape the model or function cannot take."""


class DataError(SqueezelabError):
    """A dataset that is missing, unreadable or not what its spec says."""


class FileFormatError(SqueezelabError):
    """A checkpoint, ``.sqz`` or exported file that is missing, corrupt or of another kind."""


class VerificationError(SqueezelabError):
    """An exported or compressed model that does not compute what the original does."""

    exit_code = EXIT_FAILED


class TrainingDiverged(SqueezelabError):
    """The loss stopped being finite; the last good checkpoint is kept."""

    exit_code = EXIT_FAILED


class StorageError(SqueezelabError):
    """The machine refused a write or read: a full disk, a file-size limit, a read-only or forbidden folder."""

    exit_code = EXIT_ENVIRONMENT


# What to do about each refusal, by errno name.
_STORAGE_FIXES = {
    "ENOSPC": "the disk is full: free space there or write elsewhere",
    "EDQUOT": "the disk quota is used up: free space there or write elsewhere",
    "EFBIG": "the file is larger than this process may write (ulimit -f): raise the limit or write elsewhere",
    "EROFS": "the file system is read-only: write elsewhere",
    "EACCES": "permission denied: change the folder's permissions or write elsewhere",
    "EPERM": "the operation is not permitted there: write elsewhere",
}


def storage_error(exc: OSError, path: object, action: str = "write") -> StorageError | None:
    """The one-line ``StorageError`` for an ``OSError`` the machine caused, or None for any other ``OSError``."""
    name = errno.errorcode.get(exc.errno or 0)
    if name not in _STORAGE_FIXES:
        return None
    return StorageError(f"cannot {action} {path}: {_STORAGE_FIXES[name]}")


def os_error(exc: OSError, path: object, action: str = "write") -> SqueezelabError:
    """The one-line error for any ``OSError``: the machine's (``storage_error``, exit 3), else the path's own
    problem, such as a file where a folder should be (exit 2)."""
    return storage_error(exc, path, action) or ConfigError(f"cannot {action} {path}: {exc.strerror or exc}")
