"""``squeezelab compare``: train squeezed and traditional models under one budget and report them side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from squeezelab.cli.common import add_command, verbosity
from squeezelab.errors import ConfigError
from squeezelab.report.render import format_value
from squeezelab.report.text import format_table

# The flags that override CompareConfig fields of the same name (None: not given, the preset's or the default).
_OPTIONS = ("epochs", "max_time", "code_size", "image_size", "grayscale", "device", "seed", "sweep", "weights")


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "compare",
        help="train squeezed and traditional models under one budget and report them side by side",
        description="Trains every model of a comparison with the same data, recipe and budget, measures size, "
        "compute, speed and test quality, judges the source material's claims, and writes results.json, "
        "report.md and a self-contained report.html. Every model gets the same epochs; --max-time bounds the "
        "whole comparison, and a model it cuts short is marked and its claims are not measured. A squeeze model "
        "is judged against its nearest traditional counterpart (same code size, convolutional against "
        "convolutional). autoencoders: dense_ae, conv_ae, squeeze_ae, contractive_ae, squeeze_ae+contractive, "
        "all at one code size; --sweep trains a grid of squeeze_ae designs and draws the Pareto front. "
        "classifiers: squeezenet_cifar (plain, +simple bypass, +5x5 expand) against alexnet_cifar. Presets: "
        "default (20 epochs, no time limit), quick (3 epochs, at most 480 s of training in all), sweep (the "
        "grid, 8 epochs, at most 1500 s). --weights NAME measures the shipped weights NAME of each model instead of "
        "training (seconds), on the images their cards held out.",
        examples=[
            "squeezelab compare autoencoders --data mnist:../shared/data/mnist --weights mnist",
            "squeezelab compare autoencoders --data mnist:../shared/data/mnist --preset quick",
            "squeezelab compare autoencoders --data mnist:../shared/data/mnist --preset sweep",
            "squeezelab compare classifiers --data folder:../shared/data/cifar10/cifar10-train-jpg.tar --epochs 15",
            "squeezelab compare autoencoders --data digits --image-size 28 --models dense_ae,squeeze_ae --epochs 3",
        ],
    )
    p.add_argument("kind", choices=["autoencoders", "classifiers"])
    p.add_argument("--data", required=True, metavar="SPEC", help="dataset spec, as for train")
    p.add_argument("--models", help="comma-separated subset of the comparison's models")
    p.add_argument("--preset", help="default, quick or sweep (see above)")
    p.add_argument("--epochs", type=int, help="epochs, the same for every model (default 20)")
    p.add_argument("--max-time", type=float, help="seconds of training for the whole comparison")
    p.add_argument("--sweep", action="store_true", default=None, help="autoencoders: squeeze_ae's design-space grid")
    p.add_argument(
        "--weights",
        metavar="NAME",
        help="measure each model's shipped weights NAME, no training (squeezelab weights list)",
    )
    p.add_argument("--code-size", type=int, help="autoencoders' code size, the same for all (default 32)")
    p.add_argument("--image-size", type=int, help="resize images to this square size")
    p.add_argument("--grayscale", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--out", help="output folder (default runs/compare-KIND)")
    p.add_argument("--overwrite", action="store_true", help="replace a report already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: experiments draw figures, and matplotlib is slow to import for the other commands.
    from squeezelab.experiments.compare import PRESETS, CompareConfig, run_comparison
    from squeezelab.experiments.shipped import compare_shipped

    options = {}
    if args.preset:
        if args.preset not in PRESETS:
            raise ConfigError(f"unknown preset {args.preset!r}; presets: {', '.join(sorted(PRESETS))}")
        options.update(PRESETS[args.preset])
    options.update({name: getattr(args, name) for name in _OPTIONS if getattr(args, name) is not None})
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else ()
    cfg = CompareConfig(kind=args.kind, data=args.data, models=models, **options)
    out = Path(args.out or f"runs/compare-{args.kind}")
    compare = compare_shipped if cfg.weights else run_comparison
    results = compare(cfg, out, overwrite=args.overwrite, verbose=verbosity(args))

    columns = results["columns"]
    rows = [
        [
            r["model"],
            *(
                ("failed: " + r["error"])
                if r.get("status") == "failed" and i == 0
                else format_value(r.get(c["key"]), c["format"])
                for i, c in enumerate(columns[1:])
            ),
        ]
        for r in results["rows"]
    ]
    headers = [c["label"] + (f" ({c['unit']})" if c["unit"] else "") for c in columns]
    print(format_table(headers, rows))
    print()
    for claim in results["claims"]:
        print(f"{claim['id']}. [{claim['verdict']}] {claim['claim']}\n   {claim['evidence']}")
    print(f"\nreport: {out / 'report.html'} ({results['seconds']:.0f} s)")
    return 0
