"""Held-out CIFAR-10 accuracy against wall time: the `fast-cifar10` preset and the source material's recipe.

    python benchmarks/cifar10_time_to_accuracy.py --data folder:../shared/data/cifar10/cifar10-train-jpg.tar

Runs `fast-cifar10` and then `seed-cifar10` through `fit()`, one after the other, each into its own run
directory under ``--out-dir``, and writes there ``curves.json`` (per epoch: wall seconds, held-out top-1)
and ``time_to_accuracy.png`` (both curves in one panel, with the 90% and 92% targets). Wall seconds count
training and the per-epoch validation, not the one-off decoding of the data (cached after the first run).
Validation is the seeded 10% of the training set that each run holds out; the official test split is never
used. ``--fast-epochs`` gives the longer setting of the preset (its one-cycle schedule stretches to fit).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from _common import machine

from squeezelab.data import load_dataset
from squeezelab.report.plots import plot_histories
from squeezelab.train import fit, preset

TARGETS = (0.90, 0.92)


def run(name: str, splits, out_dir: Path, **overrides) -> list[dict]:
    cfg = preset(name).updated(data=splits.spec, **overrides)
    run_dir = out_dir / (name if not overrides else name + "-" + "-".join(f"{k}{v}" for k, v in overrides.items()))
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists; choose another --out-dir")
    start = time.perf_counter()
    history = fit(cfg.model, splits, cfg, run_dir=run_dir, verbose=2)
    total = time.perf_counter() - start
    wall = 0.0
    curve = []
    for epoch in history.epochs:
        wall += epoch["seconds"] + epoch.get("val_seconds", 0.0)
        curve.append({"epoch": epoch["epoch"], "seconds": round(wall, 1), "val_acc1": epoch["val_acc1"]})
    best = max(point["val_acc1"] for point in curve)
    print(f"{name}: {len(curve)} epochs, {total:.0f} s wall, best held-out top-1 {best:.4f}")
    return curve


def time_to(curve: list[dict], target: float) -> float | None:
    return next((point["seconds"] for point in curve if point["val_acc1"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="folder:../shared/data/cifar10/cifar10-train-jpg.tar")
    parser.add_argument("--out-dir", default="runs/cifar10-time-to-accuracy")
    parser.add_argument("--fast-epochs", type=int, help="epochs of fast-cifar10 (default: the preset's)")
    parser.add_argument("--skip-seed", action="store_true", help="run the preset only (e.g. a longer setting)")
    args = parser.parse_args()

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(machine())
    splits = load_dataset(args.data, progress=False)
    fast_overrides = {"epochs": args.fast_epochs} if args.fast_epochs else {}
    curves = {"fast-cifar10": run("fast-cifar10", splits, out_dir, **fast_overrides)}
    if not args.skip_seed:
        curves["seed-cifar10"] = run("seed-cifar10", splits, out_dir)
    summary = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "curves": curves,
        "time_to": {name: {f"{t:.0%}": time_to(curve, t) for t in TARGETS} for name, curve in curves.items()},
        "best": {name: max(p["val_acc1"] for p in curve) for name, curve in curves.items()},
    }
    (out_dir / "curves.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    plot_histories(
        curves,
        "val_acc1",
        out_dir / "time_to_accuracy.png",
        title="CIFAR-10 held-out top-1 against wall time",
        x="seconds",
        targets=TARGETS,
    )
    for name, curve in curves.items():
        reached = ", ".join(
            f"{t:.0%} at {s:.0f} s" if s is not None else f"{t:.0%} not reached"
            for t, s in ((t, time_to(curve, t)) for t in TARGETS)
        )
        print(f"{name}: best {summary['best'][name]:.2%} after {curve[-1]['seconds']:.0f} s; {reached}")
    print(f"wrote {out_dir / 'curves.json'} and {out_dir / 'time_to_accuracy.png'}")


if __name__ == "__main__":
    main()
