"""``squeezelab export``: write a trained model as a verified ONNX or TorchScript file."""

from __future__ import annotations

import argparse
from pathlib import Path

from squeezelab.cli.common import add_command, parse_shape
from squeezelab.errors import ConfigError
from squeezelab.export import SUFFIXES, export
from squeezelab.inference import open_checkpoint
from squeezelab.report.text import human_bytes
from squeezelab.weights import parse_weights_spec


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "export",
        help="write a trained model as a verified ONNX or TorchScript file",
        description="Export the network of a run or checkpoint to ONNX (opset 18, run with onnxruntime) or "
        "TorchScript, with a dynamic batch dimension. The spatial size is fixed (--input, default: the size the "
        "model was trained at): SqueezeNet's ceil-mode pooling and adaptive pooling compute their windows from "
        "it. Class names, normalisation, input size and the model name are stored in the file, so "
        "'squeezelab predict FILE IMAGE' needs nothing else. Before writing, the file is run on the same inputs "
        "as PyTorch (eval mode, batch 1 and 5); fp32 outputs must agree within 1e-4, or the command exits "
        "with 1 and writes nothing. --int8 (ONNX only) then quantizes the verified graph with onnxruntime (QDQ: "
        "int8 weights per channel, uint8 activations), calibrated on 512 training images of the run's dataset, "
        "and checks it on the run's held-out images against the fp32 model: classifiers must keep the top-1 "
        "class of at least 99% of them, autoencoders a reconstruction MSE at most 10% above fp32's, or it exits "
        "with 1. ONNX needs the onnx extra: pip install 'squeezelab[onnx]'.",
        examples=[
            "squeezelab export runs/sqz",
            "squeezelab export squeezenet_cifar:cifar10 --format torchscript",
            "squeezelab export runs/sqz --format torchscript -o deploy/sqz.pt",
            "squeezelab export runs/sqz --int8",
            "squeezelab export runs/imagenet/best.safetensors --input 3x160x160 -o sqz160.onnx",
            "squeezelab predict runs/sqz/best.onnx cat.jpg",
        ],
    )
    p.add_argument(
        "source",
        metavar="MODEL:WEIGHTS|RUN|CHECKPOINT|SQZ",
        help="shipped weights (written to ./MODEL.WEIGHTS.onnx by default), a run directory, a .safetensors "
        "checkpoint or a .sqz file",
    )
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="default: onnx")
    p.add_argument(
        "-o", "--out", help="output file (default: the checkpoint's name with .onnx or .pt, -int8.onnx with --int8)"
    )
    p.add_argument("--input", metavar="CxHxW", help="input size, CxHxW or HxW (default: the trained size)")
    p.add_argument(
        "--int8", action="store_true", help="quantize to int8 (QDQ ONNX), calibrated on the run's training images"
    )
    p.add_argument("--no-verify", action="store_true", help="write the file without comparing it with PyTorch")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.int8 and args.format != "onnx":
        raise ConfigError(f"--int8 writes ONNX (QDQ, run by onnxruntime) only; drop --format {args.format}")
    size = parse_shape(args.input, channels_optional=True) if args.input else None
    ckpt = open_checkpoint(args.source)
    spec = parse_weights_spec(args.source)
    # Shipped weights live inside the installed package: their export goes to the working folder instead.
    stem = Path(".".join(spec)) if spec else ckpt.path.with_suffix("")
    default = stem.with_name(stem.name + ("-int8" if args.int8 else "") + SUFFIXES[args.format])
    out = Path(args.out) if args.out else default
    result = export(ckpt, out, format=args.format, input_size=size, verify=not args.no_verify, int8=args.int8)
    shape = "x".join(map(str, result.input_shape))
    print(
        f"wrote {result.path} ({args.format}, {result.meta['precision']}, {human_bytes(result.file_bytes)}): "
        f"input N x {shape}, N dynamic, {shape} fixed"
    )
    runtime = "onnxruntime" if args.format == "onnx" else "TorchScript"
    if not result.checks:
        print("not verified (--no-verify)")
    for check in result.checks:
        print(f"verified with {runtime} against PyTorch: {check.describe()}")
    return 0
