"""Learned image compression: ``.sqzi`` files (``bitstream``), encoding and decoding (``api``), and the
rate-distortion evaluation against JPEG and WebP (``rd``)."""

from squeezelab.codec.api import (
    LoadedCodec,
    decode_bytes,
    decode_files,
    encode_files,
    encode_image,
    load_codec,
    read_image,
    shipped_codecs,
)

__all__ = [
    "LoadedCodec",
    "decode_bytes",
    "decode_files",
    "encode_files",
    "encode_image",
    "load_codec",
    "read_image",
    "shipped_codecs",
]
