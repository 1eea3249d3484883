"""``squeezelab models``: the registered models with their parameters and MACs."""

from __future__ import annotations

import argparse
import json

import torch

from squeezelab.cli.common import add_command
from squeezelab.models import create_model, list_models, model_info
from squeezelab.profile import count_macs, count_parameters
from squeezelab.report.text import format_table, human_count
from squeezelab.weights import list_weights


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "models",
        help="list the registered models with parameters and MACs",
        description="List every registered model with its parameters and MACs at its default input, and the "
        "weights shipped for it (MODEL:WEIGHTS) with their held-out figures; 'squeezelab weights list' shows more.",
        examples=["squeezelab models", "squeezelab models --kind autoencoder --json"],
    )
    p.add_argument("--kind", choices=["classifier", "autoencoder", "codec"], help="only models of this kind")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rows = []
    for name in list_models(args.kind):
        info = model_info(name)
        with torch.device("meta"):  # counts without allocating AlexNet's 61M weights
            model = create_model(name)
            cards = list_weights(name)
            # Weights may be of another configuration of the model (the card's kwargs): count that one's size.
            weights_params = {card.name: count_parameters(create_model(name, **card.kwargs))[0] for card in cards}
        params, _ = count_parameters(model)
        macs = count_macs(model, info.default_input)
        rows.append(
            {
                "name": name,
                "kind": info.kind,
                "input": "x".join(map(str, info.default_input)),
                "params": params,
                "macs": macs,
                "description": info.description,
                "weights": {card.name: card.metrics for card in cards},
                "weights_params": weights_params,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [
        [
            r["name"],
            r["kind"],
            r["input"],
            f"{r['params']:,}",
            human_count(r["macs"]),
            _weights(r),
            r["description"],
        ]
        for r in rows
    ]
    headers = ["model", "kind", "input", "params", "MACs", "weights (held out)", "description"]
    print(format_table(headers, table, right=(3, 4)))
    return 0


def _weights(row: dict) -> str:
    """``cifar10 (val_acc1 0.9012)``: each shipped set with its first held-out figure, and its size when its
    configuration is not the default one."""
    shown = []
    for name, metrics in row["weights"].items():
        figures = [f"{key} {value:.4g}" for key, value in list(metrics.items())[:1]]
        if row["weights_params"][name] != row["params"]:
            figures.append(f"{row['weights_params'][name]:,} params")
        shown.append(f"{name} ({'; '.join(figures)})" if figures else name)
    return ", ".join(shown) or "-"
