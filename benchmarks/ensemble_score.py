"""Held-out top-1 of trained classifiers and of their ensemble: how good a set of teachers is to distil from.

    python benchmarks/ensemble_score.py runs/long-reflect/fast-cifar10-max_time4500-cutout8 \
        runs/c12-4500/fast-cifar10-max_time4500-cutout12 runs/long7200/fast-cifar10-max_time7200-cutout8

Each run is scored as ``squeezelab evaluate RUN --split val`` scores it: its best checkpoint, in fp32, with the
test-time views it validated with. The ensemble averages the models' softmax outputs (``--teachers`` does the
same, softened by its temperature, on the single augmented view a student trains on).
The runs must have held out the same images (the same data, validation share and seed). ``--size 16`` scores
them on the held-out images resized as the 16-pixel epochs of progressive resizing see them.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from squeezelab.data import load_dataset
from squeezelab.inference import _split, open_checkpoint
from squeezelab.models import for_inference
from squeezelab.train import evaluate_split, task_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories or checkpoints of classifiers")
    parser.add_argument("--data", help="the dataset, if not where the runs found it")
    parser.add_argument("--size", type=int, help="score the images resized to this side, as progressive resizing does")
    args = parser.parse_args()
    checkpoints = [open_checkpoint(run) for run in args.runs]
    held_out = {
        (ckpt.meta["data"]["spec"], ckpt.meta["config"]["validation_split"], ckpt.meta["config"]["seed"])
        for ckpt in checkpoints
    }
    if len(held_out) > 1:
        parser.error(f"the runs held out different images (data, validation share, seed): {sorted(held_out)}")
    spec = held_out.pop()[0]
    # The held-out part exactly as `squeezelab evaluate --split val` rebuilds it from a run's seed.
    val = _split(checkpoints[0], load_dataset(args.data or spec, progress=False), "val")
    probabilities = []
    for run, ckpt in zip(args.runs, checkpoints, strict=True):
        config = ckpt.meta["config"]
        task = task_for(ckpt.model, tta_flip=config["tta_flip"], tta_translate=config["tta_translate"])
        outputs: list[torch.Tensor] = []
        transform = replace(ckpt.transform, size=args.size)
        metrics = evaluate_split(
            for_inference(ckpt.model), task, val, transform, 500, torch.device("cpu"), outputs=outputs
        )
        probabilities.append(torch.cat(outputs).softmax(-1))
        print(f"{run}: held-out top-1 {metrics['acc1']:.4f}")
    ensemble = torch.stack(probabilities).mean(0).argmax(-1)
    print(f"ensemble of {len(args.runs)}: held-out top-1 {(ensemble == val.labels).float().mean().item():.4f}")


if __name__ == "__main__":
    main()
