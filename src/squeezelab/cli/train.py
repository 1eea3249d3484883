"""``squeezelab train``: train a model into a run directory, or resume one; its flags come from ``TrainConfig``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from squeezelab.checkpoint import read_metrics
from squeezelab.cli.common import add_command, parse_model_args, rank, verbosity
from squeezelab.cli.flags import add_dataclass_flags, given_options
from squeezelab.errors import ConfigError, FileFormatError
from squeezelab.train import TrainConfig, TrainingDiverged, fit, preset
from squeezelab.train.distributed import finish_distributed

# Options taken positionally or by their own flags, not generated from TrainConfig.
_OWN_FLAGS = {"model", "model_kwargs", "data"}
# What a resumed run may change; everything else is fixed by its config.json.
_RESUMABLE = {"epochs", "max_time", "device", "early_stopping", "val_every"}


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "train",
        help="train a model; results go to a run directory",
        description="Train a model on a dataset. The run directory (runs/NAME) gets config.json, metrics.jsonl, "
        "last and best checkpoints (safetensors + JSON) and plots/curves.png. Ctrl-C keeps the last finished "
        "epoch and prints the command that resumes it.",
        examples=[
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
        ],
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
    add_dataclass_flags(p.add_argument_group("training options (override the preset)"), TrainConfig, _OWN_FLAGS)
    p.set_defaults(run=run)


def train_options(args: argparse.Namespace) -> dict:
    """The TrainConfig fields given as flags, flat; ``--max-time none`` gives ``max_time=None``."""
    return given_options(args, TrainConfig, _OWN_FLAGS)


def _resumed_config(args: argparse.Namespace, options: dict) -> tuple[TrainConfig, Path]:
    run_dir = Path(args.resume)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise FileFormatError(f"{run_dir} is not a run directory (no config.json) and cannot be resumed")
    fixed = (
        sorted(set(options) - _RESUMABLE)
        + (["model"] if args.model else [])
        + (["data"] if args.data else [])
        + (["preset"] if args.preset else [])
        + (["arg"] if args.arg else [])
        + (["num_classes"] if args.num_classes is not None else [])
    )
    if fixed:
        raise ConfigError(
            f"a resumed run keeps its configuration; only {', '.join(sorted(_RESUMABLE))} may change, not "
            + ", ".join(fixed)
        )
    return TrainConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8"))).updated(**options), run_dir


def _new_config(args: argparse.Namespace, options: dict) -> tuple[TrainConfig, Path]:
    cfg = preset(args.preset) if args.preset else TrainConfig()
    changes = dict(options)
    if args.model:
        changes["model"] = args.model
        if args.model != cfg.to_dict()["model"]:
            changes["model_kwargs"] = {}
    if args.data:
        changes["data"] = args.data
    extra = parse_model_args(args.arg)
    if args.num_classes is not None:
        if args.num_classes < 1:
            raise ConfigError(f"--num-classes must be >= 1, got {args.num_classes}")
        extra["num_classes"] = args.num_classes
    cfg = cfg.updated(**changes)
    flat = cfg.to_dict()
    cfg = cfg.updated(model_kwargs={**flat["model_kwargs"], **extra})
    name = args.name or f"{args.preset or flat['model']}-{time.strftime('%Y%m%d-%H%M%S')}"
    # One folder inside --out-dir: a separator, '..' or an absolute name would write elsewhere.
    if name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        raise ConfigError(f"--name must be a single folder name without separators or '..', got {name!r}")
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out-dir {out_dir} is a file; give a directory, or one to create")
    run_dir = out_dir / name
    if rank() == 0 and run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir} already holds a run; choose another --name, or --resume {run_dir}")
    return cfg, run_dir


def _draw_curves(run_dir: Path, title: str) -> None:
    """``plots/curves.png`` from the epochs the run logged, after it ended, was interrupted or diverged."""
    if rank() != 0:
        return
    epochs = read_metrics(run_dir)
    if epochs:
        from squeezelab.report.plots import plot_curves  # here: matplotlib is slow to import, most commands skip it

        plot_curves(epochs, run_dir / "plots" / "curves.png", title=title)


def run(args: argparse.Namespace) -> int:
    options = train_options(args)
    cfg, run_dir = _resumed_config(args, options) if args.resume else _new_config(args, options)
    model = cfg.to_dict()["model"]
    try:
        history = fit(model, config=cfg, run_dir=run_dir, resume=bool(args.resume), verbose=verbosity(args))
    except (KeyboardInterrupt, TrainingDiverged):
        _draw_curves(run_dir, model)  # the epochs it finished are worth seeing; a refused run has none of its own
        raise
    _draw_curves(run_dir, model)
    finish_distributed()
    if rank() != 0:
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
