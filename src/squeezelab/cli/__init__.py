"""The ``squeezelab`` command: a thin layer over the Python API, one module per subcommand.

Each module has ``add_parser(sub)`` and ``run(args)``. Every mistake a user can make (a name, a shape, a
file, an option) is a ``SqueezelabError``; ``main`` turns it into one line on stderr and the error's exit
code, never a traceback: 0 done, 1 a failed check, 2 what the user gave, 3 the machine (disk full,
permissions), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from squeezelab.cli import (
    codec,
    compare,
    compress,
    decompress,
    demo,
    evaluate,
    export,
    models,
    predict,
    profile,
    train,
    weights,
)
from squeezelab.cli.common import Parser, epilog, parse_model_args, parse_shape, rank
from squeezelab.errors import EXIT_INTERRUPTED, SqueezelabError, os_error

__all__ = ["build_parser", "main", "parse_model_args", "parse_shape"]

COMMANDS = (models, weights, profile, train, evaluate, predict, export, compare, demo, compress, decompress, codec)


def build_parser() -> Parser:
    parser = Parser(
        prog="squeezelab",
        description="Compact SqueezeNet-family networks and autoencoders, measured against traditional ones.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog(["squeezelab models", "squeezelab profile squeezenet1_1 --input 3x224x224"]),
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line naming what happened, not the Python source line that raised it."""
    if rank() == 0:
        sys.stderr.write(f"squeezelab: warning: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            return args.run(args)
        except OSError as exc:
            # The disk, quota or permissions are the machine's fault, not the input's (exit 3).
            return _report(os_error(exc, exc.filename or "a file", "use"))
        except SqueezelabError as exc:
            return _report(exc)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED


def _report(exc: SqueezelabError) -> int:
    if rank() == 0:  # under torchrun every process meets the same mistake: one line, not one per process
        sys.stderr.write(f"squeezelab: error: {exc}\n")
    return exc.exit_code
