"""Using a trained model: ``load_model``, ``evaluate`` on a dataset split, ``predict`` on image files.

The one place that dispatches on a model file's format: a run directory or ``.safetensors`` checkpoint, a
compressed ``.sqz`` file, shipped ``MODEL:WEIGHTS``, or (for ``predict``) an exported ``.onnx`` or TorchScript
``.pt`` file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from squeezelab import checkpoint
from squeezelab.checkpoint import Checkpoint
from squeezelab.compress.load import load_sqz
from squeezelab.data import BatchTransform, DataSplits, ImageDataset, load_dataset, split_validation
from squeezelab.data.folder import IMAGE_EXTENSIONS, read_image_files
from squeezelab.errors import ConfigError, FileFormatError, SqueezelabError
from squeezelab.io import atomic_write
from squeezelab.metrics import confusion_matrix, mse, per_class_accuracy, psnr, ssim
from squeezelab.models import Codec, for_inference
from squeezelab.train import Classification, Reconstruction, evaluate_split, resolve_device, task_for
from squeezelab.weights import open_pretrained, parse_weights_spec


def open_checkpoint(path: str | Path, device: str = "cpu") -> Checkpoint:
    """A run directory (its best checkpoint), a ``.safetensors`` checkpoint, a compressed ``.sqz`` file or
    shipped weights named ``MODEL:WEIGHTS`` (e.g. ``squeezenet_cifar:cifar10``)."""
    spec = parse_weights_spec(str(path))
    if spec is not None:
        ckpt = open_pretrained(*spec)
        ckpt.model.to(resolve_device(device))
        return ckpt
    if Path(path).suffix == ".sqz":
        if not Path(path).is_file():
            raise FileFormatError(f"compressed model not found: {path}")
        model, meta = load_sqz(path)
        checkpoint.check_data_meta(meta.get("data"), model, Path(path))
        return Checkpoint(model.to(resolve_device(device)), meta, Path(path))
    return checkpoint.open_checkpoint(path, resolve_device(device))


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"the batch size must be at least 1, got {batch_size}")


def load_model(path: str | Path, device: str = "cpu") -> nn.Module:
    """The model of a run directory (its best checkpoint), a checkpoint or a ``.sqz`` file, in eval mode."""
    return open_checkpoint(path, device).model


def _split(ckpt: Checkpoint, splits: DataSplits, split: str) -> ImageDataset:
    config = ckpt.meta.get("config")
    if config is None and split != "test":
        raise SqueezelabError(f"{ckpt.path} records no training run, so no {split} split; use --split test")
    if split == "test":
        if splits.test is None:
            raise SqueezelabError(
                f"{splits.spec} has no test split; use --split val (the part held out during training)"
            )
        return splits.test
    if split in ("val", "train"):
        if not config["validation_split"]:
            if split == "val":
                raise SqueezelabError("this run trained without a validation split; use --split test or train")
            return splits.train
        train, val = split_validation(splits.train, config["validation_split"], config["seed"])
        return val if split == "val" else train
    raise SqueezelabError(f"--split must be test, val or train, got {split!r}")


def evaluate(
    checkpoint: str | Path,
    data: str | None = None,
    split: str = "test",
    batch_size: int = 256,
    out_dir: str | Path | None = None,
    device: str = "cpu",
    progress: bool = False,
    tta_flip: bool | None = None,
    tta_translate: bool | None = None,
) -> dict:
    """Metrics of a trained model on one split; with ``out_dir``, also a confusion matrix or reconstruction PNG.

    ``data`` defaults to the dataset the model was trained on; ``split="val"`` is the validation split the
    run held out (rebuilt from its seed), ``"test"`` the dataset's own test split. ``tta_flip`` (classifiers:
    mean logits of each image and its mirror) and ``tta_translate`` (also the views shifted by one pixel)
    default to what the run validated with.
    """
    check_batch_size(batch_size)
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ConfigError(f"--out {out_dir} is a file; name a folder for the evaluation's JSON and PNG")
    ckpt = open_checkpoint(checkpoint, device)
    data_meta = ckpt.meta["data"]
    splits = load_dataset(
        data or data_meta["spec"],
        image_size=data_meta["image_size"],
        grayscale=data_meta["grayscale"],
        progress=progress,
    )
    dataset = _split(ckpt, splits, split)
    if tuple(dataset.images.shape[1:]) != ckpt.input_shape:
        raise SqueezelabError(
            f"the model expects images of shape {ckpt.input_shape}, {splits.spec} has {tuple(dataset.images.shape[1:])}"
        )
    recipe = ckpt.meta.get("config") or {}
    if tta_flip is None:
        tta_flip = bool(recipe.get("tta_flip", False))
    if tta_translate is None:
        tta_translate = bool(recipe.get("tta_translate", False))
    task = task_for(ckpt.model, tta_flip=tta_flip, tta_translate=tta_translate, rate_lambda=recipe.get("rate_lambda"))
    if isinstance(task, Classification) and dataset.labels is None:
        raise SqueezelabError(f"{splits.spec} has no labels to score a classifier against")
    model_device = next(ckpt.model.parameters()).device
    result = {"checkpoint": str(ckpt.path), "data": splits.spec, "split": split, "samples": len(dataset)}
    if isinstance(task, Classification):
        result["tta_flip"] = tta_flip
        result["tta_translate"] = tta_translate
    chunks: list[torch.Tensor] = []
    model = for_inference(ckpt.model)
    result.update(evaluate_split(model, task, dataset, ckpt.transform, batch_size, model_device, outputs=chunks))
    outputs = torch.cat(chunks)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        # Here, not at the top: matplotlib takes 0.4 s to import, and only the PNGs need it.
        from squeezelab.report.plots import plot_confusion, plot_reconstructions
    if isinstance(task, Classification):
        confusion = confusion_matrix(outputs.argmax(1), dataset.labels, len(ckpt.classes))
        result["per_class_accuracy"] = dict(zip(ckpt.classes, per_class_accuracy(confusion).tolist(), strict=True))
        result["confusion_matrix"] = confusion.tolist()
        if out is not None:
            result["confusion_png"] = str(
                plot_confusion(
                    confusion,
                    ckpt.classes,
                    out / f"confusion-{split}.png",
                    title=f"{ckpt.meta['model']['name']} on {split}",
                )
            )
    else:
        target = dataset.images.float() / 255
        result["ssim"] = ssim(outputs.clamp(0, 1), target).mean().item()
        if out is not None:
            name = ckpt.meta["model"]["name"]
            result["reconstructions_png"] = str(
                plot_reconstructions(
                    target[:8], {name: outputs[:8]}, out / f"reconstructions-{split}.png", title=f"{name} on {split}"
                )
            )
    if out is not None:
        atomic_write(out / f"evaluation-{split}.json", json.dumps(result, indent=2))
    return result


@torch.no_grad()
def _outputs(
    model: Callable[[torch.Tensor], torch.Tensor],
    dataset: ImageDataset,
    transform: BatchTransform,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    chunks = []
    for begin in range(0, len(dataset), batch_size):
        images = dataset.images[begin : begin + batch_size].to(device)
        chunks.append(model(transform.normalize(images)).float().cpu())
    return torch.cat(chunks)


def _image_paths(images: Sequence[str | Path]) -> list[Path]:
    """Files as given; a folder stands for the image files under it (recursively, sorted, hidden ones left out)."""
    paths = []
    for image in map(Path, images):
        if not image.is_dir():
            paths.append(image)
            continue
        found = sorted(
            path
            for path in image.rglob("*")
            if path.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in path.relative_to(image).parts)
            and path.is_file()
        )
        if not found:
            raise SqueezelabError(f"{image} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        paths += found
    return paths


def predict(
    checkpoint: str | Path,
    images: Sequence[str | Path],
    top_k: int = 5,
    batch_size: int = 64,
    on_bad_image: str = "error",
    device: str = "cpu",
) -> list[dict]:
    """One dict per image, in input order. Classifiers: ``path``, the best ``label`` (class name), its ``index``
    and ``probability``, and ``top``: the ``top_k`` best as such dicts. Autoencoders: ``path``, ``mse``, ``psnr``.

    ``checkpoint`` is a run directory, a checkpoint, shipped ``MODEL:WEIGHTS``, or a file written by ``export``:
    ``.onnx`` (run with onnxruntime) or TorchScript ``.pt``, which run on the CPU. ``images`` are files or
    folders of them (searched recursively).
    """
    from squeezelab.export.runtime import (  # not at the top: squeezelab.export builds on this module
        format_of,
        open_exported,
    )

    check_batch_size(batch_size)
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    if not Path(checkpoint).is_dir() and format_of(checkpoint):
        source = open_exported(checkpoint)
        model, model_device, reconstructs = source, torch.device("cpu"), source.kind == "autoencoder"
    else:
        source = open_checkpoint(checkpoint, device)
        if isinstance(source.model, Codec):
            raise ConfigError(f"{checkpoint} is a codec: compress images with 'squeezelab codec encode --model RUN'")
        model, model_device = for_inference(source.model), next(source.model.parameters()).device
        reconstructs = isinstance(task_for(source.model), Reconstruction)
    channels, height, width = source.input_shape
    if height != width:
        raise SqueezelabError(f"the model takes {height}x{width} images; predict handles square inputs only")
    paths, pixels = read_image_files(
        _image_paths(images), size=height, grayscale=channels == 1, on_bad_image=on_bad_image
    )
    outputs = _outputs(model, ImageDataset(pixels, None, [], "predict"), source.transform, batch_size, model_device)
    if reconstructs:
        target = pixels.float() / 255
        errors, quality = mse(outputs, target).tolist(), psnr(outputs, target).tolist()
        return [
            {"path": str(path), "mse": error, "psnr": db}
            for path, error, db in zip(paths, errors, quality, strict=True)
        ]
    probabilities = outputs.softmax(1)
    top = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    results = []
    for path, values, indices in zip(paths, top.values.tolist(), top.indices.tolist(), strict=True):
        ranked = [
            {"label": source.classes[i] if i < len(source.classes) else str(i), "index": i, "probability": p}
            for p, i in zip(values, indices, strict=True)
        ]
        results.append({"path": str(path), **ranked[0], "top": ranked})
    return results
