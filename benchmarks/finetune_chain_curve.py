"""Held-out top-1 of a run and the runs fine-tuned from it (``--init-from``), end to end against training time.

    python benchmarks/finetune_chain_curve.py runs/long-reflect/fast-cifar10-max_time4500-cutout8 \
        runs/ft4-6300/fast-cifar10-ft4 runs/ft4b-6600/fast-cifar10-ft4b --out docs/benchmarks/cifar10_finetune_chain.png

Each run's ``metrics.jsonl`` gives its validated epochs; a run's clock starts where the one before it ended, so
the x axis is the training seconds of the whole chain (the teachers' own training is not counted). Draws one
curve per run with the 90% and 92% targets and prints the last validated epoch of each.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cifar10_time_to_accuracy import TARGETS

from squeezelab.report.plots import plot_histories


def validated_epochs(run: Path) -> list[dict]:
    with open(run / "metrics.jsonl") as f:
        return [row for row in map(json.loads, f) if "val_acc1" in row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories, the first trained from scratch")
    parser.add_argument("--out", type=Path, default=Path("finetune_chain.png"))
    args = parser.parse_args()
    curves, start = {}, 0.0
    for run in args.runs:
        rows = validated_epochs(run)
        curves[run.name] = [{"train_seconds": start + row["time"], "val_acc1": row["val_acc1"]} for row in rows]
        start += rows[-1]["time"]
        seconds, accuracy = start, rows[-1]["val_acc1"]
        print(f"{run}: epoch {rows[-1]['epoch']}, {seconds:,.0f} s of training in all, {accuracy:.2%} held-out")
    plot_histories(
        curves,
        "val_acc1",
        args.out,
        title="CIFAR-10 held-out top-1, a run and its fine-tunes",
        x="train_seconds",
        targets=TARGETS,
    )
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
