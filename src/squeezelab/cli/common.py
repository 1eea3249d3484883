"""What every command shares: the one-line usage errors, the help layout, and the values flags parse to."""

from __future__ import annotations

import argparse
import ast
import os
from collections.abc import Sequence

from squeezelab.errors import EXIT_USAGE, ConfigError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the fix instead of the whole usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def epilog(examples: Sequence[str]) -> str:
    """The ``examples:`` block that ends every ``--help``."""
    return "examples:\n" + "\n".join(f"  {line}" for line in examples)


def add_command(sub, name: str, *, help: str, description: str, examples: Sequence[str]) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` keeps the description's and the examples' own line breaks."""
    return sub.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog(examples),
    )


def parse_shape(text: str, *, channels_optional: bool = False) -> tuple[int, ...]:
    """'3x224x224' -> (3, 224, 224); with ``channels_optional`` also '64x64' -> (64, 64), the channels left to
    the model."""
    try:
        shape = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        shape = ()
    if channels_optional:
        lengths, form = (2, 3), "CxHxW or HxW, e.g. 3x64x64 or 64x64"
    else:
        lengths, form = (3,), "CxHxW, e.g. 3x224x224"
    if len(shape) not in lengths or min(shape) < 1:
        raise ConfigError(f"--input must look like {form}, got {text!r}")
    return shape


def parse_model_args(pairs: Sequence[str]) -> dict:
    """['bypass=simple', 'code_size=16'] -> {'bypass': 'simple', 'code_size': 16}; values are Python literals.

    true and false in any case are booleans: as the string "false" they would switch an option on.
    """
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--arg takes KEY=VALUE, got {pair!r}")
        if value.lower() in ("true", "false"):
            kwargs[key] = value.lower() == "true"
            continue
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value  # a bare word such as bypass=simple is a string
    return kwargs


def rank() -> int:
    """This process's rank under torchrun (0 when alone): only rank 0 checks, writes and prints."""
    return int(os.environ.get("RANK", "0"))


def verbosity(args: argparse.Namespace) -> int:
    """The API's ``verbose`` for ``--quiet``: 2 is one line per epoch or stage, 1 adds progress bars."""
    return 2 if args.quiet else 1
