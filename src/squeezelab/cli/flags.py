"""Flags generated from a dataclass: one ``--flag-name`` per leaf field, its help and default from the field.

Used for ``TrainConfig`` (train) and ``CompressConfig`` (compress), so a default lives in its dataclass only.
A field whose type is itself a dataclass (a section of a nested config) contributes its fields, recursively;
the flags, and the options read back from them, are flat. Each leaf field carries ``metadata["help"]``, and an
``X | None`` field may say in ``metadata["none"]`` what ``--flag none`` means.

argparse's default is None, meaning "not given": ``given_options`` returns only what the user gave, as a flat
dict for the dataclass (or for a preset's ``updated``), so a preset's values survive unless overridden.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Collection, Iterator

# What "--max-time none" parses to: None itself means that the flag was not given.
NONE = object()


def leaf_fields(cls: type) -> Iterator[tuple[dataclasses.Field, object]]:
    """(field, type) of every leaf field of the dataclass ``cls``, in order, entering dataclass-typed fields."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            yield from leaf_fields(kind)
        else:
            yield f, kind


def add_dataclass_flags(group, cls: type, skip: Collection[str] = ()) -> None:
    """Add one flag per leaf field of ``cls`` (``--batch-size`` for ``batch_size``) but those in ``skip``."""
    for f, kind in leaf_fields(cls):
        if f.name not in skip:
            group.add_argument("--" + f.name.replace("_", "-"), default=None, **_argument(f, kind))


def given_options(args: argparse.Namespace, cls: type, skip: Collection[str] = ()) -> dict:
    """The leaf fields of ``cls`` given on the command line, as a flat dict; ``--flag none`` gives None."""
    names = [f.name for f, _ in leaf_fields(cls) if f.name not in skip]
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return {name: None if value is NONE else value for name, value in given.items()}


def _default(f: dataclasses.Field) -> object:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _argument(f: dataclasses.Field, kind: object) -> dict:
    """``add_argument``'s keywords for one field: bool switches, Literal choices, tuples as comma lists."""
    args = typing.get_args(kind)
    optional = type(None) in args  # X | None
    if optional:
        kind = next(a for a in args if a is not type(None))
        args = typing.get_args(kind)
    help_text = f"{f.metadata['help']} (default: {_default(f)})"
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction, "help": help_text}
    if typing.get_origin(kind) is typing.Literal:
        return {"choices": args, "help": help_text}
    if typing.get_origin(kind) is tuple:
        parse, metavar = (int_list, "N[,N...]") if args[0] is int else (path_list, "PATH[,PATH...]")
    else:
        parse, metavar = kind, f.name.upper()
    if optional:  # "none" switches off what a preset set, e.g. --max-time none
        parse, metavar = or_none(parse), metavar + "|none"
        help_text = help_text[:-1] + f"; none: {f.metadata.get('none', 'off')})"
    return {"type": parse, "metavar": metavar, "help": help_text}


def or_none(parse):
    def parse_or_none(text: str):
        return NONE if text.lower() == "none" else parse(text)

    parse_or_none.__name__ = parse.__name__  # argparse names the type in its error message
    return parse_or_none


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, e.g. 16,24; got {text!r}") from None


def path_list(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)
