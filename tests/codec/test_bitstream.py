import numpy as np
import pytest

from squeezelab.codec.api import decode_bytes, encode_image
from squeezelab.codec.bitstream import HEADER_BYTES, MAGIC, Header, pack, unpack
from squeezelab.errors import FileFormatError


def test_header_round_trip_and_size():
    header = Header("squeeze_codec", 3, "RGB", b"\x01\x02\x03\x04", 480, 640)
    data = pack(header, b"payload!")
    assert len(data) == HEADER_BYTES + 8 == 28 and data[:4] == MAGIC
    assert unpack(data, "x") == (header, b"payload!")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: b"JFIF" + d[4:], "not a .sqzi file"),
        (lambda d: d[:10], "not a .sqzi file"),
        (lambda d: d[:4] + b"\x09" + d[5:], "version 9"),
        (lambda d: d[:-1], "CRC32"),
        (lambda d: d + b"\x00", "CRC32"),
        (lambda d: d[:13] + bytes([d[13] ^ 0x10]) + d[14:], "CRC32"),
    ],
)
def test_damaged_headers_are_refused_in_one_line(change, message):
    data = pack(Header("conv_codec", 1, "L", b"abcd", 32, 32), b"\x00" * 12)
    with pytest.raises(FileFormatError, match=message):
        unpack(change(data), "img.sqzi")


def test_a_fuzz_of_flipped_and_truncated_files_never_decodes_silently(tiny_codec):
    codec = tiny_codec()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    data = encode_image(codec, image)
    good = decode_bytes(codec, data)
    for trial in range(200):
        broken = bytearray(data)
        if trial % 4 == 0:
            broken = broken[: rng.integers(len(broken))]
        else:
            broken[rng.integers(len(broken))] ^= 1 << int(rng.integers(8))
        with pytest.raises(FileFormatError):
            decode_bytes(codec, bytes(broken), "fuzz.sqzi")
    assert np.array_equal(decode_bytes(codec, data), good)
