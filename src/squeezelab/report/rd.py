"""Rate-distortion results (``squeezelab.codec.rd.evaluate``) as a Markdown table and a PNG plot."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from squeezelab.report.plots import _save


def _cell(value: object, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def rd_markdown(results: dict) -> str:
    """Every point (learned codecs, JPEG, WebP) and the BD-rates, as Markdown."""
    lines = [
        f"# Rate–distortion on {results['images']} images ({', '.join(results['sizes'][:3])}"
        f"{' ...' if len(results['sizes']) > 3 else ''}; {', '.join(results['modes'])})",
        "",
        "bpp counts whole files (the .sqzi header included); JPEG's payload bpp counts only its entropy-coded data.",
        "",
        "| codec | quality | bpp | JPEG payload bpp | PSNR dB | SSIM | MS-SSIM | encode MP/s | decode MP/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    megapixels = results["megapixels"] / results["images"]
    rows = [(p["model"], p) for p in results["codecs"]]
    rows += [("JPEG", p) for p in results["jpeg"]] + [("WebP", p) for p in results["webp"]]
    for name, p in rows:
        lines.append(
            f"| {name} | {p['quality']} | {p['bpp']:.3f} | {_cell(p.get('bpp_payload'), '.3f')} | {p['psnr']:.2f} |"
            f" {_cell(p['ssim'], '.4f')} | {_cell(p['ms_ssim'], '.4f')} | {megapixels / p['encode_s']:.2f} |"
            f" {megapixels / p['decode_s']:.2f} |"
        )
    lines += ["", "| codec | BD-rate vs JPEG | vs JPEG payload | vs WebP |", "|---|---:|---:|---:|"]
    for model, bd in results["bd_rate"].items():
        cells = [_cell(bd[k], "+.1f") + ("%" if bd[k] is not None else "") for k in ("jpeg", "jpeg_payload", "webp")]
        lines.append(f"| {model} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def plot_rd(results: dict, path: str | os.PathLike) -> Path:
    """PSNR against bits per pixel for every learned codec and the anchors."""
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for model in dict.fromkeys(p["model"] for p in results["codecs"]):
        points = sorted((p["bpp"], p["psnr"]) for p in results["codecs"] if p["model"] == model)
        ax.plot(*zip(*points, strict=True), marker="o", label=model)
    anchors = [("JPEG", results["jpeg"], "bpp"), ("WebP", results["webp"], "bpp")]
    if results["megapixels"] / results["images"] < 0.01:  # tiny images: JPEG's headers dominate its files
        anchors.append(("JPEG payload only", results["jpeg"], "bpp_payload"))
    for name, points, key in anchors:
        curve = sorted((p[key], p["psnr"]) for p in points)
        ax.plot(*zip(*curve, strict=True), marker=".", linestyle="--", label=name)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"rate–distortion, {results['images']} images")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)
