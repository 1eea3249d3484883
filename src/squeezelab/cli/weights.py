"""``squeezelab weights``: the shipped weights, their hashes and the recipes that trained them."""

from __future__ import annotations

import argparse
import json

from squeezelab.cli.common import add_command
from squeezelab.errors import ConfigError, FileFormatError
from squeezelab.report.text import format_table
from squeezelab.weights import get_weights, list_weights, parse_weights_spec, verify_weights


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "weights",
        help="list, verify or show the recipe of the weights shipped in the package",
        description="Weights ship inside the package, each with a card: its file and sha256, what data it saw, "
        "held-out figures and the command that measured them, and the recipe that trained it. Use them as "
        "MODEL:WEIGHTS wherever a run directory is accepted (evaluate, predict, compress, export, profile).",
        examples=[
            "squeezelab weights list",
            "squeezelab weights list --json",
            "squeezelab weights verify",
            "squeezelab weights recipe squeezenet_cifar:cifar10",
        ],
    )
    actions = p.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every shipped set of weights with its held-out figures")
    listing.add_argument("--json", action="store_true", help="print the cards as JSON")
    actions.add_parser("verify", help="re-check every shipped file against its sha256 (exit 2 if one fails)")
    recipe = actions.add_parser("recipe", help="the commands that trained and measured MODEL:WEIGHTS")
    recipe.add_argument("spec", metavar="MODEL:WEIGHTS")
    p.set_defaults(run=run)


def _figures(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        cards = list_weights()
        if args.json:
            keys = ("model", "name", "file", "sha256", "bytes", "trained_on", "metrics", "metrics_command")
            print(json.dumps([{k: getattr(c, k) for k in keys} | {"default": c.default} for c in cards], indent=2))
            return 0
        rows = [
            [c.spec + (" (default)" if c.default else ""), f"{c.bytes:,}", _figures(c.metrics), c.trained_on]
            for c in cards
        ]
        print(format_table(["weights", "bytes", "held-out figures", "trained on"], rows, right=(1,)))
        return 0
    if args.action == "verify":
        failed = 0
        for card, problem in verify_weights():
            print(
                f"{'ok    ' if problem is None else 'FAILED'} {card.spec}  {card.path.name}  {problem or card.sha256}"
            )
            failed += problem is not None
        if failed:
            raise FileFormatError(f"{failed} shipped weights file(s) failed their sha256 check; see above")
        return 0
    spec = parse_weights_spec(args.spec)
    if spec is None:
        raise ConfigError(f"{args.spec!r} is not MODEL:WEIGHTS; see 'squeezelab weights list'")
    card = get_weights(*spec)
    print(f"# {card.spec}: trained on {card.trained_on}")
    print("\n".join(card.recipe))
    print(f"# measured with\n{card.metrics_command}")
    return 0
