"""``squeezelab evaluate``: score a trained model on a dataset split, with a plot of the result."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from squeezelab.cli.common import add_command
from squeezelab.inference import evaluate
from squeezelab.report.text import format_table
from squeezelab.weights import parse_weights_spec


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "evaluate",
        help="score a trained model on a dataset split",
        description="Classifiers: top-1, top-5, per-class accuracy and a confusion-matrix PNG. Autoencoders: "
        "MSE, PSNR, SSIM and a PNG of originals and reconstructions.",
        examples=[
            "squeezelab evaluate runs/sqz --split val",
            "squeezelab evaluate squeezenet_cifar:cifar10 --data cifar10:data/cifar10 --split test --json",
            "squeezelab evaluate runs/sqz/best.safetensors --data cifar10:data/cifar10 --split test --json",
            "squeezelab evaluate runs/fast --split val --tta-flip --tta-translate",
        ],
    )
    p.add_argument(
        "checkpoint",
        metavar="MODEL:WEIGHTS|RUN|CHECKPOINT",
        help="shipped weights, a run directory, a .safetensors checkpoint or a .sqz file",
    )
    p.add_argument("--data", metavar="SPEC", help="dataset (default: the one the model was trained on)")
    p.add_argument(
        "--split",
        default="test",
        choices=["test", "val", "train"],
        help="test: the dataset's own; val: the part the run held out (default: test)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", help="folder for the PNG and JSON (default: the run directory; none for MODEL:WEIGHTS)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--tta-flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average each image's and its mirror's logits (default: as the run validated)",
    )
    p.add_argument(
        "--tta-translate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also average the views shifted by one pixel up-left and down-right (default: as the run validated)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = args.out
    if out is None and parse_weights_spec(args.checkpoint) is None:  # shipped weights: no folder of their own
        source = Path(args.checkpoint)
        out = source if source.is_dir() else source.parent
    result = evaluate(
        args.checkpoint,
        args.data,
        split=args.split,
        batch_size=args.batch_size,
        out_dir=out,
        device=args.device,
        progress=not args.json,
        tta_flip=args.tta_flip,
        tta_translate=args.tta_translate,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['checkpoint']} on {result['data']} ({result['split']}, {result['samples']:,} samples)")
    if "acc1" in result:
        rows = [
            ["top-1 accuracy", f"{result['acc1']:.4f}"],
            ["top-5 accuracy", f"{result['acc5']:.4f}"],
            ["loss", f"{result['loss']:.4f}"],
        ]
        rows += [[f"  class {c}", f"{a:.4f}"] for c, a in result["per_class_accuracy"].items()]
        plot = result.get("confusion_png")
    else:
        rows = [
            ["MSE", f"{result['mse']:.5f}"],
            ["PSNR", f"{result['psnr']:.2f} dB"],
            ["SSIM", f"{result['ssim']:.4f}"],
            ["loss", f"{result['loss']:.5f}"],
        ]
        plot = result.get("reconstructions_png")
    print(format_table(["metric", "value"], rows, right=(1,)))
    if plot:
        print(f"plot: {plot}")
    return 0
