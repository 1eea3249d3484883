"""``squeezelab demo``: squeezed against traditional models on data that ships with scikit-learn.

Small enough to finish in a few minutes on two CPU cores, real enough to show the trade: every figure in the
table is measured in this run (parameters, MACs, file bytes, validation metric, training seconds).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from squeezelab.data import load_dataset, split_validation
from squeezelab.errors import ConfigError, SqueezelabError
from squeezelab.io import atomic_write
from squeezelab.profile import count_macs, count_parameters, file_bytes
from squeezelab.report.plots import plot_bars, plot_curves, plot_reconstructions
from squeezelab.report.text import format_table, human_bytes, human_count
from squeezelab.train import TrainConfig, create_model_for, fit

DATA = "digits"
IMAGE_SIZE = 28
VALIDATION_SPLIT = 0.2
SEED = 0


@dataclass(frozen=True)
class DemoModel:
    name: str
    config: TrainConfig
    label: str = ""


def demo_models(epochs_scale: float = 1.0) -> list[DemoModel]:
    def cfg(model: str, epochs: int, **kw) -> TrainConfig:
        base = TrainConfig(
            model=model,
            data=DATA,
            image_size=IMAGE_SIZE,
            validation_split=VALIDATION_SPLIT,
            batch_size=64,
            optimizer="adam",
            seed=SEED,
        )
        return base.updated(epochs=max(1, round(epochs * epochs_scale)), **kw)

    return [
        DemoModel("dense_ae", cfg("dense_ae", 40, lr=2e-3)),
        DemoModel("squeeze_ae", cfg("squeeze_ae", 40, lr=2e-3)),
        DemoModel("contractive_ae", cfg("contractive_ae", 40, lr=2e-3, contractive_weight=1e-3)),
        DemoModel("squeezenet_cifar", cfg("squeezenet_cifar", 15, lr=1e-3)),
        DemoModel("alexnet_cifar", cfg("alexnet_cifar", 6, lr=1e-4, max_time=60.0)),
    ]


def run_demo(out: Path, epochs_scale: float = 1.0, overwrite: bool = False, verbose: int = 1) -> list[dict]:
    if not 0 < epochs_scale < math.inf:  # written so that NaN is refused too
        raise ConfigError(f"epochs_scale must be a positive number, got {epochs_scale}")
    models = demo_models(epochs_scale)
    report = out / "report.md"
    if report.exists() and not overwrite:
        raise SqueezelabError(f"{out} already holds a demo report; pass --overwrite or choose another --name")
    for m in models:  # only the folders this demo writes are replaced
        if (out / m.name).exists():
            shutil.rmtree(out / m.name)
    out.mkdir(parents=True, exist_ok=True)
    splits = load_dataset(DATA, image_size=IMAGE_SIZE, progress=False)
    # Every model holds out the same validation images (same fraction and seed), so one set of originals serves.
    _, val = split_validation(splits.train, VALIDATION_SPLIT, SEED)
    originals = val.images[:8].float() / 255
    rows, reconstructions = [], {}
    started = time.perf_counter()
    for m in models:
        torch.manual_seed(m.config.run.seed)
        model = create_model_for(m.name, {}, splits.train)
        history = fit(model, splits, m.config, run_dir=out / m.name, verbose=verbose)
        plot_curves(history.epochs, out / m.name / "plots" / "curves.png", title=m.name)
        best = history.epochs[history.best_epoch - 1]
        shape = tuple(splits.train.images.shape[1:])
        row = {
            "model": m.name,
            "kind": "classifier" if "val_acc1" in best else "autoencoder",
            "params": count_parameters(model)[0],
            "macs": count_macs(model, shape),
            "file_bytes": file_bytes(model),
            "epochs": len(history.epochs),
            "train_seconds": history.epochs[-1]["time"],
            "val_acc1": best.get("val_acc1"),
            "val_mse": best.get("val_mse"),
            "val_psnr": best.get("val_psnr"),
        }
        rows.append(row)
        if row["kind"] == "autoencoder":
            model.eval()
            with torch.no_grad():
                reconstructions[m.name] = model(originals)
    plot_reconstructions(
        originals,
        reconstructions,
        out / "plots" / "reconstructions.png",
        title="digits: validation images and reconstructions",
    )
    plot_bars(
        {r["model"]: r["params"] for r in rows},
        out / "plots" / "parameters.png",
        xlabel="parameters",
        title="model size",
        log=True,
    )
    table = _table(rows)
    print(table)
    print(f"\n{time.perf_counter() - started:.0f} s in all; report: {report}")
    atomic_write(report, _markdown(rows, time.perf_counter() - started))
    return rows


def _metric(row: dict) -> str:
    if row["val_acc1"] is not None:
        return f"acc {row['val_acc1']:.3f}"
    return f"MSE {row['val_mse']:.4f} ({row['val_psnr']:.1f} dB)"


def _table(rows: list[dict]) -> str:
    return format_table(
        ["model", "kind", "params", "MACs", "file", "validation", "epochs", "train s"],
        [
            [
                r["model"],
                r["kind"],
                f"{r['params']:,}",
                human_count(r["macs"]),
                human_bytes(r["file_bytes"]),
                _metric(r),
                r["epochs"],
                f"{r['train_seconds']:.1f}",
            ]
            for r in rows
        ],
        right=(2, 3, 4, 6, 7),
    )


def _markdown(rows: list[dict], seconds: float) -> str:
    lines = [
        "# squeezelab demo",
        "",
        f"scikit-learn's 1,797 handwritten digits, resized to {IMAGE_SIZE}x{IMAGE_SIZE}; "
        f"{VALIDATION_SPLIT:.0%} held out for validation (seed {SEED}). "
        f"Measured on {torch.get_num_threads()} CPU threads in {seconds:.0f} s.",
        "",
        "| model | kind | params | MACs | file | validation (best epoch) | epochs | train s |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    lines += [
        f"| {r['model']} | {r['kind']} | {r['params']:,} | {human_count(r['macs'])} | {human_bytes(r['file_bytes'])} "
        f"| {_metric(r)} | {r['epochs']} | {r['train_seconds']:.1f} |"
        for r in rows
    ]
    lines += [
        "",
        "MACs: multiply-accumulates of one forward pass of one image. File: the weights as a safetensors file.",
        "",
        "![reconstructions](plots/reconstructions.png)",
        "",
        "![parameters](plots/parameters.png)",
        "",
        "Each model's run directory holds its config, metrics.jsonl, checkpoints and plots/curves.png.",
        "",
    ]
    return "\n".join(lines)
