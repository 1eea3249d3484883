"""``squeezelab compress``: Deep Compression of a run or a fresh model; its flags come from ``CompressConfig``."""

from __future__ import annotations

import argparse
from pathlib import Path

from squeezelab.cli.common import add_command, parse_model_args, verbosity
from squeezelab.cli.flags import add_dataclass_flags, given_options
from squeezelab.compress.config import CompressConfig
from squeezelab.compress.run import compress_run, print_summary
from squeezelab.errors import ConfigError

# Not a flag: a compression's fine-tuning is seeded 0.
_NOT_FLAGS = {"seed"}


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "compress",
        help="Deep Compression: prune, share weights, entropy-code into a .sqz file",
        description="Compresses a trained run (fine-tuning on its data, measuring its validation split after "
        "every stage) or a freshly built model (--model, no fine-tuning): iterative magnitude pruning, per-layer "
        "k-means weight sharing with centroid fine-tuning, and ANS or Huffman coding of the cluster indices and "
        "sparse positions. Writes pruned.sqz, model.sqz, stages.json and report.md to --out.",
        examples=[
            "squeezelab compress runs/seed-cifar10 --density 0.33 --bits 5",
            "squeezelab compress --model squeezenet1_0 --density 0.33 --bits 6",
            "squeezelab compress runs/my-run --int8 --out runs/my-run-compressed",
        ],
    )
    p.add_argument("source", nargs="?", help="run directory, checkpoint or shipped MODEL:WEIGHTS (omit with --model)")
    p.add_argument("--model", help="compress a freshly initialised registry model instead (no fine-tuning)")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="model option, with --model")
    p.add_argument("--int8", action="store_true", help="also measure post-training static int8 against fp32")
    p.add_argument("--out", help="output folder (default runs/compress-NAME)")
    p.add_argument("--overwrite", action="store_true", help="replace a compressed model already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    group = p.add_argument_group("compression options")
    add_dataclass_flags(group, CompressConfig, _NOT_FLAGS)
    group.add_argument(
        "--bits", type=int, help="bits per shared weight for every layer (sets --conv-bits and --fc-bits)"
    )
    p.set_defaults(run=run)


def compress_config(args: argparse.Namespace) -> CompressConfig:
    """The CompressConfig of the flags given; ``--bits`` stands for whichever of the two bit widths is not."""
    options = given_options(args, CompressConfig, _NOT_FLAGS)
    if args.bits is not None:
        options.setdefault("conv_bits", args.bits)
        options.setdefault("fc_bits", args.bits)
    return CompressConfig(**options)


def run(args: argparse.Namespace) -> int:
    config = compress_config(args)
    if args.source is None and args.model is None:
        raise ConfigError("give a run directory or checkpoint to compress, or --model NAME for a fresh model")
    name = args.model if args.source is None else Path(args.source).resolve().name
    out = Path(args.out or f"runs/compress-{name}")
    result, summary = compress_run(
        args.source,
        out,
        config,
        model_name=args.model,
        model_kwargs=parse_model_args(args.arg),
        int8=args.int8,
        overwrite=args.overwrite,
        verbose=verbosity(args),
    )
    print_summary(result, summary)
    print(f"\ncompressed model: {out / 'model.sqz'}  (report: {out / 'report.md'})")
    return 0
