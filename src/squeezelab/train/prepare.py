"""What a run is built from before its first step, and the options its data and processes cannot take.

The data splits, the model shaped for them, its task and batch transform, the trained weights it starts from
(``init_from``) and the teachers it distils from: each checked against this run, so that a mismatch is one
clear line up front rather than a shape error some steps in.
"""

from __future__ import annotations

import torch
from torch import nn

from squeezelab.checkpoint import Checkpoint, open_checkpoint
from squeezelab.data import BatchTransform, DataSplits, ImageDataset, load_dataset, split_validation
from squeezelab.errors import ConfigError, DataError, SqueezelabError
from squeezelab.models import create_model, model_info, same_model
from squeezelab.models.fold import for_inference
from squeezelab.train.config import DataConfig, TrainConfig
from squeezelab.train.distributed import ProcessGroup
from squeezelab.train.tasks import Distillation, Task, normalization, task_for


def as_splits(data, cfg: DataConfig, progress: bool) -> DataSplits:
    """``fit()``'s data argument as splits: a dataset spec is loaded with the config's data options."""
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


def create_model_for(name: str, kwargs: dict, data: ImageDataset) -> nn.Module:
    """Build a registered model shaped for ``data``: its channels, image size and class count, unless given."""
    info = model_info(name)
    fitted = {"in_chans": data.channels}
    if info.kind == "classifier":
        fitted["num_classes"] = max(len(data.classes), 1)
    elif info.kind == "autoencoder":
        fitted["img_size"] = list(data.image_size)
    return create_model(name, **{**fitted, **kwargs})


def held_out(cfg: TrainConfig, splits: DataSplits) -> tuple[ImageDataset, ImageDataset | None]:
    """The (training, validation) parts of the training split; no validation with ``validation_split`` 0."""
    if cfg.dataset.validation_split > 0:
        return split_validation(splits.train, cfg.dataset.validation_split, cfg.run.seed)
    return splits.train, None


def task_of(model: nn.Module, cfg: TrainConfig) -> Task:
    obj, ev = cfg.objective, cfg.evaluation
    return task_for(
        model,
        obj.loss,
        obj.label_smoothing,
        obj.contractive_weight,
        obj.n_projections,
        ev.tta_flip,
        ev.tta_translate,
        obj.rate_lambda,
    )


def batch_transform(cfg: TrainConfig, splits: DataSplits, task: Task) -> BatchTransform:
    """The run's augmentation and normalisation of a batch of uint8 images."""
    mean, std = normalization(cfg.dataset.normalize, splits, task)
    aug = cfg.augment
    # An alternating flip depends on the sample and the epoch, so the loop mirrors the batch itself.
    return BatchTransform(
        mean,
        std,
        aug.crop_padding,
        aug.flip and not aug.alternate_flip,
        cfg.compute.channels_last,
        cutout=aug.cutout,
        padding_mode=aug.crop_padding_mode,
    )


def flip_parity(cfg: TrainConfig, samples: int, device: torch.device) -> torch.Tensor | None:
    """With ``alternate_flip``, which samples the even epochs mirror (the odd ones mirror the others)."""
    if not cfg.augment.alternate_flip:
        return None
    draw = torch.Generator(device=device).manual_seed(cfg.run.seed)
    return torch.rand(samples, generator=draw, device=device) < 0.5


def check_fits(cfg: TrainConfig, model: nn.Module, task_kind: str, splits: DataSplits, group: ProcessGroup) -> None:
    """Refuse the options that, valid on their own, this data, this model or this number of processes cannot
    take: before the first step, not as an IndexError inside it."""
    _check_model_fits(model, task_kind, splits.train, splits.spec)
    if group.world_size > 1 and cfg.objective.contractive_weight:
        # The penalty runs the encoder outside the model's forward, where DDP cannot see its gradients.
        raise ConfigError("contractive training runs in one process; start it without torchrun")
    if group.world_size > 1 and task_kind == "rate_distortion":
        # Every checkpoint rebuilds the codec's entropy tables on the saving process alone, and DDP requires
        # buffers of one shape on all of them.
        raise ConfigError("codecs train in one process; start it without torchrun")
    if task_kind == "classification" and splits.train.labels is None:
        raise DataError(f"{cfg.run.model} is a classifier but {splits.spec} has no labels")
    side = min(splits.train.images.shape[-2:])
    padding = cfg.augment.crop_padding
    if cfg.augment.crop_padding_mode == "reflect" and padding >= side:
        raise ConfigError(
            f"reflect padding mirrors the image, so crop_padding must be below its side ({side}),"
            f" got {padding}; use a smaller --crop-padding or --crop-padding-mode zeros"
        )
    if cfg.optim.batch_size % group.world_size:
        raise ConfigError(f"batch_size {cfg.optim.batch_size} is not divisible by the {group.world_size} processes")


def _check_model_fits(model: nn.Module, task_kind: str, data: ImageDataset, spec: str) -> None:
    channels = getattr(model, "in_chans", None)
    if channels is not None and channels != data.channels:
        raise ConfigError(
            f"the model takes {channels}-channel images but {spec} has {data.channels}; drop --arg in_chans,"
            f" or set --grayscale {'true' if channels == 1 else 'false'}"
        )
    outputs = getattr(model, "num_classes", None)
    if task_kind == "classification" and outputs is not None and outputs < len(data.classes):
        raise ConfigError(
            f"the model has {outputs} outputs but {spec} has {len(data.classes)} classes; drop --num-classes, or"
            f" give at least {len(data.classes)}"
        )
    size = getattr(model, "img_size", None)
    if task_kind == "reconstruction" and size is not None and tuple(size) != tuple(data.image_size):
        raise ConfigError(
            f"the autoencoder is built for {tuple(size)} images but {spec} holds {tuple(data.image_size)};"
            " drop --arg img_size, or set --image-size"
        )


def _open(role: str, path: str, device: torch.device) -> Checkpoint:
    """A checkpoint this run builds on, on its device; its errors name the option that asked for it."""
    try:
        return open_checkpoint(path, device)
    except SqueezelabError as exc:
        raise SqueezelabError(f"{role}: {exc}") from None


def start_from(model: nn.Module, path: str, device: torch.device) -> None:
    """Copy the weights of a trained checkpoint of the same model and options into ``model`` (fine-tuning)."""
    ckpt = _open("init_from", path, device)
    ours = getattr(model, "squeezelab_spec", None)
    if not same_model(ckpt.meta.get("model"), ours):
        raise SqueezelabError(
            f"init_from {ckpt.path} holds {ckpt.meta.get('model')}, this run trains {ours};"
            " start from a checkpoint of the same model and options"
        )
    model.load_state_dict(ckpt.model.state_dict())


def load_teacher(
    path: str, device: torch.device, data: ImageDataset, transform: BatchTransform, channels_last: bool
) -> nn.Module:
    """A trained classifier of ``data``'s classes, input and normalisation, ready for inference on the batches."""
    ckpt = _open("teacher", path, device)
    where = f"teacher {ckpt.path}"
    if ckpt.meta.get("task") != "classification":
        raise SqueezelabError(f"{where} is not a classifier; teachers must classify the same classes")
    if ckpt.classes != data.classes:
        raise SqueezelabError(f"{where} knows the classes {ckpt.classes}, this data {data.classes}")
    if ckpt.input_shape[0] != data.channels:
        raise SqueezelabError(f"{where} takes {ckpt.input_shape[0]}-channel images, this data has {data.channels}")
    theirs, ours = (ckpt.transform.mean, ckpt.transform.std), (transform.mean, transform.std)
    if not torch.allclose(torch.tensor(theirs), torch.tensor(ours)):
        shown = [[round(value, 4) for value in values] for values in (*theirs, *ours)]
        raise SqueezelabError(
            f"{where} was trained on images normalised with mean {shown[0]} and std {shown[1]}, this run uses"
            f" {shown[2]} and {shown[3]}; set --normalize as the teacher's run did"
        )
    teacher = for_inference(ckpt.model).requires_grad_(False)
    if channels_last:
        teacher.to(memory_format=torch.channels_last)
    return teacher


def distillation(cfg: TrainConfig, device: torch.device, data: ImageDataset, transform: BatchTransform) -> Distillation:
    obj = cfg.objective
    teachers = [load_teacher(path, device, data, transform, cfg.compute.channels_last) for path in obj.teachers]
    return Distillation(teachers, obj.distill_weight, obj.distill_temperature)
