"""Turn a trained run (or a ``.sqz`` file) into shipped weights: the file and its card, side by side."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors

from squeezelab.checkpoint import load_checkpoint, resolve_checkpoint
from squeezelab.compress.container import sqz_from_bytes
from squeezelab.io import atomic_write_all, json_default
from squeezelab.models import model_info
from squeezelab.weights.registry import CARD_FORMAT, CARD_VERSION

RUN_CONFIG_KEYS = ("validation_split", "seed", "tta_flip", "tta_translate")
CODEC_CONFIG_KEYS = ("rate_lambda",)  # what its loss was: evaluate reports it


def _config_keys(model: str) -> tuple[str, ...]:
    return RUN_CONFIG_KEYS + (CODEC_CONFIG_KEYS if model_info(model).kind == "codec" else ())


def package_weights(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    name: str,
    *,
    trained_on: str,
    metrics: dict,
    metrics_command: str,
    recipe: list[str],
    training: dict,
    half: bool = False,
    default: bool = False,
    notes: str = "",
    run: str | os.PathLike | None = None,
) -> Path:
    """Write ``out_dir/<model>.<name>.{safetensors|sqz}`` and its ``.json`` card; return the card's path.

    ``source`` is a run directory or checkpoint (written as safetensors; ``half`` stores fp16, loaded back
    into fp32) or a ``.sqz`` file (copied as it is; ``run`` then names the run whose data and split it keeps).
    """
    if Path(source).suffix == ".sqz":
        data = Path(source).read_bytes()
        sqz = sqz_from_bytes(data, str(source))  # parsed to check it; shipped byte for byte
        model, suffix = sqz.model, ".sqz"
        meta = load_checkpoint(resolve_checkpoint(run))[1] if run is not None else sqz.meta
    else:
        state, meta = load_checkpoint(resolve_checkpoint(source))
        state = {k: v.half() if half and v.is_floating_point() else v for k, v in state.items()}
        data = save_safetensors({k: v.contiguous() for k, v in state.items()})
        model, suffix = meta["model"], ".safetensors"
    stem = f"{model['name']}.{name}"
    config = meta.get("config") or {}
    card = {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "model": model["name"],
        "name": name,
        "default": default,
        "file": stem + suffix,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "dtype": "float16" if half else "float32",
        "kwargs": model["kwargs"],
        "data": meta["data"],
        "config": {k: config[k] for k in _config_keys(model["name"]) if k in config},
        "trained_on": trained_on,
        "metrics": metrics,
        "metrics_command": metrics_command,
        "recipe": recipe,
        "training": training,
        "notes": notes,
        "torch": torch.__version__,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {out / (stem + suffix): data, out / f"{stem}.json": json.dumps(card, indent=2, default=json_default)}
    atomic_write_all(files)
    return out / f"{stem}.json"
