"""``fit``: the Keras-like training call, with run directories, exact resume and honest timing.

The loop works on uint8 images held in memory: each step gathers a batch by index, augments and normalises
it as a whole, and runs one optimizer step; nothing touches single samples in Python. Each epoch's order,
augmentation and dropout come from generators seeded by (seed, epoch), so an interrupted run resumed from
its last checkpoint computes exactly what an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from squeezelab.checkpoint import (
    load_average,
    load_checkpoint,
    load_optimizer_state,
    load_weights,
    open_checkpoint,
    save_checkpoint,
)
from squeezelab.data import BatchTransform, DataSplits, ImageDataset, load_dataset, split_validation
from squeezelab.data.transforms import alternating_flips, flip_where
from squeezelab.errors import SqueezelabError, TrainingDiverged
from squeezelab.io import atomic_write
from squeezelab.models import create_model, model_info
from squeezelab.models.fold import fold_batch_norm, foldable, for_inference
from squeezelab.train.config import TrainConfig
from squeezelab.train.distributed import ProcessGroup, init_distributed, local_rank
from squeezelab.train.host_memory import keep_freed_host_memory
from squeezelab.train.lookahead import Lookahead
from squeezelab.train.tasks import Classification, Distillation, Reconstruction, task_for


@dataclass
class History:
    """Per-epoch metrics, Keras-style: ``history.history["val_loss"]`` is the list over epochs."""

    epochs: list[dict] = field(default_factory=list)
    monitor: str = "val_loss"
    best_epoch: int | None = None
    best_value: float | None = None
    stop_reason: str = "completed"
    run_dir: Path | None = None

    @property
    def history(self) -> dict[str, list]:
        keys = dict.fromkeys(k for epoch in self.epochs for k in epoch)
        return {k: [epoch.get(k) for epoch in self.epochs] for k in keys}


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; an explicit device that is not there is a user error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SqueezelabError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SqueezelabError(f"--device {name}: PyTorch sees no CUDA device here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SqueezelabError(f"--device {name}: MPS is not available here; use --device cpu")
    return device


def autocast_for(cfg: TrainConfig, device: torch.device):
    """The mixed-precision context of a training step: bf16 or fp16 autocast, or none (fp32)."""
    if cfg.bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if cfg.fp16:
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


# A GPU keeps the decoded training split in its own memory when it takes at most this share of it: batches are
# then gathered there without any copy. A larger split stays in pinned host memory and each batch is copied.
DEVICE_DATA_SHARE = 0.25


def data_stays_on_host(nbytes: int, device: torch.device, device_bytes: int | None) -> bool:
    """Whether training data of ``nbytes`` should stay in (pinned) host memory rather than move to ``device``."""
    if device.type == "cpu":
        return False
    return device_bytes is not None and nbytes > DEVICE_DATA_SHARE * device_bytes


def place_data(data: ImageDataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    device_bytes = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None
    if data_stays_on_host(data.images.numel(), device, device_bytes):
        return data.images.pin_memory(), data.labels
    labels = None if data.labels is None else data.labels.to(device)
    return data.images.to(device), labels


def gather_batch(
    images: torch.Tensor, labels: torch.Tensor | None, index: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One batch on ``device``: gathered where the data lives, copied asynchronously from pinned host memory."""
    if images.device == index.device:
        return images[index], None if labels is None else labels[index]
    host_index = index.cpu()
    batch = images[host_index].pin_memory().to(device, non_blocking=True)
    return batch, None if labels is None else labels[host_index].to(device, non_blocking=True)


def higher_is_better(metric: str) -> bool:
    return any(word in metric for word in ("acc", "psnr", "ssim"))


def normalization(cfg: TrainConfig, splits: DataSplits, task) -> tuple[tuple[float, ...], tuple[float, ...]]:
    channels = splits.train.channels
    mode = cfg.normalize
    if mode == "auto":
        mode = "none" if isinstance(task, Reconstruction) else "dataset"
    if mode == "dataset":
        return tuple(splits.mean), tuple(splits.std)
    if mode == "half":
        return (0.5,) * channels, (0.5,) * channels
    return (0.0,) * channels, (1.0,) * channels


def as_splits(data, cfg: TrainConfig, progress: bool) -> DataSplits:
    if isinstance(data, DataSplits):
        return data
    if isinstance(data, ImageDataset):
        return DataSplits.from_train(data)
    if isinstance(data, str):
        return load_dataset(
            data,
            download=cfg.download,
            image_size=cfg.image_size,
            grayscale=cfg.grayscale,
            on_bad_image=cfg.on_bad_image,
            progress=progress,
        )
    raise SqueezelabError(f"fit() takes a dataset spec, ImageDataset or DataSplits, not {type(data).__name__}")


# The usual one-cycle split without an explicit warm-up: 30% of the run up, 70% down.
ONECYCLE_WARMUP_SHARE = 0.3


def _schedule(cfg: TrainConfig, steps_per_epoch: int, share_done: Callable[[], float]):
    """The learning-rate factor of each optimizer step.

    Progress is the share of the epochs' steps taken or, with ``time_schedule``, ``share_done()``: the share of
    ``max_time`` spent or of the epochs' steps taken, whichever is further, so the schedule completes with the
    budget that runs out first. A time-keyed one-cycle keeps its warm-up in steps, where the optimizer's early
    stability lies, and decays to zero as the run ends.
    """
    # With SWA the schedule runs its course in the first (1 - swa_share) of the run, decaying to the averaging
    # phase's constant rate rather than to zero, as in Izmailov et al. (2018).
    main_share = 1 - cfg.swa_share
    swa_factor = swa_lr(cfg) / cfg.lr
    total = max(1, cfg.epochs * steps_per_epoch)
    main_total = max(1, main_share * total)
    warmup = cfg.warmup_epochs * steps_per_epoch
    if cfg.schedule == "onecycle" and not warmup and not cfg.time_schedule:
        warmup = ONECYCLE_WARMUP_SHARE * main_total

    def factor(step: int) -> float:
        if not cfg.swa_share:
            return main_factor(step)
        done = share_done() if cfg.time_schedule else step / total
        if done >= main_share:
            return swa_factor
        # A one-cycle run without warm-up epochs rises for the first 30% of its (main) course.
        rising = cfg.schedule == "onecycle" and not warmup and done / main_share < ONECYCLE_WARMUP_SHARE
        if step < warmup or rising:
            return main_factor(step)
        return swa_factor + (1 - swa_factor) * main_factor(step)

    def main_factor(step: int) -> float:
        if cfg.time_schedule:
            return _time_keyed_factor(cfg.schedule, share_done() / main_share, step, warmup)
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "step":
            return cfg.gamma ** ((step // steps_per_epoch) // cfg.step_size)
        progress = min(1.0, (step - warmup) / max(1.0, main_total - warmup))
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if cfg.schedule == "onecycle":
            return max(0.0, 1 - progress)
        return 1.0

    return factor


def swa_lr(cfg: TrainConfig) -> float:
    return cfg.swa_lr if cfg.swa_lr is not None else cfg.lr / 4


def _time_keyed_factor(schedule: str, done: float, step: int, warmup_steps: float) -> float:
    done = min(1.0, done)
    if schedule == "onecycle" and not warmup_steps:
        return min(done / ONECYCLE_WARMUP_SHARE, (1 - done) / (1 - ONECYCLE_WARMUP_SHARE))
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    if schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * done))
    if schedule == "onecycle":
        return warm * (1 - done)
    return warm


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not cfg.decay_norm_and_bias:
        # Vectors are biases and BN scales/shifts: decaying them pulls activations to zero instead of
        # regularising filters.
        params = [
            {"params": [p for p in params if p.dim() > 1]},
            {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
        ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise SqueezelabError(f"unknown optimizer {cfg.optimizer!r}; use sgd, adam or adamw")


def validate_config(cfg: TrainConfig, task, device: torch.device) -> None:
    problems = []
    if cfg.epochs < 1:
        problems.append(f"epochs must be >= 1, got {cfg.epochs}")
    if cfg.batch_size < 1:
        problems.append(f"batch_size must be >= 1, got {cfg.batch_size}")
    if not 0 <= cfg.validation_split < 1:
        problems.append(f"validation_split must be in [0, 1), got {cfg.validation_split}")
    if cfg.lr <= 0:
        problems.append(f"lr must be positive, got {cfg.lr}")
    if cfg.schedule not in ("none", "step", "cosine", "onecycle"):
        problems.append(f"schedule must be none, step, cosine or onecycle, got {cfg.schedule!r}")
    if cfg.normalize not in ("auto", "dataset", "half", "none"):
        problems.append(f"normalize must be auto, dataset, half or none, got {cfg.normalize!r}")
    if isinstance(task, Classification) and cfg.loss not in ("auto", "cross_entropy"):
        problems.append(f"a classifier trains with cross_entropy, not {cfg.loss!r}")
    if isinstance(task, Reconstruction) and cfg.loss not in ("auto", "mse", "bce"):
        problems.append(f"an autoencoder trains with mse or bce, not {cfg.loss!r}")
    if isinstance(task, Classification) and cfg.contractive_weight:
        problems.append("contractive_weight applies to autoencoders only")
    if cfg.alternate_flip and not cfg.flip:
        problems.append("alternate_flip says how to flip: add --flip")
    if cfg.low_res is not None and not (cfg.low_res and min(cfg.low_res) >= 1 and 0 <= cfg.low_res_share <= 1):
        problems.append(
            f"low_res sizes must be >= 1 and low_res_share in [0, 1], got {cfg.low_res}, {cfg.low_res_share}"
        )
    if cfg.max_time is not None and cfg.max_time <= 0:
        problems.append(f"max_time must be positive seconds, got {cfg.max_time}")
    if cfg.time_schedule and cfg.max_time is None:
        problems.append(
            "time_schedule follows the time budget: add --max-time SECONDS, or --no-time-schedule to follow --epochs"
        )
    if cfg.time_schedule and cfg.schedule == "step":
        problems.append("time_schedule keys cosine, onecycle or none to the time; the step schedule counts epochs")
    if cfg.time_schedule and cfg.lookahead:
        problems.append("lookahead counts steps to the end of --epochs; it cannot follow time_schedule")
    if not 0 <= cfg.swa_share < 1:
        problems.append(f"swa_share must be in [0, 1) (0: off), got {cfg.swa_share}")
    if cfg.swa_lr is not None and cfg.swa_lr <= 0:
        problems.append(f"swa_lr must be positive, got {cfg.swa_lr}")
    if cfg.swa_share and cfg.lookahead:
        problems.append("choose one of swa_share and lookahead: both average the weights")
    if cfg.teachers and not isinstance(task, Classification):
        problems.append("teachers distil classifiers; an autoencoder learns from its own reconstruction")
    if not 0 <= cfg.distill_weight <= 1:
        problems.append(f"distill_weight must be in [0, 1], got {cfg.distill_weight}")
    if cfg.distill_temperature <= 0:
        problems.append(f"distill_temperature must be positive, got {cfg.distill_temperature}")
    if cfg.val_every < 1:
        problems.append(f"val_every must be >= 1 (1: every epoch), got {cfg.val_every}")
    if cfg.crop_padding < 0:
        problems.append(f"crop_padding must be >= 0 (0: off), got {cfg.crop_padding}")
    if cfg.crop_padding_mode not in ("zeros", "reflect"):
        problems.append(f"crop_padding_mode must be zeros or reflect, got {cfg.crop_padding_mode!r}")
    if cfg.cutout < 0:
        problems.append(f"cutout must be >= 0 (0: off), got {cfg.cutout}")
    if isinstance(task, Reconstruction) and cfg.cutout:
        problems.append("cutout applies to classifiers only: an autoencoder's target is the augmented image")
    if isinstance(task, Reconstruction) and cfg.low_res is not None:
        problems.append("low_res applies to classifiers only: an autoencoder's target is the full-size image")
    if cfg.bf16 and cfg.fp16:
        problems.append("choose one of bf16 and fp16")
    if cfg.fp16 and device.type != "cuda":
        problems.append(f"fp16 autocast needs a CUDA device, not {device.type}; use --bf16 instead")
    if problems:
        raise SqueezelabError("; ".join(problems))


class Trainer:
    """One training run: owns the model, data, optimizer, schedule and the run directory."""

    def __init__(
        self,
        model: nn.Module,
        splits: DataSplits,
        cfg: TrainConfig,
        run_dir: Path | None,
        verbose: int = 1,
        group: ProcessGroup | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.group = group or init_distributed(self.device)
        if self.group.world_size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", local_rank())  # one GPU per process
        if self.device.type == "cpu":
            keep_freed_host_memory()
        self.model = model.to(self.device)
        if cfg.init_from:
            self.start_from(cfg.init_from)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.task = task_for(
            model,
            cfg.loss,
            cfg.label_smoothing,
            cfg.contractive_weight,
            cfg.n_projections,
            cfg.tta_flip,
            cfg.tta_translate,
        )
        validate_config(cfg, self.task, self.device)
        if self.group.world_size > 1 and cfg.contractive_weight:
            # The penalty runs the encoder outside the model's forward, where DDP cannot see its gradients.
            raise SqueezelabError("contractive training runs in one process; start it without torchrun")
        # Training steps go through DDP, which averages gradients over processes; evaluation and checkpoints
        # use the plain module.
        self.train_model = torch.compile(self.model) if cfg.compile else self.model
        if self.group.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.train_model, device_ids=device_ids)
        if isinstance(self.task, Classification) and splits.train.labels is None:
            raise SqueezelabError(f"{cfg.model} is a classifier but {splits.spec} has no labels")
        self.splits = splits
        side = min(splits.train.images.shape[-2:])
        if cfg.crop_padding_mode == "reflect" and cfg.crop_padding >= side:
            raise SqueezelabError(
                f"reflect padding mirrors the image, so crop_padding must be below its side ({side}),"
                f" got {cfg.crop_padding}; use a smaller --crop-padding or --crop-padding-mode zeros"
            )
        if cfg.validation_split > 0:
            self.train_data, self.val_data = split_validation(splits.train, cfg.validation_split, cfg.seed)
        else:
            self.train_data, self.val_data = splits.train, None
        mean, std = normalization(cfg, splits, self.task)
        # An alternating flip depends on the sample and the epoch, so the loop mirrors the batch itself.
        self.transform = BatchTransform(
            mean,
            std,
            cfg.crop_padding,
            cfg.flip and not cfg.alternate_flip,
            cfg.channels_last,
            cutout=cfg.cutout,
            padding_mode=cfg.crop_padding_mode,
        )
        if cfg.teachers:
            teachers = [self.load_teacher(path) for path in cfg.teachers]
            self.task.distillation = Distillation(teachers, cfg.distill_weight, cfg.distill_temperature)
        self.images, self.labels = place_data(self.train_data, self.device)
        self.flip_parity = None
        if cfg.alternate_flip:
            draw = torch.Generator(device=self.device).manual_seed(cfg.seed)
            self.flip_parity = torch.rand(len(self.train_data), generator=draw, device=self.device) < 0.5
        self.steps_per_epoch = math.ceil(len(self.train_data) / cfg.batch_size)
        if cfg.batch_size % self.group.world_size:
            raise SqueezelabError(
                f"batch_size {cfg.batch_size} is not divisible by the {self.group.world_size} processes"
            )
        self.optimizer = make_optimizer(cfg, self.model)
        # fp16 gradients underflow without loss scaling; disabled, the scaler is a pass-through.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.fp16)
        # With time_schedule, how far the run is: updated after every step from rank 0's clock.
        self.share_done = 0.0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _schedule(cfg, self.steps_per_epoch, lambda: self.share_done)
        )
        # Stochastic weight averaging: the average of the weights after each epoch of the constant-rate phase.
        self.average = AveragedModel(self.model) if cfg.swa_share else None
        self.average_stale = False  # its BN statistics are those of older weights
        self.monitor = cfg.monitor if cfg.monitor != "auto" else ("val_loss" if self.val_data else "train_loss")
        self.history = History(monitor=self.monitor, run_dir=run_dir)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = verbose == 1 and self.group.is_main
        self.verbose = verbose if self.group.is_main else 0
        self.start_epoch = 0
        self.trained_seconds = 0.0

    def open_checkpoint(self, role: str, path: str):
        """A checkpoint this run builds on, on its device; its errors name the option that asked for it."""
        try:
            return open_checkpoint(path, self.device)
        except SqueezelabError as exc:
            raise SqueezelabError(f"{role}: {exc}") from None

    def start_from(self, path: str) -> None:
        """Copy the weights of a trained checkpoint of the same model and options into the model (fine-tuning)."""
        ckpt = self.open_checkpoint("init_from", path)
        # Compared as JSON stores them: a checkpoint's tuples come back as lists.
        ours = json.loads(json.dumps(getattr(self.model, "squeezelab_spec", None)))
        if ckpt.meta.get("model") != ours:
            raise SqueezelabError(
                f"init_from {ckpt.path} holds {ckpt.meta.get('model')}, this run trains {ours};"
                " start from a checkpoint of the same model and options"
            )
        self.model.load_state_dict(ckpt.model.state_dict())

    def load_teacher(self, path: str) -> nn.Module:
        """A trained classifier of the same classes, input and normalisation, ready for inference on the batches."""
        ckpt = self.open_checkpoint("teacher", path)
        where = f"teacher {ckpt.path}"
        if ckpt.meta.get("task") != "classification":
            raise SqueezelabError(f"{where} is not a classifier; teachers must classify the same classes")
        if ckpt.classes != self.splits.train.classes:
            raise SqueezelabError(f"{where} knows the classes {ckpt.classes}, this data {self.splits.train.classes}")
        if ckpt.input_shape[0] != self.train_data.channels:
            raise SqueezelabError(
                f"{where} takes {ckpt.input_shape[0]}-channel images, this data has {self.train_data.channels}"
            )
        theirs, ours = (ckpt.transform.mean, ckpt.transform.std), (self.transform.mean, self.transform.std)
        if not torch.allclose(torch.tensor(theirs), torch.tensor(ours)):
            shown = [[round(value, 4) for value in values] for values in (*theirs, *ours)]
            raise SqueezelabError(
                f"{where} was trained on images normalised with mean {shown[0]} and std {shown[1]}, this run uses"
                f" {shown[2]} and {shown[3]}; set --normalize as the teacher's run did"
            )
        teacher = for_inference(ckpt.model).requires_grad_(False)
        if self.cfg.channels_last:
            teacher.to(memory_format=torch.channels_last)
        return teacher

    # -- state on disk -------------------------------------------------------------------------------------

    def meta(self, epoch: int, metrics: dict) -> dict:
        spec = getattr(self.model, "squeezelab_spec", None)
        return {
            "model": spec,
            "task": self.task.kind,
            "data": {
                "spec": self.splits.spec,
                "image_size": self.cfg.image_size,
                "grayscale": self.cfg.grayscale,
                "input_shape": [self.train_data.channels, *self.train_data.image_size],
                "classes": self.splits.train.classes,
                "mean": list(self.transform.mean),
                "std": list(self.transform.std),
            },
            "epoch": epoch,
            "metrics": metrics,
            "best": {"monitor": self.monitor, "epoch": self.history.best_epoch, "value": self.history.best_value},
            "trained_seconds": self.trained_seconds,
            "world_size": self.group.world_size,
            "scheduler": self.scheduler.state_dict(),
            "config": self.cfg.to_dict(),
        }

    def start_run_dir(self) -> None:
        if self.run_dir is None or not self.group.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.run_dir / "config.json", json.dumps(self.cfg.to_dict(), indent=2))

    def resume(self) -> None:
        """Continue from ``run_dir/last``: weights, optimizer, schedule, history and the best so far."""
        stem = self.run_dir / "last"
        if not stem.with_suffix(".safetensors").exists():
            raise SqueezelabError(f"{self.run_dir} has no finished epoch to resume from; start the run again")
        state, meta = load_checkpoint(stem.with_suffix(".safetensors"))
        load_weights(self.model, state, str(stem))
        load_optimizer_state(stem, self.optimizer, meta)
        if self.average is not None and meta.get("average"):
            load_average(stem, self.average, meta)
            self.average_stale = True
        self.scheduler.load_state_dict(meta["scheduler"])
        self.start_epoch = meta["epoch"]
        self.trained_seconds = meta["trained_seconds"]
        if self.cfg.time_schedule:
            self.share_done = self.run_share(self.trained_seconds, self.start_epoch * self.steps_per_epoch)
        self.history.best_epoch, self.history.best_value = meta["best"]["epoch"], meta["best"]["value"]
        trained_with = meta.get("world_size", 1)
        if trained_with != self.group.world_size and self.group.is_main:
            print(
                f"resuming a run trained with {trained_with} process(es) in {self.group.world_size}: the global batch "
                f"stays {self.cfg.batch_size}, each process now takes {self.cfg.batch_size // self.group.world_size}",
                file=sys.stderr,
            )
        metrics_path = self.run_dir / "metrics.jsonl"
        lines = metrics_path.read_text(encoding="utf-8").splitlines() if metrics_path.exists() else []
        # Epochs logged after the checkpoint (a crash between the two writes) are dropped and trained again.
        self.history.epochs = [json.loads(line) for line in lines if line.strip()][: self.start_epoch]
        if self.group.is_main:
            atomic_write(metrics_path, "".join(json.dumps(e) + "\n" for e in self.history.epochs))

    def record(self, epoch: int, metrics: dict, scored: nn.Module) -> None:
        """Log an epoch and checkpoint it; ``scored`` is the model its monitored metric comes from."""
        self.history.epochs.append(metrics)
        if self.run_dir is None or not self.group.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
        average = self.average if self.averaged_epochs else None
        save_checkpoint(self.run_dir / "last", self.model, self.meta(epoch, metrics), self.optimizer, average)
        if self.history.best_epoch == epoch:
            save_checkpoint(self.run_dir / "best", scored, self.meta(epoch, metrics))

    def write_plots(self) -> None:
        if self.run_dir is None or not self.group.is_main or not self.history.epochs:
            return
        from squeezelab.report.plots import plot_curves

        (self.run_dir / "plots").mkdir(exist_ok=True)
        plot_curves(self.history.epochs, self.run_dir / "plots" / "curves.png", title=self.cfg.model)

    # -- the loop ------------------------------------------------------------------------------------------

    @property
    def averaged_epochs(self) -> int:
        """How many epochs the SWA average holds so far (0 without SWA)."""
        return 0 if self.average is None else int(self.average.n_averaged)

    def averaging(self, epoch: int) -> bool:
        """Whether ``epoch`` trains at the constant rate of the SWA phase, so that its weights join the average."""
        if not self.cfg.swa_share:
            return False
        done = self.share_done if self.cfg.time_schedule else epoch / self.cfg.epochs
        return done >= 1 - self.cfg.swa_share

    def scored_model(self) -> nn.Module:
        """The model that validation scores: the SWA average once it holds an epoch, else the trained one."""
        if not self.averaged_epochs:
            return self.model
        if self.average_stale:
            self.recompute_batch_norm(self.average.module)
            self.average_stale = False
        return self.average.module

    @torch.no_grad()
    def recompute_batch_norm(self, model: nn.Module) -> None:
        """BN running statistics for averaged weights: a cumulative average over the (un-augmented) training split.

        Averaged weights never ran, so no running statistics belong to them (Izmailov et al. 2018, section 3.2).
        Each process passes over its shard; the statistics are then pooled over the processes.
        """
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        was_training = model.training
        model.train()
        # In a seeded random order, the same in every process: train-mode BN normalises each batch by its own
        # statistics, so batches must mix the classes as training batches do. In storage order, a split kept
        # class by class (a sorted image folder) gives single-class batches and statistics that fit no input.
        generator = torch.Generator(device=self.device).manual_seed(self.cfg.seed)
        order = torch.randperm(len(self.train_data), generator=generator, device=self.device)
        order = self.group.shard(order)
        local_batch = self.cfg.batch_size // self.group.world_size
        with autocast_for(self.cfg, self.device):
            for begin in range(0, len(order), local_batch):
                images, _ = gather_batch(self.images, self.labels, order[begin : begin + local_batch], self.device)
                model(self.transform(images, train=False))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
        if self.group.world_size > 1:
            for m in norms:
                moments = torch.stack([m.running_mean, m.running_var + m.running_mean**2])
                mean, mean_square = self.group.sum(moments) / self.group.world_size
                m.running_mean.copy_(mean)
                m.running_var.copy_(mean_square - mean**2)

    def evaluate(self, data: ImageDataset, model: nn.Module, batch_size: int | None = None) -> dict[str, float]:
        # Validation runs in the training precision: with bf16 it takes half the time of fp32 (5.3 s -> 2.6 s
        # per epoch of fast-cifar10). `squeezelab evaluate` gives the fp32 figure of a saved checkpoint.
        # A BN model is scored as inference runs it, folded (exact, and 1.2x faster than eval-mode BN).
        if foldable(model):
            model = fold_batch_norm(model)
            if self.cfg.channels_last:
                model.to(memory_format=torch.channels_last)
        with autocast_for(self.cfg, self.device):
            return evaluate_split(
                model, self.task, data, self.transform, batch_size or self.cfg.batch_size, self.device, self.group
            )

    def run_share(self, seconds: float, steps: int) -> float:
        """How far a time-keyed run is: the share of max_time or of the epochs' steps, whichever is further."""
        return max(seconds / self.cfg.max_time, steps / (self.cfg.epochs * self.steps_per_epoch))

    def epoch_transform(self, epoch: int) -> BatchTransform:
        """The batch transform of an epoch: its size follows the progressive-resizing ramp, if any.

        The first ``low_res_share`` of the run (of its epochs, or with ``time_schedule`` of its time budget or
        epochs, whichever runs out first) trains at the low resolutions, an equal part of it at each size in turn.
        """
        cfg = self.cfg
        if not cfg.low_res:
            return self.transform
        sizes = len(cfg.low_res)
        if cfg.time_schedule:
            if self.share_done >= cfg.low_res_share:
                return self.transform
            index = int(self.share_done / cfg.low_res_share * sizes)
        else:
            low_res_epochs = round(cfg.low_res_share * cfg.epochs)
            if epoch >= low_res_epochs:
                return self.transform
            index = epoch * sizes // low_res_epochs
        return replace(self.transform, size=cfg.low_res[index])

    def train_epoch(self, epoch: int) -> tuple[dict[str, float], float, bool]:
        """Train one epoch, or until ``max_time`` is spent; return (train metrics, seconds, ran out of time)."""
        cfg = self.cfg
        seed = cfg.seed * 1_000_003 + epoch
        generator = torch.Generator(device=self.device).manual_seed(seed)
        torch.manual_seed(seed)  # dropout
        n = len(self.train_data)
        order = (
            torch.randperm(n, generator=generator, device=self.device)
            if cfg.shuffle
            else torch.arange(n, device=self.device)
        )
        order = self.group.shard(order, equal=True)
        local_batch = cfg.batch_size // self.group.world_size
        transform = self.epoch_transform(epoch)
        totals = None
        autocast = autocast_for(cfg, self.device)
        self.model.train()
        bar = tqdm(
            total=math.ceil(len(order) / local_batch),
            desc=f"epoch {self.epoch_label(epoch + 1)}",
            unit="batch",
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        # Started afresh every epoch: the weights it starts from are the slow weights of the last one.
        lookahead = None
        if cfg.lookahead:
            total = cfg.epochs * self.steps_per_epoch
            lookahead = Lookahead(self.model, total, step=epoch * self.steps_per_epoch)
        start = time.perf_counter()
        out_of_time = False
        world = self.group.world_size
        global_samples = len(order) * world
        for step, begin in enumerate(range(0, len(order), local_batch)):
            index = order[begin : begin + local_batch]
            images, labels = gather_batch(self.images, self.labels, index, self.device)
            if self.flip_parity is not None:
                images = flip_where(images, alternating_flips(self.flip_parity[index], epoch))
            with autocast:
                loss, stats, _ = self.task.batch(self.train_model, images, labels, transform, True, generator)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                    + (f"the last good checkpoint is {self.run_dir / 'last.safetensors'}; " if self.run_dir else "")
                    + "lower --lr or set --grad-clip"
                )
            self.optimizer.zero_grad(set_to_none=True)
            if world > 1:
                # DDP averages the processes' mean losses; weighting each by its share of this global batch
                # makes that the global batch's mean, also for a last batch that does not split evenly.
                global_batch = min(cfg.batch_size, global_samples - step * cfg.batch_size)
                loss = loss * (len(index) * world / global_batch)
            self.scaler.scale(loss).backward()
            if cfg.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if cfg.max_time is not None:
                spent = self.trained_seconds + self.group.main_value(time.perf_counter() - start, self.device)
                out_of_time = spent >= cfg.max_time
                if cfg.time_schedule:
                    self.share_done = self.run_share(spent, epoch * self.steps_per_epoch + step + 1)
            self.scheduler.step()
            if lookahead is not None:
                lookahead.after_step()
            totals = stats if totals is None else totals + stats
            if self.progress:
                bar.update()
                if step % 10 == 0:  # summarising syncs with the device, so not on every step
                    running = self.task.summarize(totals)
                    shown = {k: f"{v:.4g}" for k, v in running.items() if k in ("loss", "acc1", "psnr")}
                    bar.set_postfix(**shown, img_s=f"{totals[-1].item() / (time.perf_counter() - start):.0f}")
            if out_of_time:
                break
        if lookahead is not None:
            lookahead.sync()
        bar.close()
        # Rank 0's seconds, so that every process's trained_seconds (and what it decides from them) is the same.
        seconds = self.group.main_value(time.perf_counter() - start, self.device)
        totals = self.group.sum(totals)
        metrics = self.task.summarize(totals)
        metrics["images_per_s"] = totals[-1].item() / seconds
        return metrics, seconds, out_of_time

    def improved(self, value: float) -> bool:
        best = self.history.best_value
        if best is None or not math.isfinite(best):
            return True
        return value > best if higher_is_better(self.monitor) else value < best

    def run(self) -> History:
        cfg = self.cfg
        patience = 0
        epoch = self.start_epoch
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                if cfg.max_time is not None and self.trained_seconds >= cfg.max_time:
                    self.history.stop_reason = "max_time"  # a resumed run whose budget was already spent
                    break
                averaging = self.averaging(epoch)
                train_metrics, seconds, out_of_time = self.train_epoch(epoch)
                self.trained_seconds += seconds
                if averaging:
                    self.average.update_parameters(self.model)
                    self.average_stale = True
                images_per_s = train_metrics.pop("images_per_s")
                metrics = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in train_metrics.items()}}
                last = out_of_time or epoch + 1 == cfg.epochs
                validated = self.val_data is not None and ((epoch + 1) % cfg.val_every == 0 or last)
                scored = self.model
                if validated:
                    val_start = time.perf_counter()
                    scored = self.scored_model()  # recomputing an average's BN statistics counts as validation
                    metrics.update({f"val_{k}": v for k, v in self.evaluate(self.val_data, scored).items()})
                    metrics["val_seconds"] = time.perf_counter() - val_start
                if self.averaged_epochs:
                    metrics["swa_epochs"] = self.averaged_epochs
                metrics.update(
                    {
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "seconds": seconds,
                        "images_per_s": images_per_s,
                        "time": self.trained_seconds,
                    }
                )
                # Between validations a val_ monitor has nothing to compare; patience waits for the next one.
                if validated or not (self.monitor.startswith("val_") and self.val_data is not None):
                    if self.monitor not in metrics:
                        raise SqueezelabError(
                            f"monitor {self.monitor!r} is not a metric; choose from {', '.join(sorted(metrics))}"
                        )
                    if self.improved(metrics[self.monitor]):
                        self.history.best_epoch, self.history.best_value = epoch + 1, metrics[self.monitor]
                        patience = 0
                    else:
                        patience += 1
                self.record(epoch + 1, metrics, scored if self.monitor.startswith("val_") else self.model)
                self.log(metrics)
                if out_of_time:
                    self.history.stop_reason = "max_time"
                    break
                if cfg.early_stopping is not None and patience >= cfg.early_stopping:
                    self.history.stop_reason = "early_stopping"
                    break
        except KeyboardInterrupt:
            self.history.stop_reason = "interrupted"
            if self.group.is_main:
                kept = (
                    f"the checkpoint of epoch {len(self.history.epochs)} is kept"
                    if self.history.epochs
                    else ("no epoch had finished, nothing to resume")
                )
                print(f"\ninterrupted in epoch {epoch + 1}; {kept}", file=sys.stderr)
                if self.run_dir is not None and self.history.epochs:
                    print(f"resume with: squeezelab train --resume {self.run_dir}", file=sys.stderr)
            raise
        finally:
            self.write_plots()
        if self.averaged_epochs:
            self.adopt_average()
        return self.history

    def adopt_average(self) -> None:
        """End of an SWA run: the model takes the average's weights and BN statistics, kept as ``swa``."""
        self.model.load_state_dict(self.scored_model().state_dict())
        if self.run_dir is not None and self.group.is_main and self.history.epochs:
            last = self.history.epochs[-1]
            save_checkpoint(self.run_dir / "swa", self.model, self.meta(last["epoch"], last))

    def log(self, metrics: dict) -> None:
        if not self.verbose:
            return
        shown = {k: v for k, v in metrics.items() if k not in ("epoch", "time", "val_seconds") and v is not None}
        text = "  ".join(f"{k} {v:.4g}" for k, v in shown.items())
        tqdm.write(f"epoch {self.epoch_label(metrics['epoch'])}  {text}", file=sys.stderr)

    def epoch_label(self, number: int) -> str:
        # A time-keyed run ends when its time or its epochs run out, mostly the time on a CPU.
        if self.cfg.time_schedule:
            return f"{number} ({self.share_done:.0%} of {self.cfg.max_time:g} s or {self.cfg.epochs} epochs)"
        return f"{number}/{self.cfg.epochs}"


def evaluate_split(
    model: nn.Module,
    task,
    data: ImageDataset,
    transform: BatchTransform,
    batch_size: int,
    device: torch.device,
    group: ProcessGroup | None = None,
    outputs: list[torch.Tensor] | None = None,
) -> dict[str, float]:
    """Metrics of a model on a whole split, in eval mode, without augmentation.

    With an ``outputs`` list, each batch's outputs (logits or reconstructions) are appended to it on the CPU,
    so a caller that needs them (a confusion matrix, SSIM) runs the model once.
    """
    group = group or ProcessGroup()
    was_training = model.training
    model.eval()
    totals = None
    order = group.shard(torch.arange(len(data)))
    try:
        with torch.no_grad():
            for begin in range(0, len(order), batch_size):
                index = order[begin : begin + batch_size]
                labels = None if data.labels is None else data.labels[index].to(device)
                _, stats, out = task.batch(model, data.images[index].to(device), labels, transform, False)
                totals = stats if totals is None else totals + stats
                if outputs is not None:
                    outputs.append(out.float().cpu())
    finally:
        model.train(was_training)
    return task.summarize(group.sum(totals))


def create_model_for(name: str, kwargs: dict, data: ImageDataset) -> nn.Module:
    """Build a registered model shaped for ``data``: its channels, image size and class count, unless given."""
    info = model_info(name)
    fitted = {"in_chans": data.channels}
    if info.kind == "classifier":
        fitted["num_classes"] = max(len(data.classes), 1)
    else:
        fitted["img_size"] = list(data.image_size)
    return create_model(name, **{**fitted, **kwargs})


def fit(
    model: nn.Module | str,
    data: str | DataSplits | ImageDataset | None = None,
    config: TrainConfig | None = None,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    verbose: int = 1,
    **options,
) -> History:
    """Train ``model`` on ``data`` and return its per-epoch metrics.

    ``fit(model, "mnist:data/mnist", epochs=50, batch_size=256, validation_split=0.1, optimizer="adam")``:
    keyword options are ``TrainConfig`` fields and override ``config``. With ``run_dir`` the run writes
    ``config.json``, ``metrics.jsonl``, ``last``/``best`` checkpoints and ``plots/``; ``resume=True``
    continues the run in ``run_dir`` from its last checkpoint. ``verbose``, as in Keras: 0 silent, 1 a
    progress bar and a line per epoch, 2 a line per epoch. With ``swa_share`` the model ends holding the
    average of the weights (also written as ``swa.safetensors``); ``last`` keeps the trained weights to resume.
    """
    try:
        cfg = (config or TrainConfig()).updated(**options)
    except TypeError as exc:
        raise SqueezelabError(f"unknown training option: {exc}") from None
    if resume and run_dir is None:
        raise SqueezelabError("resume=True needs the run_dir to resume")
    splits = as_splits(cfg.data if data is None else data, cfg, progress=verbose == 1)
    if isinstance(model, str):
        torch.manual_seed(cfg.seed)
        model = create_model_for(model, cfg.model_kwargs, splits.train)
    spec = getattr(model, "squeezelab_spec", None)
    if spec is not None:
        cfg = cfg.updated(model=spec["name"], model_kwargs=spec["kwargs"])
    trainer = Trainer(model, splits, cfg, Path(run_dir) if run_dir is not None else None, verbose)
    if resume:
        trainer.resume()
    trainer.start_run_dir()  # on resume too: config.json then records the epochs or budget it was extended to
    return trainer.run()
