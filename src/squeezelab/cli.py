"""The ``squeezelab`` command: a thin layer over the Python API.

Every mistake a user can make (a name, a shape, a file, an option) ends as one line on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Sequence

import torch

from squeezelab.errors import SqueezelabError
from squeezelab.models import create_model, list_models, model_info
from squeezelab.profile import count_macs, count_parameters, profile_model
from squeezelab.report.text import format_table, human_bytes, human_count

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the fix instead of the whole usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def parse_shape(text: str) -> tuple[int, int, int]:
    """'3x224x224' -> (3, 224, 224)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise SqueezelabError(f"--input must look like CxHxW, e.g. 3x224x224, got {text!r}")
    return shape  # type: ignore[return-value]


def parse_model_args(pairs: Sequence[str]) -> dict:
    """['bypass=simple', 'code_size=16'] -> {'bypass': 'simple', 'code_size': 16}; values are Python literals."""
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SqueezelabError(f"--arg takes KEY=VALUE, got {pair!r}")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value  # a bare word such as bypass=simple is a string
    return kwargs


def _build_model(name: str, shape: tuple[int, int, int] | None, num_classes: int | None, extra: dict):
    info = model_info(name)
    kwargs = dict(extra)
    if shape is not None:
        kwargs.setdefault("in_chans", shape[0])
        if info.kind == "autoencoder":
            kwargs.setdefault("img_size", shape[1:])
    if num_classes is not None:
        if info.kind != "classifier":
            raise SqueezelabError(f"{name} is an autoencoder and takes no --num-classes")
        kwargs["num_classes"] = num_classes
    return create_model(name, **kwargs), (shape or info.default_input)


def cmd_models(args: argparse.Namespace) -> int:
    rows = []
    for name in list_models(args.kind):
        info = model_info(name)
        with torch.device("meta"):  # counts without allocating AlexNet's 61M weights
            model = create_model(name)
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
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [
        [r["name"], r["kind"], r["input"], f"{r['params']:,}", human_count(r["macs"]), r["description"]] for r in rows
    ]
    print(format_table(["model", "kind", "input", "params", "MACs", "description"], table, right=(3, 4)))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    shape = parse_shape(args.input) if args.input else None
    if args.batch < 1:
        raise SqueezelabError(f"--batch must be at least 1, got {args.batch}")
    model, shape = _build_model(args.model, shape, args.num_classes, parse_model_args(args.arg))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SqueezelabError("--device cuda asked for, but PyTorch sees no CUDA device; use --device cpu")
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="squeezelab",
        description="Compact SqueezeNet-family networks and autoencoders, measured against traditional ones.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("squeezelab models", "squeezelab profile squeezenet1_1 --input 3x224x224"),
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser(
        "models",
        help="list the registered models with parameters and MACs",
        description="List every registered model with its parameters and MACs at its default input.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("squeezelab models", "squeezelab models --kind autoencoder --json"),
    )
    p.add_argument("--kind", choices=["classifier", "autoencoder"], help="only models of this kind")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=cmd_models)

    p = sub.add_parser(
        "profile",
        help="measure parameters, bytes, MACs, latency, throughput and memory of a model",
        description="Measure one model in eval mode: parameters, bytes, MACs, latency (batch 1), throughput "
        "and peak activation memory. MACs count convolutions and matrix products; FLOPs = 2 x MACs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            "squeezelab profile squeezenet1_1",
            "squeezelab profile squeezenet_cifar --input 3x32x32 --batch 256 --num-classes 100",
            "squeezelab profile squeezenet_cifar --arg bypass=simple --arg expand_5x5=True --json",
            "squeezelab profile squeeze_ae --input 1x28x28 --arg code_size=16",
        ),
    )
    p.add_argument("model", help="a registered model name (see 'squeezelab models')")
    p.add_argument("--input", metavar="CxHxW", help="one sample's shape (default: the model's own)")
    p.add_argument("--batch", type=int, default=64, help="batch size for throughput and memory (default 64)")
    p.add_argument("--num-classes", type=int, help="classifier output classes")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="extra model option")
    p.add_argument("--repeats", type=int, default=10, help="timed runs after warm-up (default 10)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=cmd_profile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except SqueezelabError as exc:
        print(f"squeezelab: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
