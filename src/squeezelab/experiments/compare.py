"""``squeezelab compare``: squeezed and traditional models trained under one budget, measured side by side.

Every model in a comparison sees the same training data, recipe, epochs and time budget; model selection
uses a validation split of the training data, and the test split (the dataset's own, or a held-out part
never used for training or selection) is touched once, after training. Each model's run directory sits
inside the comparison's; ``results.json`` holds every figure with its unit, and the claims' verdicts.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch

from squeezelab.checkpoint import load_checkpoint, load_weights
from squeezelab.data import BatchTransform, DataSplits, ImageDataset, load_dataset, split_validation
from squeezelab.errors import ConfigError, SqueezelabError
from squeezelab.experiments.claims import judge
from squeezelab.experiments.measure import (
    CONTRACTION_SAMPLES,
    NOISE_LEVELS,
    PROBE_SAMPLES,
    measure_autoencoder,
    measure_classifier,
)
from squeezelab.io import atomic_write, json_default
from squeezelab.models import Fire, FireUp
from squeezelab.profile import file_bytes, profile_model
from squeezelab.report import plots
from squeezelab.report.plots import plot_curves
from squeezelab.report.render import render_report
from squeezelab.train import (
    TrainConfig,
    create_model_for,
    fit,
    resolve_device,
)

Kind = Literal["autoencoders", "classifiers"]


@dataclass(frozen=True)
class Contender:
    """One entry of a comparison: a registry model, its options, and training options of its own."""

    label: str
    model: str
    model_kwargs: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


# The penalty is a sum over code units and input pixels while the MSE is a mean over pixels, so the weight is
# small; 1e-4, measured on MNIST at code size 32, cuts the encoder's Jacobian norm about 10x at no cost in
# clean error (0.01 flattened contractive_ae onto the mean image).
CONTRACTIVE_WEIGHT = 1e-4
CONTENDERS: dict[Kind, dict[str, Contender]] = {
    "autoencoders": {
        c.label: c
        for c in (
            Contender("dense_ae", "dense_ae"),
            Contender("conv_ae", "conv_ae"),
            Contender("squeeze_ae", "squeeze_ae"),
            # dense_ae's decoder, so the two differ only in the encoder and the penalty
            Contender(
                "contractive_ae",
                "contractive_ae",
                {"decoder_sizes": (64,)},
                train={"contractive_weight": CONTRACTIVE_WEIGHT},
            ),
            Contender(
                "squeeze_ae+contractive",
                "squeeze_ae",
                train={"contractive_weight": CONTRACTIVE_WEIGHT, "n_projections": 1},
            ),
        )
    },
    "classifiers": {
        c.label: c
        for c in (
            Contender("squeezenet_cifar", "squeezenet_cifar"),
            Contender("squeezenet_cifar+simple", "squeezenet_cifar", {"bypass": "simple"}),
            Contender("squeezenet_cifar+5x5", "squeezenet_cifar", {"expand_5x5": True}),
            Contender("alexnet_cifar", "alexnet_cifar"),
        )
    },
}

# The design-space sweep (--sweep): squeeze_ae with one of the SqueezeNet paper's levers moved at a time, beside
# the traditional models, so the report can draw the front of size and compute against error.
SWEEP: tuple[Contender, ...] = (
    Contender("squeeze_ae[sr=0.5]", "squeeze_ae", {"squeeze_ratio": 0.5}),
    Contender("squeeze_ae[3x3=0.75]", "squeeze_ae", {"pct_3x3": 0.75}),
    Contender("squeeze_ae[code maps=8,12]", "squeeze_ae", {"encoder_channels": 8, "decoder_channels": 12}),
    Contender("squeeze_ae[no unfold expand]", "squeeze_ae", {"unfold_expand": 0}),
    Contender("squeeze_ae[no batch norm]", "squeeze_ae", {"batch_norm": False}),
)
SWEEP_BASELINES = ("dense_ae", "conv_ae", "squeeze_ae")

# One recipe per kind, the same for every model in it.
RECIPES: dict[Kind, TrainConfig] = {
    "autoencoders": TrainConfig(
        optimizer="adam", lr=2e-3, schedule="cosine", batch_size=128, loss="mse", normalize="none"
    ),
    "classifiers": TrainConfig(
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        schedule="onecycle",
        batch_size=128,
        crop_padding=4,
        flip=True,
        normalize="dataset",
    ),
}


@dataclass(frozen=True)
class CompareConfig:
    kind: Kind
    data: str
    models: tuple[str, ...] = ()  # labels from CONTENDERS; empty: all of the kind
    epochs: int = 20
    max_time: float | None = None  # seconds of training for the whole comparison, all models together
    code_size: int = 32
    test_fraction: float = 0.1
    validation_split: float = 0.1
    seed: int = 0
    image_size: int | None = None
    grayscale: bool | None = None
    device: str = "auto"
    sweep: bool = False  # autoencoders: squeeze_ae's design-space grid (SWEEP) beside dense_ae and conv_ae
    weights: str | None = None  # measure each model's shipped weights of this name instead of training (shipped.py)

    def contenders(self) -> list[Contender]:
        known = CONTENDERS[self.kind]
        if self.sweep:
            if self.kind != "autoencoders" or self.models:
                raise ConfigError("--sweep is for compare autoencoders and picks its own models: drop --models")
            return [known[label] for label in SWEEP_BASELINES] + list(SWEEP)
        unknown = [m for m in self.models if m not in known]
        if unknown:
            raise SqueezelabError(
                f"unknown model(s) for compare {self.kind}: {', '.join(unknown)}; choose from {', '.join(known)}"
            )
        return [known[m] for m in (self.models or tuple(known))]


# Each preset's budget; the time limit is for the whole comparison. Timings: the shared MNIST set on two CPU cores.
PRESETS: dict[str, dict] = {
    # CompareConfig's defaults: every model trained until the cosine schedule ends, no time limit.
    "default": {},
    # A first look: 3 epochs each, at most 8 minutes of training in all (all five models: 4 min 47 s end to end).
    "quick": {"epochs": 3, "max_time": 480.0},
    # The design-space grid: 8 models, 8 epochs each, at most 25 minutes of training (measured: 17 min 31 s).
    "sweep": {"epochs": 8, "max_time": 1500.0, "sweep": True},
}


def run_comparison(cfg: CompareConfig, out: Path, overwrite: bool = False, verbose: int = 1) -> dict:
    """Train, measure and report every contender; writes results.json, report.md, report.html and plots/."""
    started = time.perf_counter()
    contenders = cfg.contenders()
    checks = [
        (cfg.epochs < 1, f"--epochs must be at least 1, got {cfg.epochs}"),
        # ``not x > 0`` so that NaN, which compares false with everything, is refused too.
        (
            cfg.max_time is not None and not 0 < cfg.max_time < math.inf,
            f"--max-time must be positive, got {cfg.max_time}",
        ),
        (cfg.code_size < 1, f"--code-size must be at least 1, got {cfg.code_size}"),
        (cfg.image_size is not None and cfg.image_size < 1, f"--image-size must be at least 1, got {cfg.image_size}"),
        (not 0 < cfg.test_fraction < 1, f"test_fraction must be in (0, 1), got {cfg.test_fraction}"),
        (not 0 <= cfg.validation_split < 1, f"validation_split must be in [0, 1), got {cfg.validation_split}"),
    ]
    problems = [message for failed, message in checks if failed]
    if problems:
        raise ConfigError("; ".join(problems))
    prepare_out(out, [c.label for c in contenders], overwrite)
    splits = load_dataset(cfg.data, image_size=cfg.image_size, grayscale=cfg.grayscale, progress=verbose == 1)
    if cfg.kind == "classifiers" and splits.train.labels is None:
        raise SqueezelabError(f"{cfg.data} has no labels: a classifier comparison needs labelled data")
    pool, test, test_source = _test_split(splits, cfg)
    train_splits = DataSplits.from_train(pool, None, splits.spec)
    recipe = RECIPES[cfg.kind].updated(
        epochs=cfg.epochs,
        max_time=cfg.max_time,
        seed=cfg.seed,
        validation_split=cfg.validation_split,
        device=cfg.device,
        data=splits.spec,
        image_size=cfg.image_size,
        grayscale=cfg.grayscale,
    )
    device = resolve_device(cfg.device)
    out.mkdir(parents=True, exist_ok=True)

    # Build and time every model first: a budget too small for one epoch of every model is refused up front.
    models = {}
    for c in contenders:
        torch.manual_seed(cfg.seed)
        kwargs = {"code_size": cfg.code_size, **c.model_kwargs} if cfg.kind == "autoencoders" else c.model_kwargs
        model = create_model_for(c.model, kwargs, pool).to(device)
        models[c.label] = (model, measure_cost(model, c.label, pool))
    if cfg.max_time is not None:
        # Training costs about three forward passes; validation adds a little more.
        epoch_seconds = sum(
            len(pool) * (1 - cfg.validation_split) * 3 / row["throughput"] for _, row in models.values()
        )
        if epoch_seconds > cfg.max_time:
            raise SqueezelabError(
                f"--max-time {cfg.max_time:g} s is too small to train one epoch of every model "
                f"(about {epoch_seconds:.2g} s measured); raise it or use fewer images or models"
            )

    rows, histories, samples = {}, {}, {}
    spent = 0.0  # seconds of training so far: the time budget is the whole comparison's
    for c in contenders:
        model, cost = models[c.label]
        row = {**cost, "epochs_planned": cfg.epochs}
        left = None if cfg.max_time is None else cfg.max_time - spent
        try:
            if left is not None and left <= 0:
                raise SqueezelabError("not trained: the comparison's --max-time was spent on the models before it")
            history = fit(
                model, train_splits, recipe.updated(max_time=left, **c.train), run_dir=out / c.label, verbose=verbose
            )
            spent += history.epochs[-1]["time"]
            plot_curves(history.epochs, out / c.label / "plots" / "curves.png", title=c.label)
            state, meta = load_checkpoint(out / c.label / "best.safetensors")
            load_weights(model, state, str(out / c.label))  # the epoch chosen on validation, not the last
            transform = BatchTransform(tuple(meta["data"]["mean"]), tuple(meta["data"]["std"]))
            measure = measure_autoencoder if cfg.kind == "autoencoders" else measure_classifier
            measured, samples[c.label] = measure(model, transform, pool, test, device, cfg.seed)
            epochs = len(history.epochs)
            cut_short = epochs < cfg.epochs
            row.update(
                status="ok",
                epochs=epochs,
                cut_short=cut_short,
                trained=f"{epochs} of {cfg.epochs}" + (", cut short" if cut_short else ""),
                train_seconds=history.epochs[-1]["time"],
                **measured,
            )
            histories[c.label] = history.epochs
        except (SqueezelabError, RuntimeError) as exc:  # one model failing must not cost the others
            row.update(status="failed", error=str(exc).strip().splitlines()[0])
        rows[c.label] = row
    if cfg.kind == "classifiers" and "alexnet_cifar" in rows:
        for row in rows.values():
            row["param_ratio"] = rows["alexnet_cifar"]["params"] / row["params"]

    results = {
        "title": f"{cfg.kind.capitalize()} on {splits.spec}",
        "kind": cfg.kind,
        "summary": _summary(cfg, recipe),
        "data": {
            "spec": splits.spec,
            "train": len(pool) - round(len(pool) * cfg.validation_split),
            "val": round(len(pool) * cfg.validation_split),
            "test": len(test),
            "test_source": test_source,
            "image_shape": list(pool.images.shape[1:]),
        },
        "machine": {"description": machine_description(), "device": str(device)},
        "budget": {"epochs": cfg.epochs, "max_time_s": cfg.max_time},
        "config": asdict(cfg),
        "recipe": recipe.to_dict(),
    }
    return write_results(results, cfg.kind, out, rows, histories, samples, test, started)


def prepare_out(out: Path, labels: list[str], overwrite: bool) -> None:
    """Refuse to write over an earlier comparison unless ``overwrite``; then clear only what this one writes."""
    if (out / "report.md").exists() and not overwrite:
        raise SqueezelabError(f"{out} already holds a report; pass --overwrite or choose another --out")
    for label in labels:
        if (out / label).exists() and any((out / label).iterdir()):
            if not overwrite:
                raise SqueezelabError(f"{out / label} already holds a run; pass --overwrite or choose another --out")
            for child in (out / label).rglob("*"):
                if child.is_file():
                    child.unlink()


def measure_cost(model: torch.nn.Module, label: str, pool: ImageDataset) -> dict:
    """A row's size, compute and speed columns, and what a claim needs to pick the model's counterpart."""
    profile = profile_model(model, tuple(pool.images.shape[1:]), batch_size=256, warmup=2, repeats=5, name=label)
    return {
        "model": label,
        **_design(model),
        "code_size": getattr(model, "code_size", None),
        "params": profile.params,
        "file_bytes": file_bytes(model),
        "macs": profile.macs,
        "latency_ms": profile.latency_ms,
        "throughput": profile.throughput,
    }


def write_results(
    results: dict, kind: Kind, out: Path, rows: dict, histories: dict, samples: dict, test: ImageDataset, started: float
) -> dict:
    """Add the table, claims, plots and notes to ``results``; write results.json and the rendered report."""
    results.update(
        columns=COLUMNS[kind],
        rows=list(rows.values()),
        claims=[claim.to_dict() for claim in judge(rows)],
        plots=_plots(kind, out, rows, histories, samples, test),
        notes=NOTES[kind],
        seconds=time.perf_counter() - started,
    )
    atomic_write(out / "results.json", json.dumps(results, indent=2, default=json_default))
    render_report(results, out)
    return results


def _design(model: torch.nn.Module) -> dict:
    """What a claim needs to pick a model's counterpart, read from its layers: Fire modules, convolutions."""
    modules = list(model.modules())
    return {
        "design": "squeeze" if any(isinstance(m, (Fire, FireUp)) for m in modules) else "traditional",
        "convolutional": any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in modules),
    }


def machine_description() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def _summary(cfg: CompareConfig, recipe: TrainConfig) -> str:
    budget = f"{cfg.epochs} epochs" + (
        f" within {cfg.max_time:g} s of training for the whole comparison (a model the budget cut short is marked, "
        "and claims about it are not measured)"
        if cfg.max_time
        else ""
    )
    if cfg.kind == "autoencoders":
        what = (
            f"Autoencoders compressing each image to the same code size ({cfg.code_size} numbers), so every model has "
            "the same compression ratio"
        )
    else:
        what = "SqueezeNet variants against the AlexNet-style baseline"
    optim = recipe.optim
    return (
        f"{what}, each trained from the same seed with one recipe ({optim.optimizer}, lr {optim.lr:g}, batch "
        f"{optim.batch_size}) for {budget}. The checkpoint with the best validation loss is measured on the test "
        "split."
    )


def _column(key: str, label: str, unit: str, fmt: str) -> dict:
    return {"key": key, "label": label, "unit": unit, "format": fmt}


_COST_COLUMNS = [
    _column("params", "parameters", "", "count"),
    _column("file_bytes", "file", "safetensors", "bytes"),
    _column("macs", "MACs", "per image", "si"),
    _column("latency_ms", "latency", "ms, batch 1", "float2"),
    _column("throughput", "throughput", "img/s, batch 256", "count"),
    _column("trained", "epochs", "trained", "text"),
    _column("train_seconds", "training", "s", "float2"),
]
COLUMNS: dict[Kind, list[dict]] = {
    "autoencoders": [
        _column("model", "model", "", "text"),
        *_COST_COLUMNS,
        _column("test_mse", "test MSE", "", "float4"),
        _column("test_psnr", "test PSNR", "dB", "float2"),
        _column("test_ssim", "test SSIM", "", "float4"),
        _column("contraction", "contraction", "mean ||J||_F", "float4"),
        *(_column(f"noisy_mse_{sigma}", f"MSE, noise {sigma}", "vs clean", "float4") for sigma in NOISE_LEVELS),
        _column("probe_acc", "linear probe", "test accuracy", "percent"),
    ],
    "classifiers": [
        _column("model", "model", "", "text"),
        *_COST_COLUMNS[:1],
        _column("param_ratio", "AlexNet / model", "parameters", "ratio"),
        *_COST_COLUMNS[1:],
        _column("test_acc1", "top-1", "test", "percent"),
        _column("test_acc5", "top-5", "test", "percent"),
    ],
}

_COMMON_NOTES = [
    "MACs: multiply-accumulates of one forward pass of one image, counted by torch.utils.flop_counter over "
    "convolutions and matrix products (FLOPs = 2 x MACs).",
    "Latency: median of 5 eval-mode forward passes at batch 1 after warm-up; throughput at batch 256; "
    "training: seconds of training (validation excluded) until the epochs or the time budget ran out.",
]
NOTES: dict[Kind, list[str]] = {
    "autoencoders": [
        *_COMMON_NOTES,
        f"Contraction: the Frobenius norm of the encoder's Jacobian, exact, averaged over {CONTRACTION_SAMPLES:,} "
        "test images; lower means codes that move less when the input moves.",
        "Robustness: Gaussian noise of the given standard deviation is added to the test images (clipped to "
        "[0, 1]); the MSE is of the reconstruction of the noisy image against the clean one.",
        f"Linear probe: a logistic regression on the standardised codes of {PROBE_SAMPLES:,} training images, "
        "scored on the test split: how much class information the code keeps.",
    ],
    "classifiers": [
        *_COMMON_NOTES,
        "AlexNet / model: how many times fewer parameters a model has than alexnet_cifar.",
    ],
}


def _plots(kind: Kind, out: Path, rows: dict, histories: dict, samples: dict, test: ImageDataset) -> list[dict]:
    folder = out / "plots"
    made = []

    def add(title: str, path: Path, caption: str) -> None:
        made.append({"title": title, "path": str(path.relative_to(out)), "caption": caption})

    trained = {label: row for label, row in rows.items() if row.get("status") == "ok"}
    if kind == "autoencoders":
        if samples:
            path = plots.plot_reconstructions(test.images[:8].float() / 255, samples, folder / "reconstructions.png")
            add("Originals and reconstructions", path, "The first eight test images and each model's reconstruction.")
        error_key, error_label = "test_mse", "test MSE"
        points = {label: row for label, row in trained.items() if not row.get("cut_short")}
    else:
        error_key, error_label = "test_error", "test top-1 error"
        points = {label: {**row, "test_error": 1 - row["test_acc1"]} for label, row in trained.items()}
    fronts = {cost: pareto_front(points, cost, error_key) for cost in ("params", "macs")}
    path = plots.plot_pareto(points, error_key, error_label, folder / "pareto.png", fronts=fronts)
    add(
        "Size and compute against error",
        path,
        "Lower left is better: fewer parameters or MACs, lower test error. The line joins the models no other "
        "beats on both axes (the Pareto front); models cut short by the budget are left out.",
    )
    if histories:  # shipped weights come without their training curves
        path = plots.plot_histories(histories, "val_loss", folder / "val_loss.png")
        add("Validation loss", path, "Validation loss after each epoch.")
    if kind == "classifiers" and trained:
        accuracy = {label: row["per_class"] for label, row in trained.items()}
        path = plots.plot_per_class(accuracy, test.classes, folder / "per_class.png")
        add("Per-class accuracy", path, "Test accuracy of each class.")
    return made


def pareto_front(rows: dict[str, dict], cost_key: str, error_key: str) -> list[str]:
    """The models no other model beats on both cost and error, cheapest first."""
    points = {label: (row[cost_key], row[error_key]) for label, row in rows.items() if row.get(error_key) is not None}
    front = [
        label
        for label, (cost, error) in points.items()
        if not any(c <= cost and e <= error and (c, e) != (cost, error) for c, e in points.values())
    ]
    return sorted(front, key=lambda label: points[label])


def _test_split(splits: DataSplits, cfg: CompareConfig) -> tuple[ImageDataset, ImageDataset, str]:
    if splits.test is not None:
        return splits.train, splits.test, "the dataset's own test split"
    pool, test = split_validation(splits.train, cfg.test_fraction, cfg.seed + 1)
    return (
        pool,
        test,
        (
            f"held out: {cfg.test_fraction:.0%} of the training set (seed {cfg.seed + 1}), "
            "never used for training or model selection"
        ),
    )
