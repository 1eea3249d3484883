"""``squeezelab codec``: compress images to ``.sqzi`` files with a learned codec, decode them, and measure
rate and distortion against JPEG and WebP."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from squeezelab.cli.common import add_command
from squeezelab.codec import decode_files, encode_files, load_codec, rd, read_image, shipped_codecs
from squeezelab.data import load_dataset, split_validation
from squeezelab.data.folder import IMAGE_EXTENSIONS
from squeezelab.errors import ConfigError, DataError
from squeezelab.io import atomic_write, json_default
from squeezelab.report.rd import plot_rd, rd_markdown
from squeezelab.report.text import format_table


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "codec",
        help="compress images to .sqzi files with a learned codec, decode them, compare with JPEG and WebP",
        description="A learned transform codec (Ballé et al. 2017 layout, or its Fire-module counterpart) turns "
        "an image into a .sqzi file: a 20-byte header with a CRC32, then entropy-coded latents. Files decode "
        "to PNG in the input's mode (L or RGB). 'eval' measures bits per pixel from the files themselves.",
        examples=[
            "squeezelab codec list --json",
            "squeezelab codec encode --quality 2 photo.png scan.jpg -o compressed/",
            "squeezelab codec decode compressed/*.sqzi -o decoded/",
            "squeezelab codec eval --images folder:../shared/data/cifar10/cifar10-train-jpg.tar --split val"
            " --limit 500 --out rd-cifar",
            "squeezelab codec eval --images photos/ --model squeeze_codec --out rd-photos",
        ],
    )
    actions = p.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the shipped codecs and their qualities, the default first")
    listing.add_argument("--json", action="store_true", help="print a JSON list of {model, qualities}")
    encode = actions.add_parser("encode", help="write OUTDIR/<stem>.sqzi for each input image")
    encode.add_argument("inputs", nargs="+", metavar="IN", help="image files")
    encode.add_argument("-o", "--out", required=True, metavar="OUTDIR", help="folder for the .sqzi files")
    _model_options(encode, "the shipped codec (default: the default one) or a trained codec run directory")
    decode = actions.add_parser("decode", help="write OUTDIR/<stem>.png for each .sqzi file")
    decode.add_argument("inputs", nargs="+", metavar="IN.sqzi")
    decode.add_argument("-o", "--out", required=True, metavar="OUTDIR", help="folder for the PNG files")
    decode.add_argument("--model", help="the run directory that wrote the files (default: what their header names)")
    evaluation = actions.add_parser("eval", help="rate-distortion of the codec's qualities beside JPEG and WebP")
    evaluation.add_argument("--images", required=True, metavar="DIR|SPEC", help="a folder of images or a dataset spec")
    evaluation.add_argument("--split", default="val", choices=("val", "train", "test"), help="with a dataset spec")
    evaluation.add_argument("--limit", type=int, default=None, help="the first N images only")
    evaluation.add_argument("--out", required=True, metavar="DIR", help="folder for files, results.json, report")
    evaluation.add_argument(
        "--model",
        action="append",
        help="a shipped codec (all its qualities) or a run directory; repeat to compare (default: every shipped)",
    )
    p.set_defaults(run=run)


def _model_options(parser: argparse.ArgumentParser, model_help: str) -> None:
    parser.add_argument("--model", help=model_help)
    parser.add_argument("--quality", type=int, help="the shipped codec's quality (default: its middle one)")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        codecs = shipped_codecs()
        if args.json:
            print(json.dumps(codecs))
        else:
            print(
                format_table(["codec", "qualities"], [[c["model"], " ".join(map(str, c["qualities"]))] for c in codecs])
            )
        return 0
    if args.action == "encode":
        codec = load_codec(args.model, args.quality)
        for path in encode_files(args.inputs, args.out, codec):
            print(path)
        return 0
    if args.action == "decode":
        for path in decode_files(args.inputs, args.out, args.model):
            print(path)
        return 0
    return _evaluate(args)


def _codecs(models: list[str] | None) -> list:
    if not models:
        models = [c["model"] for c in shipped_codecs()]
        if not models:
            raise ConfigError("no codec weights are installed; pass trained codec runs with --model RUN")
    codecs = []
    for model in models:
        shipped = next((c for c in shipped_codecs() if c["model"] == model), None)
        if shipped is None:
            codecs.append(load_codec(model))
        else:
            codecs.extend(load_codec(model, quality) for quality in shipped["qualities"])
    return codecs


def _images(source: str, split: str, limit: int | None, meta: dict) -> list[tuple[str, np.ndarray]]:
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    folder = Path(source)
    if folder.is_dir():
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)[:limit]
        if not paths:
            raise DataError(f"{folder} holds no image files")
        return [(p.stem, read_image(p)) for p in paths]
    splits = load_dataset(source, progress=False)
    if split == "test":
        if splits.test is None:
            raise DataError(f"{source} has no test split; use --split val (the part the codec's run held out)")
        data = splits.test
    else:
        config = meta.get("config") or {}
        if not config.get("validation_split"):
            raise DataError("the codec's run held out no validation split; use --split test or a folder")
        train, val = split_validation(splits.train, config["validation_split"], config["seed"])
        data = val if split == "val" else train
    images = data.images[:limit].permute(0, 2, 3, 1).numpy()
    return [(f"{split}{i:05d}", image[..., 0] if image.shape[-1] == 1 else image) for i, image in enumerate(images)]


def _evaluate(args: argparse.Namespace) -> int:
    codecs = _codecs(args.model)
    images = _images(args.images, args.split, args.limit, codecs[0].meta)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; name a folder")
    results = rd.evaluate(images, codecs, out)
    results["source"] = args.images if Path(args.images).is_dir() else f"{args.images} --split {args.split}"
    atomic_write(out / "results.json", json.dumps(results, indent=2, default=json_default))
    atomic_write(out / "report.md", rd_markdown(results))
    plot_rd(results, out / "rd.png")
    print(rd_markdown(results), end="")
    print(f"wrote {out / 'results.json'}, {out / 'report.md'}, {out / 'rd.png'}")
    return 0
