import json
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from squeezelab.compress.container import (
    MAGIC,
    MAX_ELEMENTS,
    CodedTensor,
    RawTensor,
    SparseTensor,
    SqzModel,
    decode_state_dict,
    read_sqz,
    sqz_from_bytes,
    sqz_to_bytes,
    write_sqz,
)
from squeezelab.errors import SqueezelabError


def fuzz(examples: int) -> settings:
    # No deadline: a loaded CI machine makes single examples slow without anything being wrong.
    return settings(max_examples=examples, deadline=None)


def pruned_indices(shape, k: int, density: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, k, shape)
    indices[rng.random(shape) >= density] = -1
    return indices


def example_model(seed: int = 0) -> SqzModel:
    rng = np.random.default_rng(seed)
    long_gaps = np.full((40, 300), -1)
    long_gaps.flat[[5, 2000, 11_999]] = [0, 1, 2]  # jumps far beyond 2**4: filler entries
    tensors = [
        CodedTensor(
            "features.0.weight",
            (16, 3, 3, 3),
            rng.standard_normal(256).astype(np.float32),
            pruned_indices((16, 3, 3, 3), 256, 0.35, seed),
            8,
            "ans",
        ),
        RawTensor("features.0.bias", torch.randn(16), "float32"),
        CodedTensor(
            "features.3.weight",
            (8, 16, 1, 1),
            rng.standard_normal(32).astype(np.float16),
            pruned_indices((8, 16, 1, 1), 32, 0.5, seed + 1),
            5,
            "huffman",
        ),
        RawTensor("features.3.bias", torch.randn(8), "float16"),
        CodedTensor("sparse.weight", (40, 300), rng.standard_normal(3).astype(np.float32), long_gaps, 4, "ans"),
        CodedTensor("empty.weight", (4, 5), np.zeros(1, np.float32), np.full((4, 5), -1), 5, "huffman"),
        CodedTensor("dense.weight", (7,), np.arange(2, dtype=np.float32), np.array([0, 1, 1, 0, 1, 0, 0]), 1, "ans"),
        RawTensor("bn.running_mean", torch.randn(8, dtype=torch.float64), "float32"),
        RawTensor("bn.num_batches_tracked", torch.tensor(123, dtype=torch.long), "int64"),
        RawTensor("bottleneck.frequencies", torch.tensor([[1, 65535], [65536, 0]], dtype=torch.int32), "int32"),
    ]
    meta = {"classes": ["cat", "dog"], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "input_shape": [3, 32, 32]}
    return SqzModel({"name": "squeezenet1_1", "kwargs": {"num_classes": 2}}, meta, tensors)


def expected_state(sqz: SqzModel) -> dict[str, torch.Tensor]:
    state = {}
    for t in sqz.tensors:
        if isinstance(t, CodedTensor):
            dense = np.where(t.indices >= 0, t.codebook.astype(np.float32)[np.maximum(t.indices, 0)], 0)
            state[t.name] = torch.from_numpy(dense.astype(np.float32))
        elif t.dtype in ("int32", "int64"):
            state[t.name] = t.tensor.to(getattr(torch, t.dtype))
        else:
            state[t.name] = t.tensor.to(getattr(torch, t.dtype)).float()
    return state


def split(data: bytes) -> tuple[dict, bytes]:
    (size,) = struct.unpack_from("<I", data, 6)
    return json.loads(data[10 : 10 + size]), data[10 + size : -4]


def assemble(header: object, payload: bytes, version: int = 1) -> bytes:
    """A file with a correct checksum, so that the checks behind it run."""
    text = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    body = MAGIC + struct.pack("<HI", version, len(text)) + text + payload
    return body + struct.pack("<I", zlib.crc32(body))


# A small valid file for the fuzz tests: one coded tensor of each coder, raws of each dtype and a sparse one.
SMALL = SqzModel(
    {"name": "m", "kwargs": {}},
    {"classes": ["a", "b"]},
    [
        CodedTensor(
            "a.weight", (6, 5), np.linspace(-1, 1, 4, dtype=np.float32), pruned_indices((6, 5), 4, 0.5, 0), 2, "ans"
        ),
        CodedTensor("b.weight", (3, 7), np.ones(3, np.float16), pruned_indices((3, 7), 3, 0.6, 1), 3, "huffman"),
        RawTensor("b.bias", torch.randn(3), "float16"),
        RawTensor("n", torch.tensor(4), "int64"),
        SparseTensor("c.weight", np.where(np.arange(40) % 3 == 0, np.linspace(-1, 1, 40), 0).reshape(5, 8), 2, "ans"),
    ],
)
SMALL_BYTES, _ = sqz_to_bytes(SMALL)
SMALL_HEADER, SMALL_PAYLOAD = split(SMALL_BYTES)


def test_round_trip_is_exact(tmp_path):
    sqz = example_model()
    path = tmp_path / "model.sqz"
    stats = write_sqz(path, sqz)
    assert stats["bytes"] == path.stat().st_size
    back = read_sqz(path)
    assert back.model == sqz.model and back.meta == sqz.meta
    assert [t.name for t in back.tensors] == [t.name for t in sqz.tensors]
    for written, read in zip(sqz.tensors, back.tensors, strict=True):
        assert type(read) is type(written)
        if isinstance(read, CodedTensor):
            assert read.shape == written.shape and read.gap_bits == written.gap_bits and read.coder == written.coder
            assert read.codebook.dtype == written.codebook.dtype
            np.testing.assert_array_equal(read.codebook, written.codebook)
            np.testing.assert_array_equal(read.indices, written.indices)
        else:
            assert read.dtype == written.dtype
    state = decode_state_dict(back)
    for key, expected in expected_state(sqz).items():
        assert state[key].dtype == expected.dtype and torch.equal(state[key], expected), key
    assert state["features.3.bias"].dtype == torch.float32
    assert state["bn.num_batches_tracked"].dtype == torch.int64 and state["bn.num_batches_tracked"].item() == 123


def test_stats_report_sizes_and_entropy():
    data, stats = sqz_to_bytes(example_model())
    assert stats["bytes"] == len(data)
    conv = stats["tensors"]["features.0.weight"]
    assert conv["numel"] == 16 * 27 and conv["n_entries"] >= conv["kept"]
    assert conv["bytes"]["codebook"] == 256 * 4 and conv["bytes"]["index_freqs"] == 2 * 257
    assert conv["bytes"]["gap_freqs"] == 2 * 256
    for stream in ("indices", "gaps"):
        assert conv[stream].symbols == conv["n_entries"] and conv[stream].coded_bits == 8 * conv["bytes"][stream]
    sparse = stats["tensors"]["sparse.weight"]
    assert sparse["kept"] == 3 and sparse["n_entries"] == 3 + 1994 // 16 + 9998 // 16  # fillers bridge the long jumps
    assert stats["tensors"]["features.0.bias"] == {"kind": "raw", "numel": 16, "bytes": {"data": 64}}
    blobs = sum(sum(t["bytes"].values()) for t in stats["tensors"].values())
    assert stats["bytes"] == 10 + stats["header_bytes"] + blobs + 4


def test_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.sqz"
    write_sqz(path, SMALL)
    before = path.read_bytes()

    bad = SqzModel(SMALL.model, SMALL.meta, [RawTensor("x", torch.zeros(2), "bfloat16")])
    with pytest.raises(ValueError, match="bfloat16"):
        write_sqz(path, bad)

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr("squeezelab.io.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_sqz(path, example_model())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.sqz"]  # no temporary file left behind


@pytest.mark.parametrize(
    "tensor, message",
    [
        (CodedTensor("w", (2,), np.ones(2, np.float64), np.array([0, 1]), 4, "ans"), "float16 or float32"),
        (CodedTensor("w", (2,), np.ones(2, np.float32), np.array([0, 2]), 4, "ans"), "-1..1"),
        (CodedTensor("w", (3,), np.ones(2, np.float32), np.array([0, 1]), 4, "ans"), "shape"),
        (CodedTensor("w", (2,), np.ones(2, np.float32), np.array([0, 1]), 0, "ans"), "gap bits"),
        (CodedTensor("w", (2,), np.ones(2, np.float32), np.array([0, 1]), 4, "zip"), "coder"),
        (RawTensor("w", torch.ones(2), "int64"), "cannot be stored"),
    ],
)
def test_writer_rejects_bad_tensors(tensor, message):
    with pytest.raises((ValueError, SqueezelabError), match=message):
        sqz_to_bytes(SqzModel({"name": "m", "kwargs": {}}, {}, [tensor]))


def test_writer_rejects_duplicate_names():
    raw = RawTensor("w", torch.ones(2), "float32")
    with pytest.raises(ValueError, match="twice"):
        sqz_to_bytes(SqzModel({"name": "m", "kwargs": {}}, {}, [raw, raw]))


def test_errors_name_the_file_and_the_fix(tmp_path):
    path = tmp_path / "model.sqz"
    with pytest.raises(SqueezelabError, match="cannot read .*model.sqz"):
        read_sqz(path)

    data = bytearray(SMALL_BYTES)
    data[-10] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SqueezelabError) as info:
        read_sqz(path)
    assert str(info.value) == f"{path} is corrupt (checksum mismatch); re-create it with squeezelab compress"

    path.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(SqueezelabError, match="is not a .sqz file"):
        read_sqz(path)

    path.write_bytes(assemble({"anything": "from the future"}, b"", version=2))
    with pytest.raises(SqueezelabError) as info:
        read_sqz(path)
    assert str(info.value) == (
        f"{path} was written by format version 2; this squeezelab reads up to version 1: upgrade squeezelab"
    )


def test_reader_checks_sizes_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr("squeezelab.compress.container.MAX_FILE_BYTES", 100)
    path = tmp_path / "big.sqz"
    path.write_bytes(SMALL_BYTES)
    with pytest.raises(SqueezelabError, match="more than the 100"):
        read_sqz(path)


def test_reassembling_the_small_file_gives_it_back():
    # The tests below rebuild files with assemble(): unchanged, that must be the file written.
    assert assemble(SMALL_HEADER, SMALL_PAYLOAD) == SMALL_BYTES


def lie(path: tuple, value) -> dict:
    header = json.loads(json.dumps(SMALL_HEADER))
    node = header
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return header


@pytest.mark.parametrize(
    "header, payload",
    [
        (lie(("tensors", 0, "shape"), [2**20, 2**20]), SMALL_PAYLOAD),  # beyond MAX_ELEMENTS
        (lie(("tensors", 0, "shape"), [MAX_ELEMENTS + 1]), SMALL_PAYLOAD),
        (lie(("tensors", 0, "shape"), [-6, -5]), SMALL_PAYLOAD),
        (lie(("tensors", 0, "shape"), [6.0, 5]), SMALL_PAYLOAD),
        (lie(("tensors", 0, "shape"), [True, 30]), SMALL_PAYLOAD),
        (lie(("tensors", 0, "shape"), "6x5"), SMALL_PAYLOAD),
        (lie(("tensors", 0, "shape"), [1] * 33), SMALL_PAYLOAD),
        (lie(("tensors", 0, "shape"), [2, 3]), SMALL_PAYLOAD),  # fewer elements than the entries reach
        (lie(("tensors", 2, "shape"), [4]), SMALL_PAYLOAD),  # raw data of the wrong size
        (lie(("tensors", 0, "bytes", "indices"), 10**9), SMALL_PAYLOAD),  # beyond the file
        (lie(("tensors", 0, "bytes", "indices"), -4), SMALL_PAYLOAD),
        (lie(("tensors", 0, "bytes", "indices"), "8"), SMALL_PAYLOAD),
        (lie(("tensors", 0, "bytes", "codebook"), 12), SMALL_PAYLOAD),
        (lie(("tensors", 0, "bytes"), {"data": 8}), SMALL_PAYLOAD),
        (lie(("tensors", 0, "bytes"), [8, 8]), SMALL_PAYLOAD),
        (lie(("tensors", 0, "n_entries"), 10**6), SMALL_PAYLOAD),
        (lie(("tensors", 0, "n_entries"), None), SMALL_PAYLOAD),
        (lie(("tensors", 0, "gap_bits"), 17), SMALL_PAYLOAD),
        (lie(("tensors", 0, "gap_bits"), 0), SMALL_PAYLOAD),
        (lie(("tensors", 0, "codebook_len"), 0), SMALL_PAYLOAD),
        (lie(("tensors", 0, "codebook_len"), 2**16 + 1), SMALL_PAYLOAD),
        (lie(("tensors", 0, "codebook_dtype"), "float64"), SMALL_PAYLOAD),
        (lie(("tensors", 0, "coder"), "zip"), SMALL_PAYLOAD),
        (lie(("tensors", 0, "coder"), ["ans"]), SMALL_PAYLOAD),
        (lie(("tensors", 1, "coder"), "ans"), SMALL_PAYLOAD),  # the Huffman stream read as ANS
        (lie(("tensors", 0, "kind"), "raw"), SMALL_PAYLOAD),
        (lie(("tensors", 0, "kind"), None), SMALL_PAYLOAD),
        (lie(("tensors", 2, "dtype"), "int8"), SMALL_PAYLOAD),
        (lie(("tensors", 1, "name"), "a.weight"), SMALL_PAYLOAD),
        (lie(("tensors", 1, "name"), 7), SMALL_PAYLOAD),
        (lie(("tensors", 1), "b.weight"), SMALL_PAYLOAD),
        (lie(("tensors",), {"a.weight": {}}), SMALL_PAYLOAD),
        (lie(("model",), "m"), SMALL_PAYLOAD),
        (lie(("model", "kwargs"), []), SMALL_PAYLOAD),
        (lie(("meta",), None), SMALL_PAYLOAD),
        ([SMALL_HEADER], SMALL_PAYLOAD),
        (SMALL_HEADER, SMALL_PAYLOAD + b"\x00"),  # trailing bytes
        (SMALL_HEADER, SMALL_PAYLOAD[:-1]),
        (b"[" * 100_000, b""),  # nesting deeper than the interpreter's recursion limit
        (b'{"model": ', SMALL_PAYLOAD),
        (b"\xff\xfe{}", SMALL_PAYLOAD),
        (b'{"n": 1' + b"0" * 5000 + b"}", SMALL_PAYLOAD),  # an integer too long to parse
    ],
)
def test_lying_header_is_rejected(header, payload):
    with pytest.raises(SqueezelabError, match="is corrupt"):
        sqz_from_bytes(assemble(header, payload), "model.sqz")


def test_header_length_beyond_the_file_is_rejected():
    body = MAGIC + struct.pack("<HI", 1, 10**6) + b"{}"
    with pytest.raises(SqueezelabError, match="runs past the end"):
        sqz_from_bytes(body + struct.pack("<I", zlib.crc32(body)))


def test_every_truncation_is_rejected():
    for size in range(len(SMALL_BYTES)):  # every length: 997 of them
        with pytest.raises(SqueezelabError):
            sqz_from_bytes(SMALL_BYTES[:size])


@fuzz(300)  # 300 examples
@given(flips=st.lists(st.integers(0, 8 * len(SMALL_BYTES) - 1), min_size=1, max_size=4, unique=True))
def test_bit_flips_are_caught(flips):
    data = bytearray(SMALL_BYTES)
    for bit in flips:
        data[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SqueezelabError):
        sqz_from_bytes(bytes(data))


@fuzz(300)  # 300 examples
@given(data=st.binary(max_size=600), with_magic=st.booleans())
def test_random_bytes_are_rejected(data, with_magic):
    with pytest.raises(SqueezelabError):
        sqz_from_bytes(MAGIC + b"\x01\x00" + data if with_magic else data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Replacement values that keep any decoded tensor small (shapes of at most a few hundred thousand elements).
LIES = (
    st.none()
    | st.booleans()
    | st.integers(-3, 600)
    | st.sampled_from([2**16, 2**16 + 1, 2**28, 2**31, 2**63, -(2**63), 0.5, "ans", "huffman", "raw", "coded"])
    | st.sampled_from(["float16", "float32", "int32", "int64", "", "x"])
    | st.lists(st.integers(-2, 600), max_size=2)
    | st.dictionaries(
        st.sampled_from(["codebook", "index_freqs", "gap_freqs", "indices", "gaps", "data"]),
        st.integers(-1, 64),
        max_size=5,
    )
)


@fuzz(400)  # 400 examples
@given(tensor=st.integers(0, len(SMALL_HEADER["tensors"]) - 1), data=st.data())
def test_header_lies_behind_a_valid_checksum_fail_cleanly(tensor, data):
    record = SMALL_HEADER["tensors"][tensor]
    keys = sorted(record) + [f"bytes.{k}" for k in record["bytes"]]
    key = data.draw(st.sampled_from(keys))
    value = data.draw(LIES)
    path = ("tensors", tensor, *key.split("."))
    try:
        sqz = sqz_from_bytes(assemble(lie(path, value), SMALL_PAYLOAD))
    except SqueezelabError:
        return
    decode_state_dict(sqz)  # a lie the reader accepts (a reshaped raw tensor, a larger shape) still decodes


@fuzz(200)  # 200 examples
@given(header=JSON, payload=st.binary(max_size=40))
def test_random_json_headers_fail_cleanly(header, payload):
    try:
        sqz = sqz_from_bytes(assemble(header, payload))
    except SqueezelabError:
        return
    assert sqz.tensors == []  # only an empty model can be valid without real tensor data


@fuzz(300)  # 300 examples
@given(edits=st.lists(st.tuples(st.integers(0, len(SMALL_PAYLOAD) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_payload_edits_behind_a_valid_checksum_fail_cleanly(edits):
    payload = bytearray(SMALL_PAYLOAD)
    for offset, value in edits:
        payload[offset] = value
    try:
        sqz = sqz_from_bytes(assemble(SMALL_HEADER, bytes(payload)))
    except SqueezelabError:
        return
    decode_state_dict(sqz)  # the entropy coders decode some streams that were never encoded: still tensors


@pytest.mark.parametrize("value_dtype", ["float32", "float16"])
def test_sparse_tensor_round_trip_keeps_values_and_zeros(value_dtype):
    rng = np.random.default_rng(3)
    dense = rng.standard_normal((7, 300)).astype(np.float32)
    dense[rng.random(dense.shape) < 0.9] = 0  # long runs of zeros need filler entries at 3 gap bits
    sqz = SqzModel({"name": "m", "kwargs": {}}, {}, [SparseTensor("w", dense, 3, "huffman", value_dtype)])
    data, stats = sqz_to_bytes(sqz)
    back = decode_state_dict(sqz_from_bytes(data))["w"]
    expected = dense.astype(value_dtype).astype(np.float32)
    np.testing.assert_array_equal(back.numpy(), expected)
    assert stats["tensors"]["w"]["n_entries"] > stats["tensors"]["w"]["kept"]  # fillers were needed
