"""PNG figures for reports: training curves, confusion matrices, reconstructions and per-model bar charts.

Figures are built on ``matplotlib.figure.Figure`` directly, not pyplot: no global figure state, nothing to
close, safe to call from threads, and no display backend is ever needed. Each function writes its PNG
atomically (a temporary file in the same folder, then a rename), so a reader never sees half a file, and
returns the path.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Sequence
from numbers import Real
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from squeezelab.errors import ConfigError, InputShapeError
from squeezelab.report.text import human_count

_DPI = 120
_MAX_ANNOTATED_CLASSES = 20
_MAX_LABELLED_CLASSES = 40


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A plain new file (not mkstemp, which makes it private) so the PNG gets the usual permissions.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            fig.savefig(f, format="png", dpi=_DPI)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _number(value: object) -> float | None:
    """A finite float from a history entry, or None for missing, NaN and non-numeric values."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _is_metric(key: str) -> bool:
    """Whether a history key is a quality metric to plot, not bookkeeping (epoch, timing, learning rate)."""
    bookkeeping = key in {"epoch", "step", "lr", "learning_rate"} or key.endswith(("_lr", "_s", "_ms"))
    return not (bookkeeping or "time" in key or "second" in key or key.endswith("loss"))


def _plot_series(ax: Axes, history: Sequence[dict], keys: list[str], first_color: int = 0) -> None:
    for i, key in enumerate(keys):
        points = [(_number(h.get("epoch", e + 1)), _number(h.get(key))) for e, h in enumerate(history)]
        points = [(x, y) for x, y in points if x is not None and y is not None]
        ax.plot(*zip(*points, strict=True), marker="o", markersize=4, color=f"C{first_color + i}", label=key)


def _ylabel(keys: list[str]) -> str:
    def kind(key: str) -> str:
        key = key.lower()
        return "PSNR (dB)" if "psnr" in key else "accuracy" if "acc" in key else "SSIM" if "ssim" in key else "value"

    return " / ".join(sorted({kind(k) for k in keys}))


def _plot_metrics(ax: Axes, history: Sequence[dict], metrics: list[str]) -> None:
    # PSNR (tens of dB) gets an axis of its own next to 0-1 scores, which a shared axis would flatten.
    decibels = [k for k in metrics if "psnr" in k.lower()]
    scores = [k for k in metrics if k not in decibels]
    primary, secondary = (scores, decibels) if scores else (decibels, [])
    _plot_series(ax, history, primary)
    ax.set_ylabel(_ylabel(primary))
    handles, labels = ax.get_legend_handles_labels()
    if secondary:
        twin = ax.twinx()
        _plot_series(twin, history, secondary, first_color=len(primary))
        twin.set_ylabel(_ylabel(secondary))
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, fontsize="small")


def plot_curves(history: Sequence[dict], path: str | os.PathLike, title: str = "") -> Path:
    """Training curves from one dict per epoch, e.g. ``{"epoch": 1, "train_loss": .., "val_acc1": ..}``.

    The left panel has every key ending in "loss", the right every other numeric metric (accuracies, PSNR on an
    axis of its own, SSIM); epoch, learning rate and timings are left out. Missing, None and NaN values are
    skipped, so a curve simply has a gap, and a key with no value at all is not drawn. Without an "epoch" key,
    entries count from 1.
    """
    keys = list(dict.fromkeys(k for h in history for k, v in h.items() if _number(v) is not None))
    losses = [k for k in keys if k.endswith("loss")]
    metrics = [k for k in keys if _is_metric(k)]

    panels = max(1, bool(losses) + bool(metrics))
    fig = Figure(figsize=(5.5 * panels, 4), layout="constrained")
    axes = list(fig.subplots(1, panels, squeeze=False)[0])
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
    if not (losses or metrics):
        axes[0].text(0.5, 0.5, "no numeric values recorded", ha="center", va="center", transform=axes[0].transAxes)
    if losses:
        ax = axes.pop(0)
        _plot_series(ax, history, losses)
        ax.set(title="Loss", ylabel="loss")
        ax.legend(fontsize="small")
    if metrics:
        ax = axes.pop(0)
        ax.set_title("Metrics")
        _plot_metrics(ax, history, metrics)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(
    confusion: Tensor | np.ndarray, classes: Sequence[str], path: str | os.PathLike, title: str = ""
) -> Path:
    """Confusion matrix (rows = true class) as a heat map of each row's fractions, ``classes`` naming the rows.

    The counts are written in the cells when there are at most 20 classes; a class with no samples has an empty
    row. Beyond 40 classes the names would overlap, so the axes show indices instead.
    """
    counts = confusion.detach().cpu().numpy() if isinstance(confusion, Tensor) else np.asarray(confusion)
    k = len(classes)
    if counts.shape != (k, k):
        raise InputShapeError(f"confusion matrix of shape {counts.shape} does not match {k} class names")
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)

    side = min(max(4.5, 1.8 + 0.45 * k), 12)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "Confusion matrix")
    if k <= _MAX_LABELLED_CLASSES:
        ax.set_xticks(range(k), [str(c) for c in classes], rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(k), [str(c) for c in classes])
    if k <= _MAX_ANNOTATED_CLASSES:
        for i in range(k):
            for j in range(k):
                color = "white" if fractions[i, j] > 0.5 else "black"  # stays readable on the dark cells
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", color=color, fontsize="small")
    return _save(fig, path)


def _as_images(batch: Tensor, n: int) -> np.ndarray:
    """(N, C, H, W) with 1 or 3 channels -> the first n as (n, H, W) or (n, H, W, 3) floats in [0, 1]."""
    if batch.dim() != 4 or batch.shape[1] not in (1, 3):
        raise InputShapeError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(batch.shape)}")
    images = batch[:n].detach().float().cpu().clamp(0, 1)
    return images[:, 0].numpy() if images.shape[1] == 1 else images.permute(0, 2, 3, 1).numpy()


def plot_reconstructions(
    originals: Tensor,
    reconstructions: dict[str, Tensor] | Tensor,
    path: str | os.PathLike,
    n: int = 8,
    title: str = "",
) -> Path:
    """A grid of the first n images: originals on the first row, then one row per model, labelled by name.

    Images are (N, C, H, W) floats in [0, 1] (values outside are clamped) with 1 or 3 channels; a single tensor
    of reconstructions gets the row label "reconstruction".
    """
    if isinstance(reconstructions, Tensor):
        reconstructions = {"reconstruction": reconstructions}
    n = min(n, len(originals))
    rows = {"original": _as_images(originals, n)}
    for name, batch in reconstructions.items():
        rows[name] = _as_images(batch, n)
        if rows[name].shape != rows["original"].shape:
            raise InputShapeError(f"{name}: images of shape {tuple(batch.shape)} do not match {tuple(originals.shape)}")

    fig = Figure(figsize=(1.3 + 1.1 * n, 0.3 + 1.1 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), n, squeeze=False)
    for row_axes, (name, images) in zip(axes, rows.items(), strict=True):
        row_axes[0].set_ylabel(name, rotation=0, ha="right", va="center")
        for ax, image in zip(row_axes, images, strict=True):
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")  # cmap only applies to 1 channel
            # Ticks and frame off, axis kept: an axis turned off would also hide the row's name.
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_bars(
    values: dict[str, float], path: str | os.PathLike, xlabel: str, title: str = "", log: bool = False
) -> Path:
    """One horizontal bar per model, top to bottom in the dict's order, each labelled with its value.

    ``xlabel`` names the quantity and its unit, e.g. "latency (ms)". A missing (None or NaN) value shows as
    "n/a". With ``log`` the axis is logarithmic, for values spanning orders of magnitude (parameters, MACs).
    """
    names = list(values)
    amounts = [_number(values[name]) for name in names]
    if log and any(v is not None and v <= 0 for v in amounts):
        raise ConfigError("a logarithmic axis needs positive values")

    fig = Figure(figsize=(7, 1.2 + 0.4 * len(names)), layout="constrained")
    ax = fig.subplots()
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)  # first entry on top, and rows without a bar stay in view
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    if log:
        ax.set_xscale("log")
    for y, v in enumerate(amounts):
        if v is None:  # written at the axis' left edge: there is no bar to end at
            ax.text(0.01, y, "n/a", va="center", fontsize="small", transform=ax.get_yaxis_transform())
        else:
            ax.barh(y, v, color="C0", height=0.6)
            ax.text(v, y, f" {human_count(v)}", va="center", fontsize="small")
    ax.margins(x=0.15)  # room for the value labels past the longest bar
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_pareto(
    points: dict[str, dict[str, float]],
    error_key: str,
    error_label: str,
    path: str | os.PathLike,
    title: str = "",
    fronts: dict[str, Sequence[str]] | None = None,
) -> Path:
    """Test error against parameters and against MACs per sample, log-scaled axes, one labelled point per model.

    ``points`` maps a model to its figures (``params``, ``macs`` and ``error_key``); models missing a figure
    are left out. The lower left of each panel is better: small and accurate. ``fronts`` names, per axis
    (``params``, ``macs``), the models to join with a dashed line, cheapest first: the Pareto front.
    """
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    for ax, (key, label) in zip(
        fig.subplots(1, 2), (("params", "parameters"), ("macs", "MACs per sample")), strict=True
    ):
        for i, (name, figures) in enumerate(points.items()):
            x, y = _number(figures.get(key)), _number(figures.get(error_key))
            if x is None or y is None or x <= 0 or y <= 0:
                continue
            ax.scatter(x, y, s=50, color=f"C{i}")
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize="small")
        front = [(points[name][key], points[name][error_key]) for name in (fronts or {}).get(key, ()) if name in points]
        if len(front) > 1:
            ax.plot(*zip(*front, strict=True), linestyle="--", color="grey", zorder=0, label="Pareto front")
            ax.legend(fontsize="small")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{label} (log scale)")
        ax.set_ylabel(f"{error_label} (log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.margins(0.15)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_histories(
    histories: dict[str, Sequence[dict]],
    key: str,
    path: str | os.PathLike,
    title: str = "",
    x: str = "epoch",
    targets: Sequence[float] = (),
) -> Path:
    """One metric (e.g. ``val_loss``) against ``x`` (epoch, or e.g. seconds) for several runs in one panel.

    ``targets`` draws dashed horizontal lines, e.g. the accuracy a recipe must reach.
    """
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for i, (name, history) in enumerate(histories.items()):
        default = (lambda e: e + 1) if x == "epoch" else (lambda e: None)
        points = [(_number(h.get(x, default(e))), _number(h.get(key))) for e, h in enumerate(history)]
        points = [(px, py) for px, py in points if px is not None and py is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=4, color=f"C{i}", label=name)
    for target in targets:
        ax.axhline(target, color="0.4", linestyle="--", linewidth=1)
    ax.set_xlabel(x)
    ax.set_ylabel(key)
    if x == "epoch":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if histories:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_per_class(
    accuracy: dict[str, Sequence[float]], classes: Sequence[str], path: str | os.PathLike, title: str = ""
) -> Path:
    """Grouped bars: each class's test accuracy for every model."""
    fig = Figure(figsize=(max(7.0, 0.9 * len(classes) + 2), 4.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(accuracy))
    positions = np.arange(len(classes))
    for i, (name, values) in enumerate(accuracy.items()):
        heights = [v if _number(v) is not None else 0.0 for v in values]
        ax.bar(positions + (i - (len(accuracy) - 1) / 2) * width, heights, width, color=f"C{i}", label=name)
    ax.set_xticks(
        positions, classes, rotation=30 if len(classes) > 6 else 0, ha="right" if len(classes) > 6 else "center"
    )
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", ncols=min(4, max(1, len(accuracy))))
    if title:
        ax.set_title(title)
    return _save(fig, path)
