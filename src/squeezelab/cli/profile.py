"""``squeezelab profile``: parameters, bytes, MACs, latency, throughput and memory of one model."""

from __future__ import annotations

import argparse
import json

import torch

from squeezelab.cli.common import add_command, parse_model_args, parse_shape
from squeezelab.errors import ConfigError
from squeezelab.models import model_info
from squeezelab.profile import profile_model
from squeezelab.report.text import format_table, human_bytes, human_count
from squeezelab.weights import create_model, get_weights, parse_weights_spec


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "profile",
        help="measure parameters, bytes, MACs, latency, throughput and memory of a model",
        description="Measure one model in eval mode: parameters, bytes, MACs, latency (batch 1), throughput "
        "and peak activation memory. MACs count convolutions and matrix products; FLOPs = 2 x MACs.",
        examples=[
            "squeezelab profile squeezenet1_1",
            "squeezelab profile squeezenet_cifar:cifar10",
            "squeezelab profile squeezenet_cifar --input 3x32x32 --batch 256 --num-classes 100",
            "squeezelab profile squeezenet_cifar --arg bypass=simple --arg expand_5x5=True --json",
            "squeezelab profile squeeze_ae --input 1x28x28 --arg code_size=16",
        ],
    )
    p.add_argument("model", help="a registered model name (see 'squeezelab models') or shipped MODEL:WEIGHTS")
    p.add_argument("--input", metavar="CxHxW", help="one sample's shape (default: the model's own)")
    p.add_argument("--batch", type=int, default=64, help="batch size for throughput and memory (default 64)")
    p.add_argument("--num-classes", type=int, help="classifier output classes")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="extra model option")
    p.add_argument("--repeats", type=int, default=10, help="timed runs after warm-up (default 10)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def _build_model(name: str, shape: tuple[int, ...] | None, num_classes: int | None, extra: dict):
    info = model_info(name)
    kwargs = dict(extra)
    if shape is not None:
        kwargs.setdefault("in_chans", shape[0])
        if info.kind == "autoencoder":
            kwargs.setdefault("img_size", shape[1:])
    if num_classes is not None:
        if info.kind != "classifier":
            raise ConfigError(f"{name} is an autoencoder and takes no --num-classes")
        kwargs["num_classes"] = num_classes
    return create_model(name, **kwargs), (shape or info.default_input)


def run(args: argparse.Namespace) -> int:
    shape = parse_shape(args.input) if args.input else None
    if args.batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {args.batch}")
    spec = parse_weights_spec(args.model)
    if spec is not None:
        if args.input or args.num_classes is not None or args.arg:
            raise ConfigError(f"{args.model} has its own input and options; drop --input, --num-classes and --arg")
        card = get_weights(*spec)
        model, shape = create_model(card.model, weights=card.name), tuple(card.data["input_shape"])
    else:
        model, shape = _build_model(args.model, shape, args.num_classes, parse_model_args(args.arg))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but PyTorch sees no CUDA device; use --device cpu")
    model.to(args.device)
    result = profile_model(model, shape, batch_size=args.batch, repeats=args.repeats, name=args.model)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    rows = [
        ["parameters", f"{result.params:,} ({result.trainable_params:,} trainable)"],
        ["fp32 size", f"{human_bytes(result.fp32_bytes)} ({result.file_bytes:,} bytes as safetensors)"],
        [
            "MACs / sample",
            f"{result.macs:,} ({human_count(result.macs)}; FLOPs = 2 x MACs = {human_count(result.flops)})",
        ],
        ["latency, batch 1", f"{result.latency_ms:.2f} ms (median of {args.repeats})"],
        [f"throughput, batch {result.batch_size}", f"{result.throughput:,.0f} samples/s"],
        ["achieved", f"{result.throughput * result.flops / 1e9:.1f} GFLOP/s"],
        ["peak activations", f"{human_bytes(result.peak_activation_bytes)} at batch {result.batch_size}"],
        ["device", f"{result.device}, {result.threads} threads"],
    ]
    print(f"{args.model} at {'x'.join(map(str, shape))}")
    print(format_table(["measure", "value"], rows))
    return 0
