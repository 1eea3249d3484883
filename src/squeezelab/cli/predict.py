"""``squeezelab predict``: classify or reconstruct image files with a trained or exported model."""

from __future__ import annotations

import argparse
import json

from squeezelab.cli.common import add_command
from squeezelab.inference import predict
from squeezelab.report.text import format_table


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "predict",
        help="classify or reconstruct image files with a trained or exported model",
        description="Classifiers print the top-k labels with probabilities; autoencoders the reconstruction "
        "error of each image. The model is shipped weights (MODEL:WEIGHTS, see 'squeezelab weights list'), a run "
        "directory, a checkpoint, or a file made by 'squeezelab export' (.onnx, run with onnxruntime, or "
        "TorchScript .pt; on the CPU), which carries its own class names and normalisation. Folders are searched "
        "for images recursively. --json prints one JSON object per image, in input order: path, label, index, "
        "probability and topK (K = --top-k) for classifiers; path, mse and psnr for autoencoders.",
        examples=[
            "squeezelab predict squeezenet_cifar:cifar10 cat.jpg dog.png",
            "squeezelab predict squeezenet_cifar:cifar10 photos/ --json",
            "squeezelab predict runs/sqz cat.jpg dog.png",
            "squeezelab predict runs/ae digit.png --json",
            "squeezelab predict runs/sqz/best.onnx photos/ --batch 32 --on-bad-image skip",
        ],
    )
    p.add_argument("checkpoint", metavar="MODEL:WEIGHTS|RUN|CHECKPOINT|EXPORTED")
    p.add_argument("images", nargs="+", metavar="IMAGE|FOLDER")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--batch", "--batch-size", dest="batch_size", type=int, default=64, help="images per forward pass")
    p.add_argument("--on-bad-image", choices=["error", "skip"], default="error")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    results = predict(
        args.checkpoint,
        args.images,
        top_k=args.top_k,
        batch_size=args.batch_size,
        on_bad_image=args.on_bad_image,
        device=args.device,
    )
    if args.json:
        for result in results:
            if "top" in result:
                result[f"top{args.top_k}"] = result.pop("top")
            print(json.dumps(result))
        return 0
    if results and "top" in results[0]:
        rows = [[r["path"], *(f"{t['label']} {t['probability']:.3f}" for t in r["top"])] for r in results]
        headers = ["image", *(f"top-{i + 1}" for i in range(len(results[0]["top"])))]
    else:
        rows = [[r["path"], f"{r['mse']:.5f}", f"{r['psnr']:.2f}"] for r in results]
        headers = ["image", "MSE", "PSNR (dB)"]
    print(format_table(headers, rows))
    return 0
