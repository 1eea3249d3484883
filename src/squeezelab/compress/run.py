"""``squeezelab compress``: compress a trained run (or a freshly built model) into a run directory.

The directory holds ``pruned.sqz``, ``model.sqz``, ``stages.json``, ``summary.json`` (with ``int8=True``,
the int8 measurements) and ``report.md``. Fine-tuning uses the dataset and recipe of the run, and the
metric of every stage is measured on the validation split that run held out, never on a test split.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from squeezelab.checkpoint import save_checkpoint
from squeezelab.compress.int8 import (
    CALIBRATION_BATCH_SIZE,
    CALIBRATION_BATCHES,
    calibration_batches,
    freeze,
    latency_ms,
    quantize_int8,
)
from squeezelab.compress.load import load_sqz
from squeezelab.compress.pipeline import CompressConfig, Compressed, compress
from squeezelab.data import BatchTransform, DataSplits, load_dataset, split_validation
from squeezelab.errors import SqueezelabError
from squeezelab.inference import open_checkpoint
from squeezelab.io import atomic_write, json_default
from squeezelab.models import create_model, for_inference, model_info
from squeezelab.report.text import format_table
from squeezelab.train import TrainConfig, evaluate_split, task_for


def fresh_meta(model: nn.Module, name: str) -> dict:
    """What a checkpoint would record about its data, for a model that never saw any."""
    info = model_info(name)
    channels = model.squeezelab_spec["kwargs"].get("in_chans", info.default_input[0])
    shape = [channels, *info.default_input[1:]]
    return {
        "task": "classification" if info.kind == "classifier" else "reconstruction",
        "data": {
            "spec": None,
            "image_size": None,
            "grayscale": None,
            "classes": [],
            "mean": [0.0] * channels,
            "std": [1.0] * channels,
            "input_shape": shape,
        },
    }


def _source(source: str | None, model_name: str | None, model_kwargs: dict):
    """(model, meta, splits or None, recipe or None) for a run/checkpoint or a freshly initialised model."""
    if (source is None) == (model_name is None):
        raise SqueezelabError("compress takes a run directory or checkpoint, or --model NAME for a fresh model")
    if model_name is not None:
        torch.manual_seed(0)
        model = create_model(model_name, **model_kwargs)
        return model, fresh_meta(model, model_name), None, None
    ckpt = open_checkpoint(source)
    if "config" not in ckpt.meta:
        raise SqueezelabError(
            f"{source} records no training run to fine-tune with; compress it with --model NAME instead"
        )
    meta = {k: ckpt.meta[k] for k in ("model", "task", "data", "config") if k in ckpt.meta}
    recipe = TrainConfig.from_dict(ckpt.meta["config"])
    data = ckpt.meta["data"]
    splits = load_dataset(data["spec"], image_size=data["image_size"], grayscale=data["grayscale"])
    return ckpt.model.float().cpu(), meta, splits, recipe


INT8_PATHS = ("fp32_channels_last", "fp32_torchscript", "int8")


def _int8(
    fp32: nn.Module, meta: dict, splits: DataSplits, recipe: TrainConfig, batches: int = CALIBRATION_BATCHES
) -> dict:
    """int8 against fp32: validation metric, and latency at batch 1 and 256, of each path in ``INT8_PATHS``.

    fp32 runs as `evaluate` and `predict` run it (BN folded, channels-last, eager) and traced and frozen;
    int8 runs traced and frozen, its deployable form.
    """
    train, val = split_validation(splits.train, recipe.dataset.validation_split, recipe.run.seed)
    transform = BatchTransform(tuple(meta["data"]["mean"]), tuple(meta["data"]["std"]))
    channels_last = dataclasses.replace(transform, channels_last=True)  # the format for_inference keeps fp32 in
    examples = val.images[:CALIBRATION_BATCH_SIZE]
    int8 = quantize_int8(fp32, calibration_batches(train.images, transform, recipe.run.seed, batches))
    fp32 = for_inference(copy.deepcopy(fp32).eval())
    # (model scored, model timed, its input transform): a frozen TorchScript module computes what its eager
    # source does (tested), but has no train/eval state for the evaluation loop.
    paths = {
        "fp32_channels_last": (fp32, fp32, channels_last),
        "fp32_torchscript": (fp32, freeze(fp32, channels_last.normalize(examples)), channels_last),
        "int8": (int8, freeze(int8, transform.normalize(examples)), transform),
    }
    # Scored as the run validated, like every stage.
    task = task_for(fp32, tta_flip=recipe.evaluation.tta_flip, tta_translate=recipe.evaluation.tta_translate)
    result = {"calibration_images": min(len(train), batches * CALIBRATION_BATCH_SIZE)}
    for label, (scored, timed, inputs) in paths.items():
        metrics = evaluate_split(scored, task, val, transform, 256, torch.device("cpu"))
        key = "acc1" if "acc1" in metrics else "mse"
        result[label] = {f"val_{key}": metrics[key]}
        for batch in (1, 256):
            x = inputs.normalize(val.images[:batch])
            result[label][f"latency_ms_batch{batch}"] = latency_ms(timed, x, repeats=20 if batch == 1 else 5)
    return result


def compress_run(
    source: str | None,
    out: str | Path,
    config: CompressConfig,
    *,
    model_name: str | None = None,
    model_kwargs: dict | None = None,
    int8: bool = False,
    overwrite: bool = False,
    verbose: int = 1,
) -> tuple[Compressed, dict]:
    out = Path(out)
    if (out / "model.sqz").exists() and not overwrite:
        raise SqueezelabError(f"{out} already holds a compressed model; pass --overwrite or choose another --out")
    model, meta, splits, recipe = _source(source, model_name, model_kwargs or {})
    if int8 and splits is None:
        raise SqueezelabError("--int8 calibrates on training images: compress a trained run, not a fresh model")
    summary = {"source": source or f"fresh {model_name}", "model": meta.get("model") or model.squeezelab_spec}
    if int8:  # first, from the untouched model: a minute, where compression may take many
        summary["int8"] = _int8(model, meta, splits, recipe)
    out.mkdir(parents=True, exist_ok=True)
    result = compress(model, splits, config, recipe=recipe, meta=meta, out_dir=out, verbose=verbose)
    atomic_write(out / "summary.json", json.dumps(summary, indent=2, default=json_default))
    atomic_write(out / "report.md", render_report(result, summary, config))
    return result, summary


def stage_rows(result: Compressed) -> tuple[list[str], list[list[str]]]:
    headers = ["stage", "bytes", "vs fp32", "density", "bits/weight", "validation"]
    rows = [
        [
            s.name,
            f"{s.bytes:,}",
            f"{s.ratio:.1f}x",
            f"{s.density:.3f}",
            f"{s.bits_per_weight:.2f}",
            "—" if s.metric is None else f"{s.metric} {s.value:.4f}",
        ]
        for s in result.stages
    ]
    return headers, rows


def coding_rows(result: Compressed) -> tuple[list[str], list[list[str]]]:
    headers = ["coder", "file bytes", "index stream / entropy", "gap stream / entropy", "frequency tables"]
    rows = []
    for coder, c in result.coding.items():
        rows.append(
            [
                coder,
                f"{c['file_bytes']:,}",
                f"{c['indices']['coded_bits'] / 8:,.0f} / {c['indices']['entropy_bits'] / 8:,.0f} B "
                f"({(c['indices']['ratio'] or 1) - 1:+.2%})",
                f"{c['gaps']['coded_bits'] / 8:,.0f} / {c['gaps']['entropy_bits'] / 8:,.0f} B "
                f"({(c['gaps']['ratio'] or 1) - 1:+.2%})",
                f"{c['frequency_table_bytes']:,} B",
            ]
        )
    return headers, rows


def render_report(result: Compressed, summary: dict, cfg: CompressConfig) -> str:
    lines = [
        f"# Deep Compression of {summary['model']['name']}",
        "",
        f"Source: {summary['source']}. Settings: {json.dumps(cfg.__dict__)}",
        "",
        _markdown(*stage_rows(result)),
        "",
        "Entropy coding of the final model (the empirical entropy of the symbols is the floor):",
        "",
        _markdown(*coding_rows(result)),
    ]
    if "int8" in summary:
        lines += ["", int8_table(summary["int8"])]
    return "\n".join(lines) + "\n"


def int8_table(q: dict) -> str:
    """The int8 measurements as Markdown: a row per inference path."""
    headers = ["model", "validation", "latency batch 1 (ms)", "latency batch 256 (ms)"]
    rows = [
        [label, *(f"{v:.4f}" if "val" in k else f"{v:.2f}" for k, v in q[label].items())]
        for label in INT8_PATHS
        if label in q
    ]
    title = f"int8 (x86 backend, calibrated on {q['calibration_images']} training images):"
    return title + "\n\n" + _markdown(headers, rows)


def int8_report(source: str) -> dict:
    """What ``compress --int8`` measures (int8 against fp32) for a trained run, without compressing it."""
    model, meta, splits, recipe = _source(source, None, {})
    if splits is None:
        raise SqueezelabError("int8 calibrates on training images: give a trained run, not a fresh model")
    return _int8(model, meta, splits, recipe)


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def print_summary(result: Compressed, summary: dict) -> None:
    print()
    print(format_table(*coding_rows(result)))
    if "int8" in summary:
        q = summary["int8"]
        rows = [[label, *(f"{v:.4f}" for v in q[label].values())] for label in INT8_PATHS if label in q]
        print()
        print(format_table(["model", *q["int8"].keys()], rows))


def decompress(path: str | Path, output: str | Path, overwrite: bool = False) -> Path:
    """Decode ``path`` (.sqz) into ``output`` (.safetensors) plus its JSON sidecar: an ordinary checkpoint."""
    output = Path(output)
    if output.suffix != ".safetensors":
        raise SqueezelabError(f"the output must be a .safetensors file, got {output}")
    if not output.parent.is_dir():
        raise SqueezelabError(f"the folder {output.parent} does not exist; create it first")
    if output.exists() and not overwrite:
        raise SqueezelabError(f"{output} exists; pass --overwrite to replace it")
    model, meta = load_sqz(path)
    return save_checkpoint(output.with_suffix(""), model, meta)
