"""Rate-distortion evaluation: real files against Pillow's JPEG and WebP, and Bjøntegaard delta rate.

Every learned-codec point is measured the way a user would meet it: ``encode_image`` bytes written to a
``.sqzi`` file, read back, decoded, written as PNG and read back; bits per pixel count the whole file, header
included. JPEG is measured whole and, for tiny images where its headers alone cost over 2 bpp, also by its
entropy-coded payload only (``jpeg_payload_bytes``).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pytorch_msssim import ms_ssim, ssim

from squeezelab.codec.api import LoadedCodec, decode_bytes, encode_image, png_bytes, read_image
from squeezelab.errors import DataError
from squeezelab.io import atomic_write

JPEG_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
WEBP_QUALITIES = (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
MS_SSIM_MIN_SIDE = 161  # five scales of an 11-tap window need the smaller side above (11 - 1) * 2**4


def psnr(original: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (peak 255); 100 for identical images, so means stay finite."""
    error = np.mean((original.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return 100.0 if error == 0 else float(10 * math.log10(255**2 / error))


def _nchw(pixels: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(pixels)).double()
    return x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]


def structural_similarity(original: np.ndarray, decoded: np.ndarray) -> dict[str, float | None]:
    """SSIM (11-tap Gaussian window) and, for images large enough for its five scales, MS-SSIM."""
    a, b = _nchw(original), _nchw(decoded)
    side = min(original.shape[:2])
    window = min(11, side - (1 - side % 2))  # an odd window that fits
    out = {"ssim": float(ssim(a, b, data_range=255, win_size=window)), "ms_ssim": None}
    if side >= MS_SSIM_MIN_SIDE:
        out["ms_ssim"] = float(ms_ssim(a, b, data_range=255))
    return out


def jpeg_bytes(pixels: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG, 4:2:0 chroma for colour images, optimised Huffman tables."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, subsampling=2, optimize=True)
    return buffer.getvalue()


def webp_bytes(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="WEBP", quality=quality, method=6)
    return buffer.getvalue()


def jpeg_payload_bytes(data: bytes) -> int:
    """Bytes of a JPEG's entropy-coded segments (after each start-of-scan header, up to the next marker other
    than a restart or a stuffed 0xFF00): the image data without the headers and tables."""
    if data[:2] != b"\xff\xd8":
        raise DataError("not a JPEG stream (no SOI marker)")
    position, payload = 2, 0
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise DataError(f"JPEG stream has no marker at byte {position}")
        marker = data[position + 1]
        if marker == 0xD9:  # end of image
            break
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        position += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data follows the header
            start = position
            while position + 1 < len(data):
                if data[position] == 0xFF and data[position + 1] != 0 and not 0xD0 <= data[position + 1] <= 0xD7:
                    break
                position += 1
            payload += position - start
    return payload


def _decode_pillow(data: bytes, mode: str) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.array(image.convert(mode))


def _scores(original: np.ndarray, decoded: np.ndarray) -> dict:
    return {"psnr": psnr(original, decoded), **structural_similarity(original, decoded)}


def anchor_points(images: Sequence[tuple[str, np.ndarray]], codec: str, qualities: Sequence[int]) -> list[dict]:
    """Mean bpp (whole file and, for JPEG, payload only), PSNR, SSIM, MS-SSIM and times per Pillow quality."""
    write = jpeg_bytes if codec == "jpeg" else webp_bytes
    points = []
    for quality in qualities:
        rows = []
        for _, pixels in images:
            start = time.perf_counter()
            data = write(pixels, quality)
            encoded = time.perf_counter()
            decoded = _decode_pillow(data, "L" if pixels.ndim == 2 else "RGB")
            done = time.perf_counter()
            pixel_count = pixels.shape[0] * pixels.shape[1]
            row = {"bpp": 8 * len(data) / pixel_count, **_scores(pixels, decoded)}
            if codec == "jpeg":
                row["bpp_payload"] = 8 * jpeg_payload_bytes(data) / pixel_count
            row["encode_s"], row["decode_s"] = encoded - start, done - encoded
            rows.append(row)
        points.append({"quality": quality, **_mean(rows)})
    return points


def codec_points(
    images: Sequence[tuple[str, np.ndarray]], codecs: Sequence[LoadedCodec], files_dir: Path
) -> list[dict]:
    """One point per codec quality, measured from the ``.sqzi`` and PNG files written under ``files_dir``."""
    points = []
    for codec in codecs:
        folder = files_dir / f"{codec.name}-q{codec.quality}"
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for index, (stem, pixels) in enumerate(images):
            sqzi, png = folder / f"{index:05d}-{stem}.sqzi", folder / f"{index:05d}-{stem}.png"
            start = time.perf_counter()
            atomic_write(sqzi, encode_image(codec, pixels, stem))
            encoded = time.perf_counter()
            data = sqzi.read_bytes()
            atomic_write(png, png_bytes(decode_bytes(codec, data, str(sqzi))))
            done = time.perf_counter()
            decoded = read_image(png)
            rows.append(
                {
                    "bpp": 8 * len(data) / (pixels.shape[0] * pixels.shape[1]),
                    **_scores(pixels, decoded),
                    "encode_s": encoded - start,
                    "decode_s": done - encoded,
                }
            )
        points.append({"model": codec.name, "quality": codec.quality, "source": codec.source, **_mean(rows)})
    return points


def _mean(rows: list[dict]) -> dict:
    out = {}
    for key in rows[0]:
        values = [row[key] for row in rows if row[key] is not None]
        out[key] = float(np.mean(values)) if values else None
    out["images"] = len(rows)
    return out


def _pchip(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Monotone piecewise-cubic (Fritsch-Carlson PCHIP) interpolation of points (x, y), x strictly increasing."""
    h, slope = np.diff(x), np.diff(y) / np.diff(x)
    d = np.empty_like(y)
    if len(x) == 2:
        d[:] = slope[0]
    else:
        w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
        same_sign = slope[:-1] * slope[1:] > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            d[1:-1] = np.where(same_sign, (w1 + w2) / (w1 / slope[:-1] + w2 / slope[1:]), 0.0)
        for end, (h0, h1, s0, s1) in (
            (0, (h[0], h[1], slope[0], slope[1])),
            (-1, (h[-1], h[-2], slope[-1], slope[-2])),
        ):
            edge = ((2 * h0 + h1) * s0 - h0 * s1) / (h0 + h1)
            if np.sign(edge) != np.sign(s0):
                edge = 0.0
            elif np.sign(s0) != np.sign(s1) and abs(edge) > abs(3 * s0):
                edge = 3 * s0
            d[end] = edge
    i = np.clip(np.searchsorted(x, at, side="right") - 1, 0, len(x) - 2)
    t = (at - x[i]) / h[i]
    return (
        (2 * t**3 - 3 * t**2 + 1) * y[i]
        + (t**3 - 2 * t**2 + t) * h[i] * d[i]
        + (-2 * t**3 + 3 * t**2) * y[i + 1]
        + (t**3 - t**2) * h[i] * d[i + 1]
    )


def bd_rate(anchor: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]]) -> float | None:
    """Bjøntegaard delta rate of ``test`` against ``anchor`` in percent (negative: fewer bits at equal PSNR).

    Each curve is (rate, PSNR) points. Log-rate is interpolated piecewise-cubically and monotonically in PSNR
    (PCHIP, as the current VCEG/JVET practice) and the mean difference taken over the PSNR interval both curves
    cover; a single cubic fitted through many points would swing wildly where a curve bends sharply (JPEG
    re-encoding the CIFAR-10 JPEGs near their own quality). None if the curves do not overlap.
    """
    curves = []
    for points in (anchor, test):
        ordered = sorted((p, math.log(r)) for r, p in points if r > 0)
        kept = [ordered[0]] if ordered else []
        for point in ordered[1:]:  # PSNR must rise strictly along a curve; ties keep the cheaper point
            if point[0] > kept[-1][0]:
                kept.append(point)
        if len(kept) < 2:
            return None
        curves.append(np.array(kept))
    low = max(curve[0, 0] for curve in curves)
    high = min(curve[-1, 0] for curve in curves)
    if high <= low:
        return None
    grid = np.linspace(low, high, 1001)
    means = []
    for curve in curves:
        values = _pchip(curve[:, 0], curve[:, 1], grid)
        means.append((values.sum() - (values[0] + values[-1]) / 2) / (len(grid) - 1))  # trapezoid rule
    return float((math.exp(means[1] - means[0]) - 1) * 100)


def evaluate(
    images: Sequence[tuple[str, np.ndarray]],
    codecs: Sequence[LoadedCodec],
    out_dir: str | Path,
    jpeg_qualities: Sequence[int] = JPEG_QUALITIES,
    webp_qualities: Sequence[int] = WEBP_QUALITIES,
) -> dict:
    """Every codec quality and every anchor on ``images`` (name, uint8 pixels): points and BD-rates."""
    if not images:
        raise DataError("no images to evaluate")
    out = Path(out_dir)
    learned = codec_points(images, codecs, out / "files")
    anchors = {
        "jpeg": anchor_points(images, "jpeg", jpeg_qualities),
        "webp": anchor_points(images, "webp", webp_qualities),
    }
    curves = {"jpeg": [(p["bpp"], p["psnr"]) for p in anchors["jpeg"]]}
    curves["jpeg_payload"] = [(p["bpp_payload"], p["psnr"]) for p in anchors["jpeg"]]
    curves["webp"] = [(p["bpp"], p["psnr"]) for p in anchors["webp"]]
    bd = {}
    for model in dict.fromkeys(p["model"] for p in learned):
        curve = [(p["bpp"], p["psnr"]) for p in learned if p["model"] == model]
        bd[model] = {anchor: bd_rate(points, curve) for anchor, points in curves.items()}
    sizes = sorted({f"{p.shape[1]}x{p.shape[0]}" for _, p in images})
    pixels = sum(p.shape[0] * p.shape[1] for _, p in images)
    return {
        "images": len(images),
        "sizes": sizes,
        "megapixels": pixels / 1e6,
        "modes": sorted({"L" if p.ndim == 2 else "RGB" for _, p in images}),
        "codecs": learned,
        "jpeg": anchors["jpeg"],
        "webp": anchors["webp"],
        "bd_rate": bd,
    }
