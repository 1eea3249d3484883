"""Score the weight average of a run's last checkpoint as ``fit()`` validates it now.

    python benchmarks/swa_rescore.py runs/swa-4500/fast-cifar10-max_time4500-cutout8-swa_share0.3

Loads ``RUN/last`` with its ``last.average.safetensors`` through the trainer's own resume path, recomputes the
average's BN statistics with the current code and evaluates it on the run's held-out split, in the run's
precision and with its test-time views. For runs whose recorded validations of the average predate a fix to
that recomputation (BN statistics over the class-sorted CIFAR-10 folder in storage order, commit d87dc50).
The run directory is read, and ``metrics.jsonl`` rewritten with the same lines, as ``--resume`` does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from squeezelab.data import load_dataset
from squeezelab.train import TrainConfig, Trainer, create_model_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default="folder:../shared/data/cifar10/cifar10-train-jpg.tar")
    args = parser.parse_args()
    cfg = TrainConfig.from_dict(json.loads((args.run / "config.json").read_text()))
    splits = load_dataset(args.data, progress=False)
    trainer = Trainer(
        create_model_for(cfg.run.model, cfg.run.model_kwargs, splits.train), splits, cfg, args.run, verbose=0
    )
    trainer.resume()
    if not trainer.averaged_epochs:
        parser.error(f"{args.run} holds no weight average")
    scored = trainer.scored_model()
    metrics = trainer.evaluate(trainer.val_data, scored)
    print(f"{args.run}: average of {trainer.averaged_epochs} epochs, held-out top-1 {metrics['acc1']:.4f}")


if __name__ == "__main__":
    main()
