"""The ``squeezelab`` command: a thin layer over the Python API.

Every mistake a user can make (a name, a shape, a file, an option) ends as one line on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path

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


# -- train -----------------------------------------------------------------------------------------------------

# Options taken positionally or by their own flags, not generated from TrainConfig.
_OWN_FLAGS = {"model", "model_kwargs", "data"}
# What a resumed run may change; everything else is fixed by its config.json.
_RESUMABLE = {"epochs", "max_time", "device", "early_stopping", "val_every"}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``--batch-size`` for ``batch_size``), default None = not given."""
    from squeezelab.train import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("training options (override the preset)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in _OWN_FLAGS:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        args = typing.get_args(kind)
        optional = type(None) in args  # X | None
        if optional:
            kind = next(a for a in args if a is not type(None))
            args = typing.get_args(kind)
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(kind) is typing.Literal:
            group.add_argument(flag, choices=args, default=None, help=help_text)
        else:
            if typing.get_origin(kind) is tuple:
                parse, metavar = (_int_list, "N[,N...]") if args[0] is int else (_path_list, "PATH[,PATH...]")
            else:
                parse, metavar = kind, f.name.upper()
            if optional:  # "none" switches off what a preset set, e.g. --max-time none
                parse, metavar, help_text = (
                    _or_none(parse),
                    metavar + "|none",
                    help_text[:-1] + f"; none: {f.metadata.get('none', 'off')})",
                )
            group.add_argument(flag, type=parse, default=None, metavar=metavar, help=help_text)


# What "--max-time none" parses to: None itself means that the flag was not given.
_NONE = object()


def _or_none(parse):
    def parse_or_none(text: str):
        return _NONE if text.lower() == "none" else parse(text)

    parse_or_none.__name__ = parse.__name__  # argparse names the type in its error message
    return parse_or_none


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, e.g. 16,24; got {text!r}") from None


def _path_list(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)


def _given_options(args: argparse.Namespace) -> dict:
    from squeezelab.train import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)} - _OWN_FLAGS
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return {name: None if value is _NONE else value for name, value in given.items()}


def _rank() -> int:
    """This process's rank under torchrun (0 when alone): only rank 0 checks, writes and prints."""
    return int(os.environ.get("RANK", "0"))


def _new_run_dir(out_dir: str, name: str) -> Path:
    run_dir = Path(out_dir) / name
    if _rank() == 0 and run_dir.exists() and any(run_dir.iterdir()):
        raise SqueezelabError(f"{run_dir} already holds a run; choose another --name, or --resume {run_dir}")
    return run_dir


def cmd_train(args: argparse.Namespace) -> int:
    from squeezelab.train import TrainConfig, fit, preset
    from squeezelab.train.distributed import finish_distributed

    options = _given_options(args)
    if args.resume:
        run_dir = Path(args.resume)
        config_path = run_dir / "config.json"
        if not config_path.exists():
            raise SqueezelabError(f"{run_dir} is not a run directory (no config.json) and cannot be resumed")
        fixed = (
            sorted(set(options) - _RESUMABLE)
            + (["model"] if args.model else [])
            + (["data"] if args.data else [])
            + (["preset"] if args.preset else [])
            + (["arg"] if args.arg else [])
            + (["num_classes"] if args.num_classes is not None else [])
        )
        if fixed:
            raise SqueezelabError(
                f"a resumed run keeps its configuration; only {', '.join(sorted(_RESUMABLE))} may change, not "
                + ", ".join(fixed)
            )
        cfg = TrainConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8"))).updated(**options)
        history = fit(cfg.model, config=cfg, run_dir=run_dir, resume=True, verbose=2 if args.quiet else 1)
    else:
        cfg = preset(args.preset) if args.preset else TrainConfig()
        changes = dict(options)
        if args.model:
            changes["model"] = args.model
            if args.model != cfg.model:
                changes["model_kwargs"] = {}
        if args.data:
            changes["data"] = args.data
        extra = parse_model_args(args.arg)
        if args.num_classes is not None:
            extra["num_classes"] = args.num_classes
        cfg = cfg.updated(**changes)
        cfg = cfg.updated(model_kwargs={**cfg.model_kwargs, **extra})
        name = args.name or f"{args.preset or cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = _new_run_dir(args.out_dir, name)
        history = fit(cfg.model, config=cfg, run_dir=run_dir, verbose=2 if args.quiet else 1)
    finish_distributed()
    if _rank() != 0:
        return 0
    last = history.epochs[-1] if history.epochs else {}
    print(
        f"run: {run_dir}  ({history.stop_reason} after {len(history.epochs)} epochs, "
        f"{last.get('time', 0):.1f} s of training)"
    )
    if history.best_epoch is not None:
        print(
            f"best {history.monitor}: {history.best_value:.4g} at epoch {history.best_epoch} "
            f"-> {run_dir / 'best.safetensors'}"
        )
    if last.get("swa_epochs"):
        print(f"weight average of the last {last['swa_epochs']} epochs -> {run_dir / 'swa.safetensors'}")
    return 0


# -- evaluate / predict ----------------------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    from squeezelab.inference import evaluate

    out = args.out
    if out is None:
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


def cmd_predict(args: argparse.Namespace) -> int:
    from squeezelab.inference import predict

    results = predict(
        args.checkpoint,
        args.images,
        top_k=args.top_k,
        batch_size=args.batch_size,
        on_bad_image=args.on_bad_image,
        device=args.device,
    )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    if results and "top" in results[0]:
        rows = [[r["image"], *(f"{t['label']} {t['probability']:.3f}" for t in r["top"])] for r in results]
        headers = ["image", *(f"top-{i + 1}" for i in range(len(results[0]["top"])))]
    else:
        rows = [[r["image"], f"{r['mse']:.5f}", f"{r['psnr']:.2f}"] for r in results]
        headers = ["image", "MSE", "PSNR (dB)"]
    print(format_table(headers, rows))
    return 0


def parse_size(text: str) -> tuple[int, ...]:
    """'3x64x64' -> (3, 64, 64); '64x64' -> (64, 64), the channels left to the model."""
    try:
        size = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        size = ()
    if len(size) not in (2, 3) or min(size) < 1:
        raise SqueezelabError(f"--input must look like CxHxW or HxW, e.g. 3x64x64 or 64x64, got {text!r}")
    return size


def cmd_export(args: argparse.Namespace) -> int:
    from squeezelab.export import SUFFIXES, export
    from squeezelab.inference import open_checkpoint

    if args.int8 and args.format != "onnx":
        raise SqueezelabError(f"--int8 writes ONNX (QDQ, run by onnxruntime) only; drop --format {args.format}")
    size = parse_size(args.input) if args.input else None
    ckpt = open_checkpoint(args.source)
    default_name = ckpt.path.with_name(ckpt.path.stem + "-int8") if args.int8 else ckpt.path
    out = Path(args.out) if args.out else default_name.with_suffix(SUFFIXES[args.format])
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


def cmd_compare(args: argparse.Namespace) -> int:
    from squeezelab.experiments.compare import PRESETS, CompareConfig, run_comparison

    options = {}
    if args.preset:
        if args.preset not in PRESETS:
            raise SqueezelabError(f"unknown preset {args.preset!r}; presets: {', '.join(sorted(PRESETS))}")
        options.update(PRESETS[args.preset])
    given = {
        "epochs": args.epochs,
        "max_time": args.max_time,
        "code_size": args.code_size,
        "image_size": args.image_size,
        "grayscale": args.grayscale,
        "device": args.device,
        "seed": args.seed,
    }
    options.update({k: v for k, v in given.items() if v is not None})
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else ()
    cfg = CompareConfig(kind=args.kind, data=args.data, models=models, **options)
    out = Path(args.out or f"runs/compare-{args.kind}")
    results = run_comparison(cfg, out, overwrite=args.overwrite, verbose=2 if args.quiet else 1)
    from squeezelab.report.render import format_value

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


def cmd_demo(args: argparse.Namespace) -> int:
    from squeezelab.experiments.demo import run_demo

    run_demo(
        Path(args.out_dir) / args.name,
        epochs_scale=args.epochs_scale,
        overwrite=args.overwrite,
        verbose=2 if args.quiet else 1,
    )
    return 0


# -- compress / decompress -------------------------------------------------------------------------------------


def cmd_compress(args: argparse.Namespace) -> int:
    from squeezelab.compress.pipeline import CompressConfig
    from squeezelab.compress.run import compress_run, print_summary

    conv_bits = args.conv_bits if args.conv_bits is not None else args.bits
    fc_bits = args.fc_bits if args.fc_bits is not None else args.bits
    config = CompressConfig(
        density=args.density,
        scope=args.scope,
        prune_steps=args.prune_steps,
        finetune_epochs=args.finetune_epochs,
        conv_bits=8 if conv_bits is None else conv_bits,
        fc_bits=5 if fc_bits is None else fc_bits,
        centroid_epochs=args.centroid_epochs,
        gap_bits=args.gap_bits,
        coder=args.coder,
        small_dtype=args.small_dtype,
        lr_scale=args.lr_scale,
        centroid_lr_scale=args.centroid_lr_scale,
    )
    if args.source is None and args.model is None:
        raise SqueezelabError("give a run directory or checkpoint to compress, or --model NAME for a fresh model")
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
        verbose=2 if args.quiet else 1,
    )
    print_summary(result, summary)
    print(f"\ncompressed model: {out / 'model.sqz'}  (report: {out / 'report.md'})")
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    from squeezelab.compress.run import decompress

    out = decompress(args.file, args.output, overwrite=args.overwrite)
    print(f"wrote {out} (and its sidecar {out.with_suffix('.json').name})")
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

    p = sub.add_parser(
        "train",
        help="train a model; results go to a run directory",
        description="Train a model on a dataset. The run directory (runs/NAME) gets config.json, metrics.jsonl, "
        "last and best checkpoints (safetensors + JSON) and plots/curves.png. Ctrl-C keeps the last finished "
        "epoch and prints the command that resumes it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            "squeezelab train dense_ae --data digits --image-size 28 --epochs 20",
            "squeezelab train --preset seed-mnist-ae --data mnist:../shared/data/mnist",
            "squeezelab train --preset seed-cifar10 --data folder:../shared/data/cifar10/cifar10-train-jpg.tar",
            "squeezelab train --preset fast-cifar10 --data folder:../shared/data/cifar10/cifar10-train-jpg.tar",
            "squeezelab train --preset fast-cifar10 --data cifar10:data/cifar10 --max-time 5400   # 90 min, not 30",
            "squeezelab train --preset fast-cifar10 --data cifar10:data/cifar10 --no-time-schedule --max-time none "
            "--epochs 50",
            "squeezelab train --preset fast-cifar10 --data cifar10:data/cifar10 --teachers runs/a,runs/b   "
            "# distil from two trained runs",
            "squeezelab train --preset fast-cifar10 --data cifar10:data/cifar10 --init-from runs/a --lr 0.05 "
            "--low-res none --teachers runs/a,runs/b   # fine-tune a trained run towards two teachers",
            "squeezelab train squeezenet_cifar --data cifar10:data/cifar10 --device cuda --bf16 --channels-last "
            "--compile",
            "squeezelab train squeezenet_cifar --data cifar10:data/cifar10 --download --optimizer sgd --lr 0.05 "
            "--schedule onecycle --crop-padding 4 --flip --name sqz",
            "squeezelab train --resume runs/sqz --epochs 60",
        ),
    )
    p.add_argument("model", nargs="?", help="a registered model (default: the preset's, else squeezenet_cifar)")
    p.add_argument("--preset", help="a named recipe: fast-cifar10, seed-cifar10, seed-mnist-ae")
    p.add_argument("--data", metavar="SPEC", help="digits | mnist:DIR | fashion-mnist:DIR | cifar10:DIR | folder:DIR")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="extra model option")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: the dataset's class count)")
    p.add_argument("--name", help="run name (default: MODEL-DATE-TIME)")
    p.add_argument("--out-dir", default="runs", help="where run directories go (default: runs)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this directory from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar; one log line per epoch")
    _add_config_flags(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="score a trained model on a dataset split",
        description="Classifiers: top-1, top-5, per-class accuracy and a confusion-matrix PNG. Autoencoders: "
        "MSE, PSNR, SSIM and a PNG of originals and reconstructions.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            "squeezelab evaluate runs/sqz --split val",
            "squeezelab evaluate runs/sqz/best.safetensors --data cifar10:data/cifar10 --split test --json",
            "squeezelab evaluate runs/fast --split val --tta-flip --tta-translate",
        ),
    )
    p.add_argument("checkpoint", metavar="RUN|CHECKPOINT", help="a run directory or a .safetensors checkpoint")
    p.add_argument("--data", metavar="SPEC", help="dataset (default: the one the model was trained on)")
    p.add_argument(
        "--split",
        default="test",
        choices=["test", "val", "train"],
        help="test: the dataset's own; val: the part the run held out (default: test)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", help="folder for the PNG and JSON (default: the run directory)")
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
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser(
        "predict",
        help="classify or reconstruct image files with a trained or exported model",
        description="Classifiers print the top-k labels with probabilities; autoencoders the reconstruction "
        "error of each image. The model is a run directory, a checkpoint, or a file made by 'squeezelab export' "
        "(.onnx, run with onnxruntime, or TorchScript .pt; on the CPU), which carries its own class names and "
        "normalisation. Folders are searched for images recursively.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            "squeezelab predict runs/sqz cat.jpg dog.png",
            "squeezelab predict runs/ae digit.png --json",
            "squeezelab predict runs/sqz/best.onnx photos/ --batch 32 --on-bad-image skip",
        ),
    )
    p.add_argument("checkpoint", metavar="RUN|CHECKPOINT|EXPORTED")
    p.add_argument("images", nargs="+", metavar="IMAGE|FOLDER")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--batch", "--batch-size", dest="batch_size", type=int, default=64, help="images per forward pass")
    p.add_argument("--on-bad-image", choices=["error", "skip"], default="error")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser(
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
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            "squeezelab export runs/sqz",
            "squeezelab export runs/sqz --format torchscript -o deploy/sqz.pt",
            "squeezelab export runs/sqz --int8",
            "squeezelab export runs/imagenet/best.safetensors --input 3x160x160 -o sqz160.onnx",
            "squeezelab predict runs/sqz/best.onnx cat.jpg",
        ),
    )
    p.add_argument(
        "source", metavar="RUN|CHECKPOINT|SQZ", help="a run directory, a .safetensors checkpoint or a .sqz file"
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
    p.set_defaults(run=cmd_export)

    p = sub.add_parser(
        "compare",
        help="train squeezed and traditional models under one budget and report them side by side",
        description="Trains every model of a comparison with the same data, recipe and budget, measures size, "
        "compute, speed and test quality, judges the source material's claims, and writes results.json, "
        "report.md and a self-contained report.html. autoencoders: dense_ae, conv_ae, squeeze_ae, "
        "contractive_ae, squeeze_ae+contractive, all at one code size. classifiers: squeezenet_cifar (plain, "
        "+simple bypass, +5x5 expand) against alexnet_cifar.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            "squeezelab compare autoencoders --data mnist:../shared/data/mnist --preset quick",
            "squeezelab compare classifiers --data folder:../shared/data/cifar10/cifar10-train-jpg.tar --epochs 15",
            "squeezelab compare autoencoders --data digits --image-size 28 --models dense_ae,squeeze_ae --epochs 3",
        ),
    )
    p.add_argument("kind", choices=["autoencoders", "classifiers"])
    p.add_argument("--data", required=True, metavar="SPEC", help="dataset spec, as for train")
    p.add_argument("--models", help="comma-separated subset of the comparison's models")
    p.add_argument("--preset", help="quick: 10 epochs or 150 s per model")
    p.add_argument("--epochs", type=int, help="epochs per model (default 10)")
    p.add_argument("--max-time", type=float, help="seconds of training per model")
    p.add_argument("--code-size", type=int, help="autoencoders' code size, the same for all (default 32)")
    p.add_argument("--image-size", type=int, help="resize images to this square size")
    p.add_argument("--grayscale", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--out", help="output folder (default runs/compare-KIND)")
    p.add_argument("--overwrite", action="store_true", help="replace a report already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=cmd_compare)

    p = sub.add_parser(
        "demo",
        help="train squeezed and traditional models on the bundled digits and compare them",
        description="On scikit-learn's bundled 8x8 digits (resized to 28x28, no download): trains dense_ae, "
        "squeeze_ae, contractive_ae, squeezenet_cifar and alexnet_cifar, prints one side-by-side table and "
        "writes runs/demo/ with plots and report.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("squeezelab demo", "squeezelab demo --name demo2 --quiet"),
    )
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--name", default="demo")
    p.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every model's epochs (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo report in that folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=cmd_demo)
    p = sub.add_parser(
        "compress",
        help="Deep Compression: prune, share weights, entropy-code into a .sqz file",
        description="Compresses a trained run (fine-tuning on its data, measuring its validation split after "
        "every stage) or a freshly built model (--model, no fine-tuning): iterative magnitude pruning, per-layer "
        "k-means weight sharing with centroid fine-tuning, and ANS or Huffman coding of the cluster indices and "
        "sparse positions. Writes pruned.sqz, model.sqz, stages.json and report.md to --out.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            "squeezelab compress runs/seed-cifar10 --density 0.33 --bits 5",
            "squeezelab compress --model squeezenet1_0 --density 0.33 --bits 6",
            "squeezelab compress runs/my-run --int8 --out runs/my-run-compressed",
        ),
    )
    p.add_argument("source", nargs="?", help="run directory or checkpoint (omit with --model)")
    p.add_argument("--model", help="compress a freshly initialised registry model instead (no fine-tuning)")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="model option, with --model")
    p.add_argument("--density", type=float, default=0.33, help="fraction of conv/fc weights kept (default 0.33)")
    p.add_argument("--scope", choices=["layer", "global"], default="layer", help="prune per layer or globally")
    p.add_argument("--prune-steps", type=int, default=3, help="prune/fine-tune rounds (default 3)")
    p.add_argument("--finetune-epochs", type=int, default=1, help="fine-tuning epochs after each pruning round")
    p.add_argument("--bits", type=int, help="bits per shared weight for every layer (sets both below)")
    p.add_argument("--conv-bits", type=int, help="bits per shared conv weight (default 8)")
    p.add_argument("--fc-bits", type=int, help="bits per shared fully connected weight (default 5)")
    p.add_argument("--centroid-epochs", type=int, default=1, help="epochs fine-tuning the shared centroids")
    p.add_argument("--gap-bits", type=int, default=5, help="bits of a sparse-position gap (default 5)")
    p.add_argument("--coder", choices=["ans", "huffman"], default="ans", help="entropy coder (default ans)")
    p.add_argument("--small-dtype", choices=["float16", "float32"], default="float16", help="biases, BN statistics")
    p.add_argument("--lr-scale", type=float, default=0.1, help="fine-tuning lr as a fraction of the run's lr")
    p.add_argument(
        "--centroid-lr-scale",
        type=float,
        help="the centroid stage's lr as a fraction of the run's lr (default: --lr-scale); lower it for models "
        "with batch norm, which is folded away before that stage",
    )
    p.add_argument("--int8", action="store_true", help="also measure post-training static int8 against fp32")
    p.add_argument("--out", help="output folder (default runs/compress-NAME)")
    p.add_argument("--overwrite", action="store_true", help="replace a compressed model already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=cmd_compress)

    p = sub.add_parser(
        "decompress",
        help="decode a .sqz file back into a safetensors checkpoint",
        description="Decodes FILE.sqz into a checkpoint (safetensors weights + JSON sidecar) whose outputs equal "
        "the compressed model's exactly; evaluate, predict and export also read .sqz files directly.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples("squeezelab decompress runs/compress-squeezenet1_0/model.sqz -o model.safetensors"),
    )
    p.add_argument("file", metavar="FILE.sqz")
    p.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(run=cmd_decompress)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except SqueezelabError as exc:
        if _rank() == 0:  # under torchrun every process meets the same mistake: one line, not one per process
            sys.stderr.write(f"squeezelab: error: {exc}\n")
        return getattr(exc, "exit_code", EXIT_USAGE)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
