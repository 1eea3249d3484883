"""Errors a user can cause.

Everything derived from ``SqueezelabError`` is a mistake in the user's input (a name, a shape, a file, an
option), not a bug: the CLI prints its message as one line and exits with code 2.
"""


class SqueezelabError(Exception):
    """A problem with what the user asked for; the message names the thing and the fix."""


class UnknownModelError(SqueezelabError, ValueError):
    pass


class InputShapeError(SqueezelabError, ValueError):
    pass
