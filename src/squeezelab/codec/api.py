"""Images to ``.sqzi`` files and back with a trained codec: ``load_codec``, ``encode_image``, ``decode_file``.

An image is coded in its own mode: an RGB codec codes a grayscale image as three equal channels and the
decoder returns their rounded mean, so a file always decodes to an image of its input's mode and size.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from squeezelab.checkpoint import Checkpoint, open_checkpoint
from squeezelab.codec.bitstream import MODEL_IDS, Header, pack, unpack
from squeezelab.entropy import decode_latents, encode_latents
from squeezelab.errors import ConfigError, DataError, FileFormatError
from squeezelab.io import atomic_write
from squeezelab.models import Codec
from squeezelab.weights import list_weights, open_pretrained, parse_weights_spec

MIN_SIDE = 8
MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class LoadedCodec:
    model: Codec
    name: str  # registry name
    quality: int  # 0 for a trained run's weights
    fingerprint: bytes
    source: str
    meta: dict  # the checkpoint's sidecar: the run's config (its held-out split) and data

    @property
    def mode(self) -> str:
        return "L" if self.model.in_chans == 1 else "RGB"


def quality_of(weights_name: str) -> int | None:
    """Shipped codec weights are named ``q1``, ``q2`` ...: higher is more bits and better quality."""
    if weights_name.startswith("q") and weights_name[1:].isdigit():
        return int(weights_name[1:])
    return None


def shipped_codecs() -> list[dict]:
    """``[{"model": name, "qualities": [...]}]`` of shipped codec weights, the default model first."""
    found: dict[str, list[int]] = {}
    defaults = set()
    for card in list_weights():
        quality = quality_of(card.name)
        if card.model in MODEL_IDS.values() and quality is not None:
            found.setdefault(card.model, []).append(quality)
            if card.default:
                defaults.add(card.model)
    order = sorted(found, key=lambda name: (name not in defaults, name))
    return [{"model": name, "qualities": sorted(found[name])} for name in order]


def fingerprint(model: Codec) -> bytes:
    """4 bytes of the sha256 of every tensor the model holds: a file names the exact weights that wrote it."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.digest()[:4]


def load_codec(model: str | None = None, quality: int | None = None) -> LoadedCodec:
    """A codec by shipped model name (default: the default model) and quality, or a run directory."""
    spec = None if model is None else parse_weights_spec(model)
    if model is not None and (spec is not None or Path(model).exists()):
        if quality is not None:
            raise ConfigError("--quality picks shipped weights; a run directory or MODEL:WEIGHTS is one quality")
        if spec is None:
            return _loaded(open_checkpoint(model), 0, model)
        return _loaded(open_pretrained(*spec), quality_of(spec[1]) or 0, model)
    shipped = shipped_codecs()
    if not shipped:
        raise ConfigError("no codec weights are installed; pass a trained codec run with --model RUN")
    entry = shipped[0] if model is None else next((e for e in shipped if e["model"] == model), None)
    if entry is None:
        known = ", ".join(e["model"] for e in shipped)
        raise ConfigError(f"{model} is not a shipped codec; shipped codecs: {known} (or --model RUN for a run)")
    qualities = entry["qualities"]
    quality = qualities[len(qualities) // 2] if quality is None else quality
    if quality not in qualities:
        raise ConfigError(f"{entry['model']} has qualities {qualities}, not {quality}")
    ckpt = open_pretrained(entry["model"], f"q{quality}")
    return _loaded(ckpt, quality, f"{entry['model']}:q{quality}")


def _loaded(ckpt: Checkpoint, quality: int, source: str) -> LoadedCodec:
    model, name = ckpt.model, ckpt.meta["model"]["name"]
    if not isinstance(model, Codec) or name not in MODEL_IDS.values():
        raise ConfigError(f"{source} is not a codec ({name}); codecs: {', '.join(MODEL_IDS.values())}")
    model = model.cpu().eval()
    if not model.bottleneck.has_tables:
        model.bottleneck.update_tables()
    return LoadedCodec(model, name, quality, fingerprint(model), source, ckpt.meta)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 (H, W) for grayscale or (H, W, 3) for anything else."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = "L" if image.mode in ("L", "LA", "I;16", "1", "I", "F") else "RGB"
            pixels = np.array(image.convert(mode))
    except FileNotFoundError:
        raise DataError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable image ({exc})") from None
    return pixels


def _check_size(height: int, width: int, name: str) -> None:
    if min(height, width) < MIN_SIDE:
        raise DataError(f"{name} is {width}x{height}: the codec needs images of at least {MIN_SIDE}x{MIN_SIDE}")
    if height * width > MAX_PIXELS or max(height, width) > 65535:
        raise DataError(f"{name} is {width}x{height}: the codec takes at most {MAX_PIXELS:,} pixels per image")


def _to_tensor(pixels: np.ndarray, channels: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(pixels)).float().div(255)
    x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)
    return x.expand(channels, -1, -1)[None]


def encode_image(codec: LoadedCodec, pixels: np.ndarray, name: str = "image") -> bytes:
    """The ``.sqzi`` bytes of a uint8 (H, W) or (H, W, 3) image."""
    mode = "L" if pixels.ndim == 2 else "RGB"
    if mode == "RGB" and codec.mode == "L":
        raise DataError(f"{name} is RGB but {codec.source} codes grayscale images; convert it to grayscale first")
    height, width = pixels.shape[:2]
    _check_size(height, width, name)
    with torch.no_grad():
        latents = codec.model.encode(_to_tensor(pixels, codec.model.in_chans))[0]
    table = codec.model.bottleneck
    payload = encode_latents(
        latents.flatten(1).to(torch.int64).numpy(),
        table.offsets.numpy(),
        table.lengths.numpy(),
        table.frequencies.numpy(),
    )
    header = Header(codec.name, codec.quality, mode, codec.fingerprint, height, width)
    return pack(header, payload)


def decode_bytes(codec: LoadedCodec, data: bytes, name: str = "file") -> np.ndarray:
    """The uint8 image a ``.sqzi`` file holds; a damaged file or one from other weights is refused."""
    return _decode(codec, *unpack(data, name), name)


def _decode(codec: LoadedCodec, header: Header, payload: bytes, name: str) -> np.ndarray:
    if header.model != codec.name or header.fingerprint != codec.fingerprint:
        raise FileFormatError(
            f"{name} was written by other weights ({header.model}, quality {header.quality}) than {codec.source};"
            " decode it with the codec that wrote it (--model)"
        )
    stride = codec.model.stride
    rows, cols = -(-header.height // stride), -(-header.width // stride)
    table = codec.model.bottleneck
    flat = decode_latents(payload, table.offsets.numpy(), table.lengths.numpy(), table.frequencies.numpy(), rows * cols)
    latents = torch.from_numpy(flat).float().reshape(1, -1, rows, cols)
    with torch.no_grad():
        x_hat = codec.model.decode(latents, (header.height, header.width))[0]
    pixels = torch.round(x_hat.clamp(0, 1) * 255)
    if header.mode == "L":
        pixels = torch.round(pixels.mean(0))
    else:
        pixels = pixels.permute(1, 2, 0)
    return pixels.to(torch.uint8).numpy()


def codec_for_file(header: Header, name: str, model: str | None = None) -> LoadedCodec:
    """The codec that decodes a file: ``model`` if given, else the shipped weights its header names."""
    if model is not None:
        return load_codec(model)
    if not header.quality:
        raise FileFormatError(
            f"{name} was written by a trained run's codec, not shipped weights; pass it with --model RUN"
        )
    try:
        return load_codec(header.model, header.quality)
    except ConfigError:
        raise FileFormatError(
            f"{name} needs {header.model} quality {header.quality}, which this installation does not ship"
        ) from None


def encode_files(paths: list[str], out_dir: str | os.PathLike, codec: LoadedCodec) -> list[Path]:
    """``out_dir/<stem>.sqzi`` for each input; every input is read and checked before anything is written."""
    images = [(Path(path), read_image(path)) for path in paths]
    outputs = _outputs([path for path, _ in images], out_dir, ".sqzi")
    for (path, pixels), out in zip(images, outputs, strict=True):
        atomic_write(out, encode_image(codec, pixels, str(path)))
    return outputs


def decode_files(paths: list[str], out_dir: str | os.PathLike, model: str | None = None) -> list[Path]:
    """``out_dir/<stem>.png`` for each ``.sqzi`` input, in the mode it was encoded from."""
    outputs = _outputs([Path(path) for path in paths], out_dir, ".png")
    codecs: dict[object, LoadedCodec] = {}
    for path, out in zip(paths, outputs, strict=True):
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read {path} ({exc.strerror or exc})") from None
        header, payload = unpack(data, str(path))
        key = model if model is not None else (header.model, header.quality)
        if key not in codecs:
            codecs[key] = codec_for_file(header, str(path), model)
        pixels = _decode(codecs[key], header, payload, str(path))
        atomic_write(out, png_bytes(pixels))
    return outputs


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _outputs(paths: list[Path], out_dir: str | os.PathLike, suffix: str) -> list[Path]:
    if not paths:
        raise ConfigError("no input files given")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out} is a file; name a folder for the outputs")
    stems = [path.stem for path in paths]
    clash = sorted({stem for stem in stems if stems.count(stem) > 1})
    if clash:
        raise ConfigError(f"several inputs share the name {clash[0]!r}; their outputs would overwrite each other")
    out.mkdir(parents=True, exist_ok=True)
    return [out / (stem + suffix) for stem in stems]


__all__ = [
    "LoadedCodec",
    "codec_for_file",
    "decode_bytes",
    "decode_files",
    "encode_files",
    "encode_image",
    "fingerprint",
    "load_codec",
    "png_bytes",
    "read_image",
    "shipped_codecs",
]
