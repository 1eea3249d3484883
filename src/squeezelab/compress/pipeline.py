"""``compress(model, data, config)``: Deep Compression's three stages, measured after each one.

prune (iteratively, fine-tuning in between) -> share weights (k-means per layer, then fine-tune the
centroids) -> entropy-code indices and sparse positions into a ``.sqz`` file. Every size reported is the
length of a file this module wrote and ``read_sqz`` decodes back into the model that was measured.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from squeezelab.compress.config import CompressConfig
from squeezelab.compress.container import CodedTensor, RawTensor, SparseTensor, SqzModel, sqz_to_bytes
from squeezelab.compress.prune import (
    apply_masks,
    magnitude_masks,
    model_density,
    prunable_layers,
    prune_schedule,
)
from squeezelab.compress.share import share_weights, shared_layers
from squeezelab.data import DataSplits
from squeezelab.errors import SqueezelabError
from squeezelab.io import atomic_write, json_default
from squeezelab.models.fold import fold_batch_norm, foldable
from squeezelab.train.config import TrainConfig
from squeezelab.train.trainer import Trainer, evaluate_split


@dataclass
class Stage:
    name: str
    bytes: int
    fp32_bytes: int
    density: float
    bits_per_weight: float  # file bits per conv/fc weight, zeros included
    metric: str | None = None
    value: float | None = None
    seconds: float = 0.0
    file: str | None = None
    detail: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.fp32_bytes / self.bytes


@dataclass
class Compressed:
    model: nn.Module  # the shared-weight model: its outputs are what the .sqz file decodes to
    stages: list[Stage]
    sqz: SqzModel
    coding: dict


def _weights_count(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in prunable_layers(model).values())


def plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with parametrized weights as the network sees them, under their usual keys."""
    state = {}
    for key, value in model.state_dict().items():
        if ".parametrizations." in key:
            continue
        state[key] = value
    for name, module in prunable_layers(model).items():
        state[f"{name}.weight" if name else "weight"] = module.weight.detach()
    return {k: state[k] for k in sorted(state)}


def round_small_tensors(model: nn.Module, dtype: str) -> None:
    """Round what the file stores as float16 in the model itself, so the file decodes to this exact model."""
    if dtype == "float32":
        return
    weights = {f"{name}.weight" for name in prunable_layers(model)}
    with torch.no_grad():
        for key, tensor in model.state_dict(keep_vars=True).items():
            if key in weights or ".parametrizations." in key or not tensor.is_floating_point():
                continue
            tensor.copy_(tensor.to(torch.float16).to(tensor.dtype))


def to_sqz(model: nn.Module, meta: dict, cfg: CompressConfig, coder: str | None = None) -> SqzModel:
    """The model as a ``.sqz`` record list: shared layers coded, pruned-only layers sparse, the rest raw."""
    spec = getattr(model, "squeezelab_spec", None)
    if spec is None:
        raise SqueezelabError("only models built by create_model can be written to .sqz (the file names the model)")
    coder = coder or cfg.coder
    shared = shared_layers(model)
    layers = prunable_layers(model)
    tensors = []
    for key, value in plain_state(model).items():
        layer = key.rsplit(".", 1)[0]
        if key.endswith(".weight") and layer in shared:
            s = shared[layer]
            codebook = s.codebook.detach().cpu().float().numpy()
            tensors.append(CodedTensor(key, tuple(value.shape), codebook, s.indices.cpu().numpy(), cfg.gap_bits, coder))
        elif key.endswith(".weight") and layer in layers:
            tensors.append(SparseTensor(key, value.detach().cpu().float().numpy(), cfg.gap_bits, coder))
        else:
            # Integer buffers (counters, a codec's entropy-coding tables) are kept exactly, at their own width.
            wide = value.dtype == torch.int64
            dtype = cfg.small_dtype if value.is_floating_point() else "int64" if wide else "int32"
            tensors.append(RawTensor(key, value.detach().cpu(), dtype))
    return SqzModel(model={"name": spec["name"], "kwargs": spec["kwargs"]}, meta=meta, tensors=tensors)


class _Evaluator:
    """Validation metric and fine-tuning with the recipe the model was trained with."""

    def __init__(self, splits: DataSplits | None, recipe: TrainConfig | None, cfg: CompressConfig, verbose: int):
        self.splits, self.recipe, self.cfg, self.verbose = splits, recipe, cfg, verbose
        self._scoring: tuple | None = None  # (task, split, transform, device), the same for every stage

    def trainer(self, model: nn.Module, epochs: int, lr_scale: float | None = None) -> Trainer:
        recipe = self.recipe.updated(
            epochs=max(1, epochs),
            lr=self.recipe.optim.lr * (lr_scale or self.cfg.lr_scale),
            schedule="cosine",
            warmup_epochs=0.0,
            max_time=None,
            time_schedule=False,  # fine-tuning is a few epochs, however the model was first trained
            low_res=None,  # at full resolution: progressive resizing belongs to training from scratch
            early_stopping=None,
            init_from=None,  # the model to fine-tune is this pruned one, not the run's own starting point
            seed=self.cfg.seed,
        )
        return Trainer(model, self.splits, recipe, None, verbose=self.verbose)

    def measure(self, model: nn.Module) -> tuple[str | None, float | None]:
        if self.splits is None:
            return None, None
        if self._scoring is None:
            # A Trainer settles the split, normalisation and device once; later stages reuse them rather than
            # splitting and copying the dataset (and building an optimizer) again for every measurement.
            t = self.trainer(model, 1)
            self._scoring = (t.task, t.val_data if t.val_data is not None else t.train_data, t.transform, t.device)
        task, data, transform, device = self._scoring
        metrics = evaluate_split(model.to(device), task, data, transform, self.recipe.optim.batch_size, device)
        name = "acc1" if "acc1" in metrics else "mse"
        return f"val_{name}", metrics[name]

    def can_finetune(self, epochs: int) -> bool:
        return self.splits is not None and epochs > 0

    def finetune(self, model: nn.Module, epochs: int, lr_scale: float | None = None) -> None:
        if self.can_finetune(epochs):
            self.trainer(model, epochs, lr_scale).run()


def compress(
    model: nn.Module,
    data: DataSplits | None = None,
    config: CompressConfig | None = None,
    *,
    recipe: TrainConfig | None = None,
    meta: dict | None = None,
    out_dir: str | Path | None = None,
    verbose: int = 1,
) -> Compressed:
    """Prune, share and entropy-code ``model`` (in place); return the stages and the final ``.sqz`` content.

    A model built with ``batch_norm=True`` has its BN folded into the convolutions after pruning: the result's
    ``model`` is then that BN-free model (the same function in eval mode), not the one passed in.

    With ``data`` and the ``recipe`` the model was trained with, every stage is fine-tuned and its validation
    metric measured on the split that training held out. ``out_dir`` receives ``pruned.sqz`` (after the last
    pruning step), ``model.sqz`` and ``stages.json``.
    """
    cfg = config or CompressConfig()
    if data is not None and recipe is None:
        raise SqueezelabError("fine-tuning needs the training recipe (the TrainConfig the model was trained with)")
    evaluator = _Evaluator(data, recipe, cfg, verbose)
    meta = meta or {}
    out = Path(out_dir) if out_dir is not None else None
    n_weights = _weights_count(model)
    fp32_bytes = len(save_safetensors({k: v.contiguous().cpu() for k, v in plain_state(model).items()}))
    stages: list[Stage] = []

    def file_bytes(name: str | None, coder: str | None = None) -> tuple[int, dict]:
        data, stats = sqz_to_bytes(to_sqz(model, meta, cfg, coder))
        if out is not None and name is not None:
            atomic_write(out / name, data)
        return len(data), stats

    def record(name: str, nbytes: int, started: float, file: str | None = None) -> Stage:
        metric, value = evaluator.measure(model)
        stage = Stage(
            name,
            nbytes,
            fp32_bytes,
            model_density(model),
            8 * nbytes / n_weights,
            metric,
            value,
            time.perf_counter() - started,
            file,
        )
        stages.append(stage)
        if verbose:
            shown = f"  {metric} {value:.4f}" if metric else ""
            print(
                f"{name:<30} {nbytes:>11,} bytes  {stage.ratio:6.1f}x  density {stage.density:.3f}"
                f"  {stage.bits_per_weight:5.2f} bits/weight{shown}  ({stage.seconds:.0f} s)",
                flush=True,
            )
        return stage

    record("fp32 (safetensors)", fp32_bytes, time.perf_counter())
    steps = prune_schedule(cfg.density, cfg.prune_steps)
    for i, density in enumerate(steps):
        started = time.perf_counter()
        apply_masks(model, magnitude_masks(model, density, cfg.scope))
        evaluator.finetune(model, cfg.finetune_epochs)
        last = i == len(steps) - 1
        nbytes, _ = file_bytes("pruned.sqz" if last else None)
        record(f"pruned to {density:.1%}", nbytes, started, "pruned.sqz" if last and out else None)

    if foldable(model):
        # After pruning (fine-tuning with BN recovers better), before sharing (clusters of the folded values).
        started = time.perf_counter()
        model = fold_batch_norm(model)
        record("batch norm folded", file_bytes(None)[0], started)

    started = time.perf_counter()
    round_small_tensors(model, cfg.small_dtype)
    share_weights(model, cfg.conv_bits, cfg.fc_bits)
    bits = f"{cfg.conv_bits}" if cfg.conv_bits == cfg.fc_bits else f"{cfg.conv_bits}/{cfg.fc_bits}"
    shared_name = f"shared, {bits}-bit, {cfg.coder}-coded"
    if evaluator.can_finetune(cfg.centroid_epochs):
        record(shared_name, file_bytes(None)[0], started)
        started = time.perf_counter()
        evaluator.finetune(model, cfg.centroid_epochs, cfg.centroid_lr_scale)
        # Fine-tuning moves the float16-stored tensors too; round them again so the file decodes to this model.
        round_small_tensors(model, cfg.small_dtype)
        shared_name = "+ centroids fine-tuned"
    nbytes, stats = file_bytes("model.sqz")
    final = record(shared_name, nbytes, started, "model.sqz" if out else None)
    coding = {cfg.coder: _coding_summary(stats)}
    other = "huffman" if cfg.coder == "ans" else "ans"
    other_bytes, other_stats = file_bytes(None, other)
    coding[other] = _coding_summary(other_stats)
    final.detail = {"coding": coding, f"bytes_with_{other}": other_bytes}

    sqz = to_sqz(model, meta, cfg)
    if out is not None:
        atomic_write(
            out / "stages.json",
            json.dumps(
                {"config": asdict(cfg), "stages": [asdict(s) | {"ratio": s.ratio} for s in stages], "coding": coding},
                indent=2,
                default=json_default,
            ),
        )
    return Compressed(model, stages, sqz, coding)


def _coding_summary(stats: dict) -> dict:
    """Coded bits against the empirical entropy, over all coded tensors, for the index and the gap streams."""
    summary = {}
    for stream in ("indices", "gaps"):
        parts = [t[stream] for t in stats["tensors"].values() if stream in t]
        coded = sum(p.coded_bits for p in parts)
        entropy = sum(p.entropy_bits for p in parts)
        summary[stream] = {
            "symbols": sum(p.symbols for p in parts),
            "coded_bits": coded,
            "entropy_bits": entropy,
            "ratio": coded / entropy if entropy else None,
        }
    tables = sum(t["bytes"].get("index_freqs", 0) + t["bytes"].get("gap_freqs", 0) for t in stats["tensors"].values())
    summary["frequency_table_bytes"] = tables
    summary["file_bytes"] = stats["bytes"]
    return summary
