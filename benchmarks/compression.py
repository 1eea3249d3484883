"""Deep Compression benchmark: the paper's SqueezeNet setting, and a trained squeezenet_cifar with int8.

    python benchmarks/compression.py --fresh                      # squeezenet1_0 at 6 and 8 bits (seconds)
    python benchmarks/compression.py --run runs/cifar-sq --int8   # a trained run: fine-tuning, int8 (minutes)
    python benchmarks/compression.py --run runs/cifar-sq --int8-only   # int8 against fp32 alone (a minute)

Prints the stage tables as Markdown for BENCHMARKS.md; each run directory keeps its .sqz files and report.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine  # noqa: E402

from squeezelab.compress.pipeline import CompressConfig  # noqa: E402
from squeezelab.compress.run import compress_run, int8_report, int8_table, render_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true", help="squeezenet1_0, freshly initialised, 1000 classes")
    parser.add_argument("--run", help="a trained run directory to compress with fine-tuning")
    parser.add_argument("--density", type=float, default=0.33)
    parser.add_argument("--bits", type=int, default=6)
    parser.add_argument("--scope", choices=["layer", "global"], default="layer")
    parser.add_argument("--prune-steps", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--centroid-epochs", type=int, default=1)
    parser.add_argument("--lr-scale", type=float, default=0.1)
    parser.add_argument("--centroid-lr-scale", type=float)
    parser.add_argument("--int8", action="store_true")
    parser.add_argument("--int8-only", action="store_true", help="with --run: the int8 measurements alone")
    parser.add_argument("--out", default="runs/bench-compression")
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    if args.fresh:
        for bits in (6, 8):
            cfg = CompressConfig(density=0.33, prune_steps=1, conv_bits=bits, fc_bits=bits)
            result, summary = compress_run(
                None,
                Path(args.out) / f"squeezenet1_0-{bits}bit",
                cfg,
                model_name="squeezenet1_0",
                overwrite=True,
                verbose=0,
            )
            print(render_report(result, summary, cfg))
    if args.run and args.int8_only:
        print(int8_table(int8_report(args.run)))
    elif args.run:
        cfg = CompressConfig(
            density=args.density,
            scope=args.scope,
            prune_steps=args.prune_steps,
            finetune_epochs=args.finetune_epochs,
            conv_bits=args.bits,
            fc_bits=args.bits,
            centroid_epochs=args.centroid_epochs,
            lr_scale=args.lr_scale,
            centroid_lr_scale=args.centroid_lr_scale,
        )
        out = Path(args.out) / Path(args.run).name
        result, summary = compress_run(args.run, out, cfg, int8=args.int8, overwrite=True, verbose=2)
        print(render_report(result, summary, cfg))


if __name__ == "__main__":
    main()
