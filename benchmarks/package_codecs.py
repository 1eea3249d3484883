"""Ship a codec's four qualities as package weights, from the runs ``benchmarks/train_codecs.sh`` leaves.

    benchmarks/train_codecs.sh conv_codec train 4 && benchmarks/train_codecs.sh conv_codec compress
    python benchmarks/package_codecs.py conv_codec --default

Each ``runs/compress-MODEL-qN/model.sqz`` becomes ``MODEL:qN`` with a card whose metrics are measured here, on
the held-out images of its run (validation_split 0.1, seed 0), by the command the card names.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from squeezelab.checkpoint import read_metrics
from squeezelab.inference import evaluate
from squeezelab.weights import package_weights
from squeezelab.weights.registry import WEIGHTS_DIR

SCRIPT = "benchmarks/train_codecs.sh"
MACHINE = "AMD EPYC family 25 model 1 (Zen 3), 2 cores, fp32, one thread per run"
TRAINED_ON = (
    "CIFAR-10 training set (the shared JPEGs): 45,000 images; the 5,000 of validation_split 0.1, seed 0, held out"
    " and never trained on (every run's best epoch is its last, so they chose nothing either)"
)


def _history(run: Path) -> tuple[float, int]:
    epochs = read_metrics(run)
    return sum(epoch["seconds"] for epoch in epochs), len(epochs)


def main(model: str, default: bool) -> None:
    base_seconds, base_epochs = _history(Path(f"runs/{model}-q2"))
    for quality in (1, 2, 3, 4):  # the lambdas are train_codecs.sh's, read back from each run's config
        run = Path(f"runs/{model}-q{quality}")
        rate_lambda = json.loads((run / "config.json").read_text())["rate_lambda"]
        seconds, epochs = _history(run)
        if quality != 2:  # fine-tuned from q2: its training counts too
            seconds, epochs = seconds + base_seconds, epochs + base_epochs
        sqz, spec = f"runs/compress-{model}-q{quality}/model.sqz", f"{model}:q{quality}"
        result = evaluate(sqz, split="val")
        card = package_weights(
            sqz,
            WEIGHTS_DIR,
            f"q{quality}",
            run=run,
            default=default and quality == 2,
            trained_on=TRAINED_ON,
            metrics={f"val_{key}": round(result[key], 5) for key in ("mse", "bpp", "psnr", "ssim")},
            metrics_command=f"squeezelab evaluate {spec} --split val --json",
            recipe=[f"{SCRIPT} {model} train 4", f"{SCRIPT} {model} compress"],
            training={"seconds": round(seconds), "epochs": epochs, "date": "2026-12-07", "machine": MACHINE},
            notes=f"rate-distortion lambda {rate_lambda}; Deep Compression: 7-bit shared weights, ans-coded;"
            " val_bpp is the entropy model's estimate without the file header (codec eval measures the files)",
        )
        print(card, result["psnr"], result["bpp"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--default", action="store_true", help="mark q2 as the default codec's weights")
    args = parser.parse_args()
    main(args.model, args.default)
