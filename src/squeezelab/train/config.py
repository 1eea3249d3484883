"""Typed training configuration, its validation, and the named presets.

A ``TrainConfig`` is eight sections (``run``, ``dataset``, ``optim``, ``sched``, ``augment``, ``objective``,
``compute``, ``evaluation``), each a dataclass of leaf options. Every leaf name is unique over all sections
and is a CLI option of ``squeezelab train`` (``--batch-size`` for ``optim.batch_size``), so the config is
also built, updated and stored by flat name: ``TrainConfig(lr=0.1, epochs=3)``, ``cfg.updated(lr=0.05)``,
``cfg.to_dict()`` (what ``config.json`` and checkpoint sidecars hold) and ``TrainConfig.from_dict``. Code
reads the sections: ``cfg.optim.lr``. A preset is a ``TrainConfig`` whose options the command line may
still override.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from squeezelab.errors import ConfigError

Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["none", "step", "cosine", "onecycle"]
Normalize = Literal["auto", "dataset", "half", "none"]
Loss = Literal["auto", "cross_entropy", "mse", "bce"]


def _opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class RunConfig:
    """What is trained, from which weights, with which seed."""

    model: str = _opt("squeezenet_cifar", "registered model name (see 'squeezelab models')")
    model_kwargs: dict = field(default_factory=dict, metadata={"help": "model options, KEY=VALUE"})
    init_from: str | None = _opt(
        None,
        "start from the weights of this trained run or checkpoint of the same model (fine-tuning); the optimizer,"
        " schedule and epochs start afresh",
    )
    seed: int = _opt(0, "seed for the split, shuffling, augmentation and initialisation")


@dataclass
class DataConfig:
    """Where the images come from, how they are split and normalised."""

    data: str = _opt("digits", "dataset spec: digits, mnist:DIR, fashion-mnist:DIR, cifar10:DIR, folder:DIR|TAR")
    image_size: int | None = _opt(None, "resize images to this square size")
    grayscale: bool | None = _opt(None, "force 1-channel (true) or 3-channel (false) images")
    download: bool = _opt(False, "download MNIST, Fashion-MNIST or CIFAR-10 if missing")
    on_bad_image: Literal["error", "skip"] = _opt("error", "what to do with an unreadable image in a folder")
    validation_split: float = _opt(0.1, "fraction of the training data held out for validation (0 for none)")
    shuffle: bool = _opt(True, "reshuffle the training split every epoch")
    normalize: Normalize = _opt(
        "auto",
        "dataset mean/std, half (0.5/0.5) or none ([0, 1]); auto: none for autoencoders, dataset for classifiers",
    )


@dataclass
class OptimConfig:
    """The optimizer and what each of its steps takes."""

    optimizer: Optimizer = _opt("adam", "optimizer")
    lr: float = _opt(1e-3, "peak learning rate")
    momentum: float = _opt(0.9, "SGD momentum")
    nesterov: bool = _opt(False, "Nesterov momentum (SGD)")
    weight_decay: float = _opt(0.0, "weight decay (decoupled for adamw)")
    decay_norm_and_bias: bool = _opt(True, "apply weight decay to batch-norm and bias parameters too")
    batch_size: int = _opt(256, "samples per optimizer step (global, over all processes)")
    grad_clip: float | None = _opt(None, "clip the gradient norm to this value")
    lookahead: bool = _opt(
        False, "airbench's lookahead: every 5 steps pull the weights towards a slow average, harder as training ends"
    )


@dataclass
class ScheduleConfig:
    """How long the run is and how the learning rate moves over it."""

    epochs: int = _opt(50, "passes over the training split")
    max_time: float | None = _opt(None, "stop after this many seconds of training (validation not counted)")
    time_schedule: bool = _opt(
        False,
        "with --max-time: the learning-rate schedule and the low-resolution share follow the share of --max-time"
        " spent (or of --epochs, if they run out first), so the schedule completes when the time is up, whatever"
        " the machine's speed",
    )
    schedule: Schedule = _opt("none", "learning-rate schedule, applied per step")
    warmup_epochs: float = _opt(0.0, "linear warm-up length in epochs")
    step_size: int = _opt(30, "epochs between decays (step schedule)")
    gamma: float = _opt(0.1, "decay factor (step schedule)")
    swa_share: float = _opt(
        0.0,
        "stochastic weight averaging: train the last share of the run (of its epochs, or with time_schedule of its"
        " time) at the constant rate --swa-lr, average the weights after each of its epochs, and validate and"
        " keep the average, its batch-norm statistics recomputed on the training split (0: off)",
    )
    swa_lr: float | None = _opt(None, "the constant learning rate of the averaging phase", none="a quarter of --lr")


@dataclass
class AugmentConfig:
    """Random changes to the training images, and progressive resizing."""

    crop_padding: int = _opt(0, "random crop with this padding on each side (0: off)")
    crop_padding_mode: Literal["zeros", "reflect"] = _opt(
        "zeros", "what the crop's padding holds: black (zeros) or the mirrored border (reflect)"
    )
    flip: bool = _opt(False, "random horizontal flips")
    alternate_flip: bool = _opt(
        False, "with --flip: mirror a fixed random half of the images in even epochs and the other half in odd ones"
    )
    cutout: int = _opt(
        0, "cutout: blank a random square of this side in each training image, at the dataset mean (0: off)"
    )
    low_res: tuple[int, ...] | None = _opt(
        None,
        "progressive resizing: train the first epochs on images resized to this size, or to these sizes in turn"
        " (e.g. 16,20,24), an equal share of those epochs each; cheaper steps",
    )
    low_res_share: float = _opt(0.6, "with --low-res: the share of the epochs trained at the low resolutions")

    def __post_init__(self) -> None:
        # One size is the common case in Python; a run directory's JSON holds a list.
        if isinstance(self.low_res, int):
            self.low_res = (self.low_res,)
        elif self.low_res is not None:
            self.low_res = tuple(self.low_res)


@dataclass
class ObjectiveConfig:
    """What the loss is made of: the task's own term, its regularisers and the teachers' soft targets."""

    loss: Loss = _opt("auto", "cross_entropy for classifiers, mse or bce for autoencoders")
    label_smoothing: float = _opt(0.0, "label smoothing (classifiers)")
    contractive_weight: float = _opt(0.0, "weight of the encoder Jacobian penalty (autoencoders)")
    n_projections: int = _opt(1, "random projections of the Jacobian estimate (encoders without a closed form)")
    rate_lambda: float = _opt(
        0.01,
        "codecs: the rate-distortion trade-off of the loss lambda * 255^2 * MSE + bits per pixel (higher: better"
        " quality, more bits)",
    )
    teachers: tuple[str, ...] = _opt(
        (),
        "distil from these trained classifiers (run directories or checkpoints): the student also matches their"
        " mean softened prediction on each augmented batch",
    )
    distill_weight: float = _opt(0.9, "with --teachers: the soft term's share of the loss, the labels' the rest")
    distill_temperature: float = _opt(4.0, "with --teachers: the temperature that softens both predictions")

    def __post_init__(self) -> None:
        # One teacher is the common case in Python; a run directory's JSON holds a list.
        if isinstance(self.teachers, str):
            self.teachers = (self.teachers,)
        self.teachers = tuple(str(teacher) for teacher in self.teachers)


@dataclass
class ComputeConfig:
    """Where and in which number format the steps run."""

    device: str = _opt("auto", "auto, cpu, cuda, cuda:N or mps")
    bf16: bool = _opt(False, "bfloat16 autocast (CPUs with AMX or AVX512-BF16, and GPUs)")
    fp16: bool = _opt(False, "float16 autocast with loss scaling (CUDA only)")
    channels_last: bool = _opt(False, "train in channels-last memory format (faster convolutions on CPU and GPU)")
    compile: bool = _opt(False, "torch.compile the model for training (slow first steps, faster after)")


@dataclass
class EvalConfig:
    """When and how the held-out split is scored, and what the scores decide."""

    val_every: int = _opt(
        1,
        "validate every N epochs and after the last one (a long run then spends its wall time training);"
        " early stopping counts validations",
    )
    early_stopping: int | None = _opt(None, "stop after this many validations (epochs) without improvement")
    monitor: str = _opt("auto", "validation metric for best checkpoint and early stopping (auto: val_loss)")
    tta_flip: bool = _opt(False, "evaluate classifiers on the mean logits of each image and its mirror")
    tta_translate: bool = _opt(False, "also average the views shifted by one pixel up-left and down-right")


@dataclass(init=False)
class TrainConfig:
    """The options of one training run, in sections; built, updated and stored by flat option name.

    ``TrainConfig(**values)`` takes sections by name (``optim=OptimConfig(lr=0.1)``) and leaf options by their
    flat names (``lr=0.1``); a leaf given by name overrides the same leaf of a section given alongside. What
    is not given keeps its default. An unknown name is a ``ConfigError``.
    """

    run: RunConfig = field(default_factory=RunConfig)
    dataset: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(SECTIONS) - set(SECTION_OF))
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(unknown)}")
        for name, section in SECTIONS.items():
            given = values.get(name)
            leaves = {leaf: values[leaf] for leaf in LEAVES[name] if leaf in values}
            # Always a copy: configs derived from one another never share a section to mutate.
            setattr(self, name, replace(section() if given is None else given, **leaves))

    def to_dict(self) -> dict:
        """Every leaf option by its flat name: the form of ``config.json`` and of checkpoint sidecars."""
        return {key: value for name in SECTIONS for key, value in asdict(getattr(self, name)).items()}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        return cls(**values)

    def updated(self, **changes) -> TrainConfig:
        """A new config with these sections or flat options changed."""
        if not changes:
            return self
        return type(self)(**{name: getattr(self, name) for name in SECTIONS}, **changes)


# Section name -> its class; leaf name -> the section it lives in.
SECTIONS: dict[str, type] = {f.name: f.default_factory for f in fields(TrainConfig)}
LEAVES: dict[str, tuple[str, ...]] = {name: tuple(f.name for f in fields(kind)) for name, kind in SECTIONS.items()}
SECTION_OF: dict[str, str] = {leaf: name for name, leaves in LEAVES.items() for leaf in leaves}


def validate_config(cfg: TrainConfig, task_kind: str, device_type: str) -> None:
    """Refuse, in one ``ConfigError`` naming each, the options out of range or in conflict with one another.

    ``task_kind`` is the task's ``kind`` ("classification", "reconstruction" or "rate_distortion"),
    ``device_type`` that of the device the run trains on.
    """
    data, optim, sched, aug, obj, ev = cfg.dataset, cfg.optim, cfg.sched, cfg.augment, cfg.objective, cfg.evaluation
    classifier, codec = task_kind == "classification", task_kind == "rate_distortion"
    autoencoder = task_kind == "reconstruction" or codec
    low_res_ok = aug.low_res is None or (aug.low_res and min(aug.low_res) >= 1 and 0 <= aug.low_res_share <= 1)
    checks = [
        (sched.epochs < 1, f"epochs must be >= 1, got {sched.epochs}"),
        (optim.batch_size < 1, f"batch_size must be >= 1, got {optim.batch_size}"),
        (not 0 <= data.validation_split < 1, f"validation_split must be in [0, 1), got {data.validation_split}"),
        (optim.lr <= 0, f"lr must be positive, got {optim.lr}"),
        (
            sched.schedule not in ("none", "step", "cosine", "onecycle"),
            f"schedule must be none, step, cosine or onecycle, got {sched.schedule!r}",
        ),
        (
            data.normalize not in ("auto", "dataset", "half", "none"),
            f"normalize must be auto, dataset, half or none, got {data.normalize!r}",
        ),
        (
            classifier and obj.loss not in ("auto", "cross_entropy"),
            f"a classifier trains with cross_entropy, not {obj.loss!r}",
        ),
        (
            autoencoder and obj.loss not in ("auto", "mse", "bce"),
            f"an autoencoder trains with mse or bce, not {obj.loss!r}",
        ),
        (
            codec and obj.loss not in ("auto", "mse"),
            f"a codec trains with rate_lambda * 255^2 * MSE + bits per pixel, not {obj.loss!r}",
        ),
        (codec and obj.contractive_weight, "contractive_weight applies to autoencoders, not codecs"),
        (classifier and obj.contractive_weight, "contractive_weight applies to autoencoders only"),
        (aug.alternate_flip and not aug.flip, "alternate_flip says how to flip: add --flip"),
        (
            not low_res_ok,
            f"low_res sizes must be >= 1 and low_res_share in [0, 1], got {aug.low_res}, {aug.low_res_share}",
        ),
        (
            sched.max_time is not None and sched.max_time <= 0,
            f"max_time must be positive seconds, got {sched.max_time}",
        ),
        (
            sched.time_schedule and sched.max_time is None,
            "time_schedule follows the time budget: add --max-time SECONDS, or --no-time-schedule to follow --epochs",
        ),
        (
            sched.time_schedule and sched.schedule == "step",
            "time_schedule keys cosine, onecycle or none to the time; the step schedule counts epochs",
        ),
        (
            sched.time_schedule and optim.lookahead,
            "lookahead counts steps to the end of --epochs; it cannot follow time_schedule",
        ),
        (not 0 <= sched.swa_share < 1, f"swa_share must be in [0, 1) (0: off), got {sched.swa_share}"),
        (sched.swa_lr is not None and sched.swa_lr <= 0, f"swa_lr must be positive, got {sched.swa_lr}"),
        (sched.swa_share and optim.lookahead, "choose one of swa_share and lookahead: both average the weights"),
        (
            obj.teachers and not classifier,
            "teachers distil classifiers; an autoencoder learns from its own reconstruction",
        ),
        (not 0 <= obj.distill_weight <= 1, f"distill_weight must be in [0, 1], got {obj.distill_weight}"),
        (obj.distill_temperature <= 0, f"distill_temperature must be positive, got {obj.distill_temperature}"),
        (ev.val_every < 1, f"val_every must be >= 1 (1: every epoch), got {ev.val_every}"),
        (aug.crop_padding < 0, f"crop_padding must be >= 0 (0: off), got {aug.crop_padding}"),
        (
            aug.crop_padding_mode not in ("zeros", "reflect"),
            f"crop_padding_mode must be zeros or reflect, got {aug.crop_padding_mode!r}",
        ),
        (aug.cutout < 0, f"cutout must be >= 0 (0: off), got {aug.cutout}"),
        (
            autoencoder and aug.cutout,
            "cutout applies to classifiers only: an autoencoder's target is the augmented image",
        ),
        (
            autoencoder and aug.low_res is not None,
            "low_res applies to classifiers only: an autoencoder's target is the full-size image",
        ),
        (cfg.compute.bf16 and cfg.compute.fp16, "choose one of bf16 and fp16"),
        (
            cfg.compute.fp16 and device_type != "cuda",
            f"fp16 autocast needs a CUDA device, not {device_type}; use --bf16 instead",
        ),
    ]
    problems = _out_of_range(cfg) or [message for failed, message in checks if failed]
    if problems:
        raise ConfigError("; ".join(problems))


def _out_of_range(cfg: TrainConfig) -> list[str]:
    """The numbers no run can use: NaN and infinity anywhere (``lr <= 0`` lets NaN through), and bounds that
    hold whatever the task."""
    values = cfg.to_dict()
    problems = [
        f"{name} must be a finite number, got {value}"
        for name, value in values.items()
        if isinstance(value, float) and not math.isfinite(value)
    ]
    optim, sched, obj, ev, data = cfg.optim, cfg.sched, cfg.objective, cfg.evaluation, cfg.dataset
    bounds = [
        (not 0 <= optim.momentum < 1, f"momentum must be in [0, 1), got {optim.momentum}"),
        (optim.weight_decay < 0, f"weight_decay must be >= 0, got {optim.weight_decay}"),
        (optim.grad_clip is not None and optim.grad_clip <= 0, f"grad_clip must be positive, got {optim.grad_clip}"),
        (sched.warmup_epochs < 0, f"warmup_epochs must be >= 0, got {sched.warmup_epochs}"),
        (sched.step_size < 1, f"step_size must be >= 1, got {sched.step_size}"),
        (sched.gamma <= 0, f"gamma must be positive, got {sched.gamma}"),
        (not 0 <= obj.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {obj.label_smoothing}"),
        (obj.contractive_weight < 0, f"contractive_weight must be >= 0, got {obj.contractive_weight}"),
        (obj.n_projections < 1, f"n_projections must be >= 1, got {obj.n_projections}"),
        (obj.rate_lambda <= 0, f"rate_lambda must be positive, got {obj.rate_lambda}"),
        (
            ev.early_stopping is not None and ev.early_stopping < 1,
            f"early_stopping must be >= 1 validations, got {ev.early_stopping}",
        ),
        (data.image_size is not None and data.image_size < 1, f"image_size must be >= 1, got {data.image_size}"),
    ]
    return problems + [message for failed, message in bounds if failed]


# History and measurements: docs/journal/presets.md
PRESETS: dict[str, TrainConfig] = {
    # The source material's CIFAR-10 recipe: torchvision-style SqueezeNet 1.1, plain SGD, 0.5/0.5 normalisation.
    "seed-cifar10": TrainConfig(
        model="squeezenet1_1",
        model_kwargs={"num_classes": 10},
        data="cifar10:data/cifar10",
        epochs=10,
        batch_size=100,
        optimizer="sgd",
        lr=0.001,
        momentum=0.9,
        normalize="half",
    ),
    # The fastest measured CIFAR-10 recipe for 30 minutes of a 2-core CPU, its schedule keyed to the time spent.
    "fast-cifar10": TrainConfig(
        model="squeezenet_cifar",
        model_kwargs={
            "num_classes": 10,
            "batch_norm": True,
            "bypass": "simple",
            "dropout": 0.0,
            "squeeze_ratio": 0.5,
            "pct_3x3": 0.75,
            "stages": (2, 2, 2),
            "base_e": 128,
            "incr_e": 64,
        },
        data="cifar10:data/cifar10",
        epochs=200,
        max_time=1800.0,
        time_schedule=True,
        batch_size=256,
        optimizer="sgd",
        lr=0.2,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        decay_norm_and_bias=False,
        schedule="onecycle",
        warmup_epochs=2,
        label_smoothing=0.1,
        crop_padding=4,
        crop_padding_mode="reflect",
        flip=True,
        alternate_flip=True,
        low_res=(16, 20, 24),
        low_res_share=0.5,
        tta_flip=True,
        tta_translate=True,
        channels_last=True,
        bf16=True,
        monitor="val_acc1",
    ),
    # The source material's Keras autoencoder: 784-64-32 dense, Adam, MSE, 50 epochs, batch 256, 10% validation.
    "seed-mnist-ae": TrainConfig(
        model="dense_ae",
        data="mnist:data/mnist",
        epochs=50,
        batch_size=256,
        validation_split=0.1,
        optimizer="adam",
        lr=1e-3,
        loss="mse",
        normalize="none",
    ),
}


def preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}") from None
