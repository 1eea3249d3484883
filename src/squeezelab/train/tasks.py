"""What one batch means for each kind of model: its loss and the metric totals it adds to an epoch.

A task turns a batch of uint8 images (and labels) into a loss and a vector of sums (loss, correct
predictions, squared error ...). Sums rather than means, so that batches of any size and shards of any
process add up exactly; ``summarize`` divides once at the end of the epoch. ``evaluate_split`` scores a
whole split that way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from squeezelab.data import BatchTransform, DataSplits, ImageDataset
from squeezelab.errors import ConfigError
from squeezelab.metrics import mse, psnr_from_mse, topk_correct
from squeezelab.models import Autoencoder, Codec, jacobian_penalty
from squeezelab.train.distributed import ProcessGroup


class Distillation:
    """Soft targets from trained teacher classifiers, on the very batch the student sees (Hinton et al. 2015).

    The teachers see each augmented view too ("consistent" teaching, Beyer et al. 2022), rather than a
    prediction stored per image. With several teachers the target is their mean softened distribution.
    The loss is ``(1 - weight)`` x the label loss + ``weight`` x ``temperature**2`` x KL(teachers || student).
    """

    def __init__(self, teachers: list[nn.Module], weight: float, temperature: float) -> None:
        self.teachers = teachers
        self.weight = weight
        self.temperature = temperature

    def loss(self, logits: Tensor, x: Tensor) -> Tensor:
        """``temperature**2`` x KL(teachers || student) at that temperature, per sample: a batch mean."""
        with torch.no_grad():
            target = sum(F.softmax(teacher(x).float() / self.temperature, -1) for teacher in self.teachers)
            target = target / len(self.teachers)
        # The square keeps the soft term's gradients on the scale of the hard one's as the temperature grows.
        log_student = F.log_softmax(logits.float() / self.temperature, -1)
        return F.kl_div(log_student, target, reduction="batchmean") * self.temperature**2


class Classification:
    kind = "classification"

    def __init__(
        self,
        label_smoothing: float = 0.0,
        tta_flip: bool = False,
        tta_translate: bool = False,
        distillation: Distillation | None = None,
    ) -> None:
        self.label_smoothing = label_smoothing
        self.tta_flip = tta_flip
        self.tta_translate = tta_translate
        self.distillation = distillation

    def batch(
        self,
        model: nn.Module,
        images: Tensor,
        labels: Tensor,
        transform: BatchTransform,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Return (loss to minimise, [loss sum, top-1 hits, top-5 hits, count], logits)."""
        if train:
            images = transform.augment(images, generator)
        x = transform.normalize(images)
        logits = model(x) if train else self.views(model, x)
        # Label smoothing shapes the training objective only; validation reports the plain cross-entropy.
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing if train else 0.0)
        # While progressive resizing shrinks the batch the student learns from the labels alone: teachers score
        # poorly on downsized images (a fast-cifar10 model: 63% at 16 px, 87% at 24, 91% at 32;
        # docs/journal/2026-12-cifar10-time-to-accuracy.md).
        if train and self.distillation is not None and transform.size is None:
            weight = self.distillation.weight
            loss = (1 - weight) * loss + weight * self.distillation.loss(logits, x)
        with torch.no_grad():
            hits = topk_correct(logits, labels, (1, 5))
            stats = torch.stack(
                [
                    loss.detach().double() * len(labels),
                    hits[1].double(),
                    hits[5].double(),
                    torch.tensor(float(len(labels)), dtype=torch.float64, device=loss.device),
                ]
            )
        return loss, stats, logits

    def views(self, model: nn.Module, x: Tensor) -> Tensor:
        """Evaluation logits, averaged over the test-time views the task was built with."""
        logits = self.mirrored(model, x)
        if self.tta_translate:
            # airbench's weighting: the centred view(s) count half, the two one-pixel shifts (reflect-padded,
            # towards the top-left and the bottom-right) a quarter each. +0.2 points on fast-cifar10 (89.94 -> 90.16).
            padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
            height, width = x.shape[-2:]
            shifted = [padded[..., :height, :width], padded[..., 2:, 2:]]
            logits = logits / 2 + sum(self.mirrored(model, view) for view in shifted) / 4
        return logits

    def mirrored(self, model: nn.Module, x: Tensor) -> Tensor:
        if not self.tta_flip:
            return model(x)
        # CIFAR-style classes are mirror-symmetric: averaging an image's and its mirror's logits is a cheap
        # ensemble (+1.1 to +1.3 points for fast-cifar10) that costs a second forward pass at evaluation only.
        return (model(x) + model(x.flip(-1))) / 2

    def summarize(self, totals: Tensor) -> dict[str, float]:
        loss, top1, top5, count = totals.tolist()
        return {"loss": loss / count, "acc1": top1 / count, "acc5": top5 / count}


class Reconstruction:
    kind = "reconstruction"

    def __init__(self, loss: str = "mse", contractive_weight: float = 0.0, n_projections: int = 1) -> None:
        self.loss = loss
        self.contractive_weight = contractive_weight
        self.n_projections = n_projections

    def batch(
        self,
        model: nn.Module,
        images: Tensor,
        labels: Tensor | None,
        transform: BatchTransform,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Return (loss to minimise, [loss sum, squared-error sum, (PSNR sum,) count], reconstructions)."""
        if train:
            images = transform.augment(images, generator)
        target = images.float() / 255
        x = transform.normalize(images)
        x_hat = model(x).float()
        if self.loss == "bce":
            reconstruction = F.binary_cross_entropy(x_hat, target)
        else:
            reconstruction = F.mse_loss(x_hat, target)
        loss = reconstruction
        if train and self.contractive_weight:
            loss = loss + self.contractive_weight * contraction(model, x, self.n_projections).mean()
        with torch.no_grad():
            n = torch.tensor(float(len(x)), dtype=torch.float64, device=x.device)
            if train:
                # Training reports loss and MSE only: a per-sample PSNR pass costs ~8% of a dense_ae step.
                squared = reconstruction if self.loss == "mse" else F.mse_loss(x_hat, target)
                return loss, torch.stack([loss.detach().double() * n, squared.detach().double() * n, n]), x_hat
            errors = mse(x_hat, target)
            quality = psnr_from_mse(errors).clamp(max=100.0)  # a perfect sample must not make the mean infinite
            stats = torch.stack([loss.double() * n, errors.double().sum(), quality.double().sum(), n])
        return loss, stats, x_hat

    def summarize(self, totals: Tensor) -> dict[str, float]:
        if len(totals) == 3:  # training totals: no PSNR
            loss, squared, count = totals.tolist()
            return {"loss": loss / count, "mse": squared / count}
        loss, squared, psnr_sum, count = totals.tolist()
        return {"loss": loss / count, "mse": squared / count, "psnr": psnr_sum / count}


class RateDistortion:
    """A codec's loss, ``lmbda * 255**2 * MSE + bits per pixel`` (Ballé et al.; CompressAI's scale of lambda).

    The rate is the bottleneck's estimate, ``-log2`` of the latents' likelihoods per pixel: on noisy latents
    in training, on rounded ones in evaluation, where it is within a few bytes of the file an encoder writes.
    """

    kind = "rate_distortion"

    def __init__(self, lmbda: float) -> None:
        self.lmbda = lmbda

    def batch(
        self,
        model: nn.Module,
        images: Tensor,
        labels: Tensor | None,
        transform: BatchTransform,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Return (loss, [loss sum, squared-error sum, bits-per-pixel sum, (PSNR sum,) count], reconstructions)."""
        if train:
            images = transform.augment(images, generator)
        target = images.float() / 255
        x_hat, likelihoods = model(transform.normalize(images))
        x_hat = x_hat.float()
        pixels = images.shape[-2] * images.shape[-1]
        bpp = -torch.log2(likelihoods.float()).flatten(1).sum(1) / pixels
        errors = mse(x_hat, target)
        loss = self.lmbda * 255**2 * errors.mean() + bpp.mean()
        with torch.no_grad():
            n = torch.tensor(float(len(images)), dtype=torch.float64, device=images.device)
            sums = [loss.detach().double() * n, errors.double().sum(), bpp.double().sum()]
            if not train:
                sums.append(psnr_from_mse(mse(x_hat.clamp(0, 1), target)).clamp(max=100.0).double().sum())
            stats = torch.stack([*sums, n])
        return loss, stats, x_hat

    def summarize(self, totals: Tensor) -> dict[str, float]:
        values = totals.tolist()
        count = values[-1]
        names = ["loss", "mse", "bpp", "psnr"][: len(values) - 1]
        return {name: value / count for name, value in zip(names, values, strict=False)}


def contraction(model: nn.Module, x: Tensor, n_projections: int) -> Tensor:
    """Per-sample squared Frobenius norm of the encoder Jacobian: exact where the model has a closed form."""
    if hasattr(model, "penalty"):
        return model.penalty(x)
    return jacobian_penalty(model.encode, x, n_projections)


Task = Classification | Reconstruction | RateDistortion


def task_for(
    model: nn.Module,
    loss: str = "auto",
    label_smoothing: float = 0.0,
    contractive_weight: float = 0.0,
    n_projections: int = 1,
    tta_flip: bool = False,
    tta_translate: bool = False,
    rate_lambda: float | None = None,
) -> Task:
    if isinstance(model, Codec):
        if rate_lambda is None:
            raise ConfigError("a codec's loss needs its rate_lambda: the one it was trained with")
        return RateDistortion(rate_lambda)
    if isinstance(model, Autoencoder):
        return Reconstruction("mse" if loss == "auto" else loss, contractive_weight, n_projections)
    return Classification(label_smoothing, tta_flip, tta_translate)


def higher_is_better(metric: str) -> bool:
    return any(word in metric for word in ("acc", "psnr", "ssim"))


def normalization(mode: str, splits: DataSplits, task: Task) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) a ``normalize`` mode stands for; ``auto`` leaves an autoencoder's target in [0, 1]."""
    channels = splits.train.channels
    if mode == "auto":
        mode = "dataset" if isinstance(task, Classification) else "none"
    if mode == "dataset":
        return tuple(splits.mean), tuple(splits.std)
    if mode == "half":
        return (0.5,) * channels, (0.5,) * channels
    return (0.0,) * channels, (1.0,) * channels


def evaluate_split(
    model: nn.Module,
    task: Task,
    data: ImageDataset,
    transform: BatchTransform,
    batch_size: int,
    device: torch.device,
    group: ProcessGroup | None = None,
    outputs: list[Tensor] | None = None,
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
