"""The ``.sqzi`` compressed image file: a 20-byte header, then the entropy-coded latents.

    offset  size  field
    0       4     magic b"SQZI"
    4       1     format version (1)
    5       1     model id (MODEL_IDS: which registered codec wrote it)
    6       1     quality (1.. for shipped weights, 0 for a trained run's)
    7       1     mode: 1 grayscale (L), 3 RGB
    8       4     weights fingerprint: the first 4 bytes of the sha256 of the model's tensors
    12      2     height, little-endian
    14      2     width
    16      4     CRC32 of bytes 0..15 and of the payload
    20      ...   payload: the latents, coded by ``squeezelab.entropy.encode_latents`` (32-bit words)

The header is kept this small because it is paid on every image: on a 32x32 image its 160 bits are 0.16 bpp.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from squeezelab.errors import FileFormatError

MAGIC = b"SQZI"
VERSION = 1
MODEL_IDS = {1: "conv_codec", 2: "squeeze_codec"}
MODES = {1: "L", 3: "RGB"}
_HEAD = struct.Struct("<4sBBBB4sHH")
_CRC = struct.Struct("<I")
HEADER_BYTES = _HEAD.size + _CRC.size


@dataclass(frozen=True)
class Header:
    model: str
    quality: int
    mode: str
    fingerprint: bytes
    height: int
    width: int


def model_id(name: str) -> int:
    for key, value in MODEL_IDS.items():
        if value == name:
            return key
    raise FileFormatError(f"{name} has no .sqzi model id; codecs that write files: {', '.join(MODEL_IDS.values())}")


def pack(header: Header, payload: bytes) -> bytes:
    mode = next(key for key, value in MODES.items() if value == header.mode)
    head = _HEAD.pack(
        MAGIC, VERSION, model_id(header.model), header.quality, mode, header.fingerprint, header.height, header.width
    )
    return head + _CRC.pack(zlib.crc32(payload, zlib.crc32(head))) + payload


def unpack(data: bytes, name: str) -> tuple[Header, bytes]:
    """(header, payload) of a file's bytes; ``name`` (its path) is what an error names."""
    if len(data) < HEADER_BYTES or data[:4] != MAGIC:
        raise FileFormatError(
            f"{name} is not a .sqzi file (no SQZI header); encode images with 'squeezelab codec encode'"
        )
    magic, version, model, quality, mode, fingerprint, height, width = _HEAD.unpack_from(data)
    if version != VERSION:
        raise FileFormatError(f"{name} is a version {version} .sqzi file; this squeezelab reads version {VERSION}")
    (crc,) = _CRC.unpack_from(data, _HEAD.size)
    payload = data[HEADER_BYTES:]
    if zlib.crc32(payload, zlib.crc32(data[: _HEAD.size])) != crc:
        raise FileFormatError(f"{name} is damaged or truncated (CRC32 mismatch); encode the image again")
    # Past the CRC a bad field means a writer bug, not damage; still one line, never a wrong image.
    if model not in MODEL_IDS or mode not in MODES or not height or not width:
        raise FileFormatError(f"{name} has an invalid header (model {model}, mode {mode}, size {width}x{height})")
    return Header(MODEL_IDS[model], quality, MODES[mode], fingerprint, height, width), payload
