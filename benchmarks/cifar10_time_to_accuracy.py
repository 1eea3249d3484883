"""Held-out CIFAR-10 accuracy against wall time: the `fast-cifar10` preset and the source material's recipe.

    python benchmarks/cifar10_time_to_accuracy.py --data folder:../shared/data/cifar10/cifar10-train-jpg.tar
    torchrun --nproc_per_node 2 benchmarks/cifar10_time_to_accuracy.py      # both recipes in 2 processes

Runs `fast-cifar10` and then `seed-cifar10` through `fit()`, one after the other, each into its own run
directory under ``--out-dir``, and writes there ``curves.json`` (per epoch: wall seconds, held-out top-1)
and ``time_to_accuracy.png`` (both curves in one panel, with the 90% and 92% targets). Wall seconds count
training and the per-epoch validation, not the one-off decoding of the data (cached after the first run);
``train_seconds`` count the training steps alone, as airbench's timings do.
Validation is the seeded 10% of the training set that each run holds out; the official test split is never
used. The preset trains for a time budget (30 minutes of training, its schedule keyed to the time spent);
``--fast-max-time`` gives it another budget (the longer setting), ``--fast-epochs`` keys it to a number of
epochs instead, ``--cutout`` adds cutout to it, ``--swa-share`` (and ``--swa-lr``) stochastic weight averaging
over the last share of the run, and ``--arg KEY=VALUE`` changes one of its model options (as
``squeezelab train --arg`` does, e.g. ``--arg stages=2,4``). ``--val-every N`` validates it every N epochs and after
the last, which leaves more of a long run's wall time to training (a validation costs about half of a
low-resolution epoch), for a coarser curve. A run longer than one sitting continues with
``--resume``: the same command and ``--out-dir`` pick the runs up from their last finished epochs, and the
curves count the time of both.
Under ``torchrun`` both recipes train with DistributedDataParallel over the processes (same global batch), and
only rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from _common import machine

from squeezelab.cli import parse_model_args
from squeezelab.data import load_dataset
from squeezelab.errors import SqueezelabError
from squeezelab.report.plots import plot_histories
from squeezelab.train import fit, preset, resolve_device
from squeezelab.train.distributed import current_group, finish_distributed, init_distributed

TARGETS = (0.90, 0.92)


def run(name: str, run_dir: Path, splits, resume: bool, **overrides) -> list[dict]:
    cfg = preset(name).updated(data=splits.spec, **overrides)
    start = time.perf_counter()
    history = fit(cfg.run.model, splits, cfg, run_dir=run_dir, resume=resume, verbose=2)
    total = time.perf_counter() - start
    wall = 0.0
    curve = []
    for epoch in history.epochs:
        wall += epoch["seconds"] + epoch.get("val_seconds", 0.0)
        if "val_acc1" not in epoch:  # not validated (--val-every)
            continue
        curve.append(
            {
                "epoch": epoch["epoch"],
                "seconds": round(wall, 1),
                "train_seconds": round(epoch["time"], 1),
                "val_acc1": epoch["val_acc1"],
            }
        )
    best = max(point["val_acc1"] for point in curve)
    if current_group().is_main:
        print(f"{name}: {len(history.epochs)} epochs, {total:.0f} s wall, best held-out top-1 {best:.4f}")
    return curve


def time_to(curve: list[dict], target: float, clock: str = "seconds") -> float | None:
    return next((point[clock] for point in curve if point["val_acc1"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="folder:../shared/data/cifar10/cifar10-train-jpg.tar")
    parser.add_argument("--out-dir", default="runs/cifar10-time-to-accuracy")
    parser.add_argument(
        "--fast-max-time", type=float, help="seconds of training of fast-cifar10 (default: the preset's)"
    )
    parser.add_argument("--fast-epochs", type=int, help="key fast-cifar10's schedule to this many epochs, not to time")
    parser.add_argument("--cutout", type=int, help="add cutout of this size to fast-cifar10")
    parser.add_argument("--swa-share", type=float, help="average the weights over this last share of fast-cifar10")
    parser.add_argument("--swa-lr", type=float, help="the constant learning rate of that phase (default: lr / 4)")
    parser.add_argument(
        "--teachers", nargs="+", metavar="RUN", help="distil fast-cifar10 from these trained runs or checkpoints"
    )
    parser.add_argument(
        "--arg", action="append", default=[], metavar="KEY=VALUE", help="change a model option of fast-cifar10"
    )
    parser.add_argument(
        "--val-every", type=int, help="validate fast-cifar10 every N epochs and after the last (default: every)"
    )
    parser.add_argument("--skip-seed", action="store_true", help="run the preset only (e.g. a longer setting)")
    parser.add_argument("--resume", action="store_true", help="continue the runs in --out-dir from their last epochs")
    args = parser.parse_args()
    if args.fast_max_time and args.fast_epochs:
        parser.error("--fast-max-time and --fast-epochs are two ways to size the run: choose one")

    out_dir = Path(args.out_dir)
    fast_overrides, fast_dir = {}, "fast-cifar10"
    if args.fast_max_time:
        fast_overrides["max_time"] = args.fast_max_time
        fast_dir += f"-max_time{args.fast_max_time:g}"
    if args.fast_epochs:
        fast_overrides.update(epochs=args.fast_epochs, max_time=None, time_schedule=False)
        fast_dir += f"-epochs{args.fast_epochs}"
    if args.cutout:
        fast_overrides["cutout"] = args.cutout
        fast_dir += f"-cutout{args.cutout}"
    for option in ("swa_share", "swa_lr"):
        value = getattr(args, option)
        if value is not None:
            fast_overrides[option] = value
            fast_dir += f"-{option}{value:g}"
    if args.teachers:
        fast_overrides["teachers"] = tuple(args.teachers)
        fast_dir += f"-teachers{len(args.teachers)}"
    if args.val_every:
        fast_overrides["val_every"] = args.val_every
    if args.arg:
        try:
            model_changes = parse_model_args(args.arg)
        except SqueezelabError as exc:
            parser.error(str(exc))
        fast_overrides["model_kwargs"] = {**preset("fast-cifar10").run.model_kwargs, **model_changes}
        for key, value in model_changes.items():
            fast_dir += f"-{key}" + "".join(ch for ch in str(value) if ch.isalnum() or ch in "._")
    recipes = {"fast-cifar10": (out_dir / fast_dir, fast_overrides)}
    if not args.skip_seed:
        recipes["seed-cifar10"] = (out_dir / "seed-cifar10", {})
    group = init_distributed(resolve_device("auto"))
    # Every process checks before any of them writes, so that none is left waiting for a peer that stopped.
    taken = [str(run_dir) for run_dir, _ in recipes.values() if run_dir.exists()]
    if taken and not args.resume:
        parser.error(f"{', '.join(taken)} exist(s); choose another --out-dir, or continue with --resume")
    if args.resume and len(taken) < len(recipes):
        parser.error(f"--resume continues runs in {out_dir}, but not every recipe has one there")
    if group.world_size > 1:
        dist.barrier()
    if group.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        print(f"{machine()}; {group.world_size} process(es)")
    splits = load_dataset(args.data, progress=False)
    curves = {
        name: run(name, run_dir, splits, args.resume, **overrides) for name, (run_dir, overrides) in recipes.items()
    }
    finish_distributed()
    if not group.is_main:
        return
    summary = {
        "machine": machine(),
        "processes": group.world_size,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "curves": curves,
        "time_to": {name: {f"{t:.0%}": time_to(curve, t) for t in TARGETS} for name, curve in curves.items()},
        "train_time_to": {
            name: {f"{t:.0%}": time_to(curve, t, "train_seconds") for t in TARGETS} for name, curve in curves.items()
        },
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
        walls, trains = summary["time_to"][name], summary["train_time_to"][name]
        reached = ", ".join(
            f"{t} at {walls[t]:.0f} s ({trains[t]:.0f} s of training)" if walls[t] is not None else f"{t} not reached"
            for t in walls
        )
        print(
            f"{name}: best {summary['best'][name]:.2%} after {curve[-1]['seconds']:.0f} s "
            f"({curve[-1]['train_seconds']:.0f} s of training); {reached}"
        )
    print(f"wrote {out_dir / 'curves.json'} and {out_dir / 'time_to_accuracy.png'}")


if __name__ == "__main__":
    main()
