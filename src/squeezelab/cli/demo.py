"""``squeezelab demo``: the bundled digits, squeezed and traditional models, one side-by-side table."""

from __future__ import annotations

import argparse
from pathlib import Path

from squeezelab.cli.common import add_command, verbosity


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "demo",
        help="train squeezed and traditional models on the bundled digits and compare them",
        description="On scikit-learn's bundled 8x8 digits (resized to 28x28, no download): trains dense_ae, "
        "squeeze_ae, contractive_ae, squeezenet_cifar and alexnet_cifar, prints one side-by-side table and "
        "writes runs/demo/ with plots and report.md.",
        examples=["squeezelab demo", "squeezelab demo --name demo2 --quiet"],
    )
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--name", default="demo")
    p.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every model's epochs (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo report in that folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from squeezelab.experiments.demo import run_demo  # here: matplotlib is slow to import for the other commands

    run_demo(
        Path(args.out_dir) / args.name,
        epochs_scale=args.epochs_scale,
        overwrite=args.overwrite,
        verbose=verbosity(args),
    )
    return 0
