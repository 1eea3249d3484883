"""Run checkpoints: safetensors weights plus a JSON sidecar, each written atomically.

``NAME.safetensors`` holds the model's state dict under its own keys (loadable by any safetensors reader),
``NAME.json`` says how to rebuild and use the model (registry name and kwargs, data normalisation, classes)
and where training stood. ``NAME.optim.safetensors`` holds the optimizer's tensors for ``--resume``. All
three carry the epoch, so a set torn by a crash between writes is detected rather than silently mixed.
Nothing here unpickles: user files are never executed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from squeezelab.data.transforms import BatchTransform
from squeezelab.errors import FileFormatError
from squeezelab.io import atomic_write_all, json_default
from squeezelab.models import create_model
from squeezelab.version import __version__

FORMAT = "squeezelab-checkpoint"
VERSION = 1


def _cpu_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors (for safetensors) and the JSON-able rest."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(
    stem: Path,
    model: nn.Module,
    meta: dict,
    optimizer: torch.optim.Optimizer | None = None,
    average: nn.Module | None = None,
) -> Path:
    """Write ``stem.safetensors`` and ``stem.json``, with an optimizer also ``stem.optim.safetensors``, and with
    the running average of stochastic weight averaging ``stem.average.safetensors``.

    The files are written as one set (``atomic_write_all``): a failure or kill while writing keeps the previous
    set whole. The sidecar comes last and every tensor file carries the epoch, so a set cut between two
    renames is detected on load rather than silently mixed.
    """
    stem = Path(stem)
    stamp = {"format": FORMAT, "epoch": str(meta.get("epoch", 0))}
    meta = {"format": FORMAT, "version": VERSION, "squeezelab_version": __version__, **meta}
    files = {}
    if optimizer is not None:
        tensors, rest = _optimizer_tensors(optimizer)
        files[stem.with_suffix(".optim.safetensors")] = save_safetensors(_cpu_tensors(tensors), stamp)
        meta["optimizer"] = rest
    if average is not None:
        files[stem.with_suffix(".average.safetensors")] = save_safetensors(_cpu_tensors(average.state_dict()), stamp)
        meta["average"] = True
    weights = stem.with_suffix(".safetensors")
    files[weights] = save_safetensors(_cpu_tensors(model.state_dict()), stamp)
    files[stem.with_suffix(".json")] = json.dumps(meta, indent=2, default=json_default)
    atomic_write_all(files)
    return weights


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory (its best checkpoint), a ``.safetensors`` file or its ``.json`` sidecar -> the weights."""
    path = Path(path)
    if path.is_dir():
        for name in ("best", "last"):
            if (path / f"{name}.safetensors").exists():
                return path / f"{name}.safetensors"
        raise FileFormatError(f"{path} holds no checkpoint (best.safetensors or last.safetensors)")
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.exists():
        raise FileFormatError(f"checkpoint not found: {path}")
    return path


def _read_stamp(path: Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise FileFormatError(f"cannot read {path} as a safetensors checkpoint: {exc}") from None


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (state dict, sidecar metadata) of a checkpoint, checking that its files belong together."""
    weights = resolve_checkpoint(path)
    sidecar = weights.with_suffix(".json")
    if not sidecar.exists():
        raise FileFormatError(f"{weights} has no sidecar {sidecar.name}: cannot tell which model it holds")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{sidecar} is not valid JSON: {exc}") from None
    if meta.get("format") != FORMAT:
        raise FileFormatError(f"{sidecar} is not a squeezelab checkpoint sidecar")
    version = meta.get("version")
    if not isinstance(version, int) or version < 1:
        raise FileFormatError(f"{sidecar} has no valid format version ({version!r}): it is not a squeezelab checkpoint")
    if version > VERSION:
        writer = meta.get("squeezelab_version", "a newer version")
        raise FileFormatError(
            f"{sidecar} is checkpoint format version {version}, written by squeezelab {writer}; squeezelab"
            f" {__version__} reads up to version {VERSION}: upgrade squeezelab to load it"
        )
    stamp = _read_stamp(weights)
    if stamp.get("epoch") != str(meta.get("epoch", 0)):
        raise FileFormatError(f"{weights} and {sidecar.name} are from different epochs (a torn write?)")
    state = load_safetensors(weights.read_bytes())
    return state, meta


def load_optimizer_state(stem: Path, optimizer: torch.optim.Optimizer, meta: dict) -> None:
    path = Path(stem).with_suffix(".optim.safetensors")
    if not path.exists() or "optimizer" not in meta:
        raise FileFormatError(f"{path} is missing: this checkpoint cannot be resumed")
    if _read_stamp(path).get("epoch") != str(meta.get("epoch", 0)):
        raise FileFormatError(f"{path} is from another epoch than {Path(stem).name}.json (a torn write?)")
    tensors = load_safetensors(path.read_bytes())
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *meta["optimizer"]["scalars"].items()]:
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    state = dict(sorted(state.items()))
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})


def load_average(stem: Path, average: nn.Module, meta: dict) -> None:
    """Restore the running average that ``save_checkpoint`` wrote beside ``stem``."""
    path = Path(stem).with_suffix(".average.safetensors")
    if not path.exists() or not meta.get("average"):
        raise FileFormatError(f"{path} is missing: the weight average of this run cannot be resumed")
    if _read_stamp(path).get("epoch") != str(meta.get("epoch", 0)):
        raise FileFormatError(f"{path} is from another epoch than {Path(stem).name}.json (a torn write?)")
    load_weights(average, load_safetensors(path.read_bytes()), str(path))


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Strict load with a message that names the checkpoint and the first mismatch."""
    own = model.state_dict()
    # Buffers whose shape follows the trained values (a codec's entropy tables) take the stored shape.
    variable = {
        f"{name}.{buffer}".lstrip(".")
        for name, module in model.named_modules()
        for buffer in getattr(module, "variable_buffers", ())
    }
    for key, expected in own.items():  # in model order, so the message names the first layer that differs
        if key in state and key not in variable and state[key].shape != expected.shape:
            raise FileFormatError(
                f"checkpoint {source} does not match the model: {key} has shape {tuple(state[key].shape)}, "
                f"the model expects {tuple(expected.shape)}"
            )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise FileFormatError(
            f"checkpoint {source} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    model.load_state_dict(state)
    return model


@dataclass
class Checkpoint:
    """A model rebuilt from a checkpoint, with what it needs to be used: normalisation, classes, input."""

    model: nn.Module
    meta: dict
    path: Path

    @property
    def transform(self) -> BatchTransform:
        return BatchTransform(tuple(self.meta["data"]["mean"]), tuple(self.meta["data"]["std"]))

    @property
    def classes(self) -> list[str]:
        return self.meta["data"]["classes"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["data"]["input_shape"])


def open_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """The registry model of a run directory (its best checkpoint) or a ``.safetensors`` checkpoint, in eval mode."""
    weights = resolve_checkpoint(path)
    state, meta = load_checkpoint(weights)
    spec = meta.get("model")
    if not spec:
        raise FileFormatError(f"{weights} was saved from a model outside the registry; load its weights yourself")
    model = create_model(spec["name"], **spec["kwargs"])
    load_weights(model, state, str(weights))
    check_data_meta(meta.get("data"), model, weights.with_suffix(".json"))
    model.to(device).eval()
    return Checkpoint(model, meta, weights)


def check_data_meta(data: object, model: nn.Module, sidecar: Path) -> None:
    """Refuse a sidecar whose input shape, normalisation or class names do not fit the model it describes."""
    fix = "it does not belong to these weights; restore the run's own sidecar or retrain"
    if not isinstance(data, dict):
        raise FileFormatError(f"{sidecar} has no data section (input shape, classes, normalisation); {fix}")
    shape = data.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(type(n) is int and n > 0 for n in shape)):
        raise FileFormatError(f"{sidecar} gives the input shape {shape!r}, not three positive sizes C, H, W; {fix}")
    channels = getattr(model, "in_chans", shape[0])
    if shape[0] != channels:
        raise FileFormatError(f"{sidecar} gives {shape[0]}-channel inputs, the model takes {channels}; {fix}")
    for key in ("mean", "std"):
        values = data.get(key)
        if not (
            isinstance(values, list) and len(values) == channels and all(isinstance(v, (int, float)) for v in values)
        ):
            raise FileFormatError(f"{sidecar} gives the {key} {values!r}, not {channels} numbers; {fix}")
    if not all(v > 0 for v in data["std"]):
        raise FileFormatError(f"{sidecar} gives the std {data['std']}: every value must be positive; {fix}")
    classes = data.get("classes")
    outputs = getattr(model, "num_classes", None)
    if not isinstance(classes, list) or (classes and outputs is not None and len(classes) != outputs):
        raise FileFormatError(
            f"{sidecar} names {len(classes) if isinstance(classes, list) else classes!r} classes, the model has"
            f" {outputs} outputs; {fix}"
        )


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The epochs a run directory's ``metrics.jsonl`` logs, one dict each, oldest first ([] if it has none)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    epochs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                epochs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise FileFormatError(f"{path}, line {number}, is not valid JSON: {exc}") from None
    return epochs
