"""Every error a user can cause, one class per kind, each with its exit code.

A ``SqueezelabError`` is a mistake in what the user gave (a name, a shape, a file, an option), not a bug:
the command line prints its message as one line, ``squeezelab: error: ...``, and exits with the class's
``exit_code``. Classes that are also ``ValueError`` keep ``except ValueError`` callers working.
"""

EXIT_FAILED = 1  # the input was fine, but the result failed its check (a diverged run, an unverified export)
EXIT_USAGE = 2  # the input was wrong: the message names it and the fix


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
