"""The ``.sqz`` compressed-model file, format version 1.

Integers are little-endian::

    offset   size  field
    0        4     magic b"SQZ\\x00"
    4        2     format version, uint16 (1)
    6        4     header length H, uint32
    10       H     header: a UTF-8 JSON object (RFC 8259, no NaN or Infinity)
    10+H     P     payload: every tensor's blobs, tensors in header order
    10+H+P   4     CRC-32 (zlib.crc32) of all bytes before it

The header::

    {"model": {"name": str, "kwargs": {...}},  # squeezelab.models.create_model(name, **kwargs) rebuilds it
     "meta": {...},                            # free: classes, mean/std, input shape...
     "tensors": [record, ...]}                 # state-dict entries, in payload order

A raw record stores a tensor as it is (biases, batch-norm statistics and counters)::

    {"kind": "raw", "name": str, "shape": [int, ...], "dtype": "float16" | "float32" | "int32" | "int64",
     "bytes": {"data": numel * itemsize}}

    data  the elements in row-major order

A coded record stores a pruned, weight-shared tensor (Deep Compression, Han et al.)::

    {"kind": "coded", "name": str, "shape": [int, ...], "codebook_dtype": "float16" | "float32",
     "codebook_len": K, "gap_bits": B, "coder": "ans" | "huffman", "n_entries": N,
     "bytes": {"codebook": K * itemsize, "index_freqs": 2 * (K + 1), "gap_freqs": 2 * 2**B,
               "indices": int, "gaps": int}}

    its blobs, in this order:
    codebook     the K centroids
    index_freqs  uint16 frequency table of the index stream: alphabet K + 1, symbol K is a filler (zero)
    gap_freqs    uint16 frequency table of the gap stream: alphabet 2**B
    indices      the N entries' symbols, entropy-coded with ``coder`` (squeezelab.entropy)
    gaps         the N entries' gaps, entropy-coded likewise

A sparse record stores a pruned tensor whose kept weights are not shared (the file after pruning alone)::

    {"kind": "sparse", "name": str, "shape": [int, ...], "value_dtype": "float16" | "float32",
     "gap_bits": B, "coder": "ans" | "huffman", "n_entries": N,
     "bytes": {"gap_freqs": 2 * 2**B, "gaps": int, "values": N * itemsize}}

    gap_freqs, gaps  as in a coded record
    values           the N entries' values (fillers hold 0)

The N entries (gap, symbol) walk the flattened tensor as described in ``squeezelab.compress.sparse``: each
lies gap + 1 positions after the previous one (the first after position -1) and holds ``codebook[symbol]``;
filler entries and the positions no entry reaches hold 0.

The reader trusts nothing in a file. It checks, in order: the size (at most ``MAX_FILE_BYTES``), the magic,
the version, the checksum, the header's JSON and every field's type and range (at most ``MAX_ELEMENTS``
elements over all tensors, ``MAX_NDIM`` dimensions, codebooks of 1..65536 centroids, gap bits 1..16,
N <= numel), that every blob length matches what the header implies and that they add up to the payload,
and only then decodes, so nothing larger than the header's tensors is allocated. A newer version, an
unreadable or corrupt file is a ``SqueezelabError`` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from squeezelab.compress.sparse import MAX_GAP_BITS, check_gap_bits, sparse_decode, sparse_encode
from squeezelab.entropy import (
    CODERS,
    FREQ_DTYPE,
    coding_stats,
    decode,
    encode,
    quantize_frequencies,
)
from squeezelab.errors import ConfigError, InputShapeError, SqueezelabError
from squeezelab.io import atomic_write, json_default

MAGIC = b"SQZ\x00"
VERSION = 1
MAX_ELEMENTS = 2**28  # over all tensors: decoding allocates at most ~12 bytes per declared element
MAX_FILE_BYTES = 2**32
MAX_NDIM = 32
MAX_CODEBOOK = 2**16
FLOAT_DTYPES = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}
RAW_DTYPES = {**FLOAT_DTYPES, "int32": np.dtype("<i4"), "int64": np.dtype("<i8")}
CODED_BLOBS = ("codebook", "index_freqs", "gap_freqs", "indices", "gaps")
SPARSE_BLOBS = ("gap_freqs", "gaps", "values")
_PREFIX = struct.Struct("<4sHI")  # magic, version, header length
_CRC = struct.Struct("<I")


@dataclass
class CodedTensor:
    """A pruned, weight-shared tensor: ``codebook[indices]``, with index -1 for a pruned (zero) weight."""

    name: str
    shape: tuple[int, ...]
    codebook: np.ndarray  # float16 or float32, 1..65536 centroids
    indices: np.ndarray  # integer, of ``shape``
    gap_bits: int
    coder: str  # "ans" | "huffman"


@dataclass
class SparseTensor:
    """A pruned tensor stored as its non-zero values and their gap-coded positions."""

    name: str
    dense: np.ndarray  # the tensor, zeros included
    gap_bits: int
    coder: str  # "ans" | "huffman"
    value_dtype: str = "float32"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.dense.shape)


@dataclass
class RawTensor:
    name: str
    tensor: torch.Tensor
    dtype: str  # stored as "float16" | "float32" | "int32" | "int64"


@dataclass
class SqzModel:
    model: dict  # {"name": registry name, "kwargs": {...}}
    meta: dict
    tensors: list[CodedTensor | SparseTensor | RawTensor]


def _encode_coded(t: CodedTensor) -> tuple[dict, dict[str, bytes], dict]:
    codebook, indices = np.asarray(t.codebook), np.asarray(t.indices)
    if codebook.dtype.name not in FLOAT_DTYPES or codebook.ndim != 1 or not 1 <= len(codebook) <= MAX_CODEBOOK:
        raise ConfigError(f"{t.name}: the codebook must be a 1-D float16 or float32 array of 1..{MAX_CODEBOOK} values")
    if indices.shape != tuple(t.shape) or not np.issubdtype(indices.dtype, np.integer):
        raise InputShapeError(f"{t.name}: indices must be an integer array of shape {tuple(t.shape)}")
    check_gap_bits(t.gap_bits)
    k, span = len(codebook), 2**t.gap_bits
    flat = indices.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < -1 or flat.max() >= k):
        raise ConfigError(f"{t.name}: indices must lie in -1..{k - 1}")
    positions = np.flatnonzero(flat >= 0)
    gaps, symbols = sparse_encode(flat[positions], positions, t.gap_bits, pad_symbol=k)
    blobs = {
        "codebook": codebook.astype(FLOAT_DTYPES[codebook.dtype.name]).tobytes(),
        "index_freqs": quantize_frequencies(symbols, k + 1).tobytes(),
        "gap_freqs": quantize_frequencies(gaps, span).tobytes(),
        "indices": encode(symbols, k + 1, t.coder),
        "gaps": encode(gaps, span, t.coder),
    }
    sizes = {key: len(blob) for key, blob in blobs.items()}
    record = {
        "kind": "coded",
        "name": t.name,
        "shape": list(indices.shape),
        "codebook_dtype": codebook.dtype.name,
        "codebook_len": k,
        "gap_bits": int(t.gap_bits),
        "coder": t.coder,
        "n_entries": len(gaps),
        "bytes": sizes,
    }
    stats = {
        "kind": "coded",
        "numel": flat.size,
        "kept": len(positions),
        "n_entries": len(gaps),
        "bytes": sizes,
        "indices": coding_stats(symbols, k + 1, blobs["indices"]),
        "gaps": coding_stats(gaps, span, blobs["gaps"]),
    }
    return record, blobs, stats


def _encode_sparse(t: SparseTensor) -> tuple[dict, dict[str, bytes], dict]:
    if t.value_dtype not in FLOAT_DTYPES:
        raise ConfigError(f"{t.name}: sparse values are stored as float16 or float32, not {t.value_dtype!r}")
    check_gap_bits(t.gap_bits)
    flat = np.asarray(t.dense, dtype=np.float32).reshape(-1)
    positions = np.flatnonzero(flat)
    # Entries point into the kept values; fillers (-1) hold a zero.
    gaps, which = sparse_encode(np.arange(len(positions)), positions, t.gap_bits, pad_symbol=-1)
    values = np.where(which >= 0, flat[positions][which], 0).astype(FLOAT_DTYPES[t.value_dtype])
    span = 2**t.gap_bits
    blobs = {
        "gap_freqs": quantize_frequencies(gaps, span).tobytes(),
        "gaps": encode(gaps, span, t.coder),
        "values": values.tobytes(),
    }
    sizes = {key: len(blob) for key, blob in blobs.items()}
    record = {
        "kind": "sparse",
        "name": t.name,
        "shape": list(t.shape),
        "value_dtype": t.value_dtype,
        "gap_bits": int(t.gap_bits),
        "coder": t.coder,
        "n_entries": len(gaps),
        "bytes": sizes,
    }
    stats = {
        "kind": "sparse",
        "numel": flat.size,
        "kept": len(positions),
        "n_entries": len(gaps),
        "bytes": sizes,
        "gaps": coding_stats(gaps, span, blobs["gaps"]),
    }
    return record, blobs, stats


def _encode_raw(t: RawTensor) -> tuple[dict, dict[str, bytes], dict]:
    if t.dtype not in RAW_DTYPES:
        raise ConfigError(f"{t.name}: raw tensors are stored as {', '.join(RAW_DTYPES)}, not {t.dtype!r}")
    tensor = t.tensor.detach().cpu()
    if tensor.is_floating_point() != (t.dtype in FLOAT_DTYPES):
        raise ConfigError(f"{t.name}: a {tensor.dtype} tensor cannot be stored as {t.dtype}")
    array = tensor.to(getattr(torch, t.dtype)).contiguous().numpy()
    blobs = {"data": array.astype(RAW_DTYPES[t.dtype], copy=False).tobytes()}
    sizes = {"data": len(blobs["data"])}
    record = {"kind": "raw", "name": t.name, "shape": list(tensor.shape), "dtype": t.dtype, "bytes": sizes}
    return record, blobs, {"kind": "raw", "numel": tensor.numel(), "bytes": sizes}


def sqz_to_bytes(sqz: SqzModel) -> tuple[bytes, dict]:
    """The file's bytes and its stats: ``{"bytes": file size, "header_bytes": H, "tensors": {name: {...}}}``.

    A coded tensor's stats hold its blob sizes and a ``CodingStats`` (coded vs entropy bits) for the index
    stream (``"indices"``) and the gap stream (``"gaps"``).
    """
    model, meta = sqz.model, sqz.meta
    if not (isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("kwargs"), dict)):
        raise ConfigError('SqzModel.model must be {"name": str, "kwargs": dict}')
    if not isinstance(meta, dict):
        raise ConfigError("SqzModel.meta must be a dict")
    records, payload, stats = [], [], {}
    total = 0
    for t in sqz.tensors:
        if not isinstance(t.name, str) or t.name in stats:
            raise ConfigError(f"tensor names must be distinct strings, got {t.name!r} twice or as a non-string")
        shape = tuple(t.tensor.shape) if isinstance(t, RawTensor) else tuple(t.shape)
        total += math.prod(shape)
        if len(shape) > MAX_NDIM or total > MAX_ELEMENTS:
            raise SqueezelabError(
                f"{t.name}: a .sqz file holds tensors of at most {MAX_NDIM} dimensions, {MAX_ELEMENTS} elements in all"
            )
        encoder = {CodedTensor: _encode_coded, SparseTensor: _encode_sparse, RawTensor: _encode_raw}[type(t)]
        record, blobs, stats[t.name] = encoder(t)
        records.append(record)
        payload.extend(blobs.values())
    header = {"model": model, "meta": meta, "tensors": records}
    text = json.dumps(header, default=json_default, allow_nan=False, separators=(",", ":")).encode()
    body = b"".join([_PREFIX.pack(MAGIC, VERSION, len(text)), text, *payload])
    data = body + _CRC.pack(zlib.crc32(body))
    return data, {"bytes": len(data), "header_bytes": len(text), "tensors": stats}


def write_sqz(path: str | os.PathLike, sqz: SqzModel) -> dict:
    """Write ``sqz`` atomically (an existing file survives a failed write); return ``sqz_to_bytes``'s stats."""
    data, stats = sqz_to_bytes(sqz)
    atomic_write(Path(path), data)
    return stats


class _Corrupt(Exception):
    """Why a file cannot be decoded; ``sqz_from_bytes`` names the file."""


def _show(value: object) -> str:
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return repr(value)[:40]
    return "null" if value is None else type(value).__name__


def _field(obj: dict, key: str, kind: type, where: str):
    value = obj.get(key)
    if not isinstance(value, kind):
        raise _Corrupt(f"{where}: {key!r} must be a {kind.__name__}, got {_show(value)}")
    return value


def _int(obj: dict, key: str, lo: int, hi: int, where: str) -> int:
    value = obj.get(key)
    if type(value) is not int or not lo <= value <= hi:  # type(): bool is an int subclass
        raise _Corrupt(f"{where}: {key!r} must be an integer in {lo}..{hi}, got {_show(value)}")
    return value


def _choice(obj: dict, key: str, choices, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or value not in choices:
        raise _Corrupt(f"{where}: {key!r} must be one of {', '.join(choices)}, got {_show(value)}")
    return value


def _sizes(record: dict, keys: tuple[str, ...], limit: int, where: str) -> dict[str, int]:
    sizes = _field(record, "bytes", dict, where)
    if set(sizes) != set(keys):
        raise _Corrupt(f"{where}: 'bytes' must list exactly {', '.join(keys)}")
    return {key: _int(sizes, key, 0, limit, f"{where} bytes") for key in keys}  # in payload order


def _check_header(header: object, payload_size: int) -> list[tuple[dict, dict[str, int]]]:
    """Validate the header against the payload size; return each tensor record with its blob sizes."""
    if not isinstance(header, dict):
        raise _Corrupt("the header is not a JSON object")
    model = _field(header, "model", dict, "header")
    _field(model, "name", str, "model")
    _field(model, "kwargs", dict, "model")
    _field(header, "meta", dict, "header")
    checked, names, total, declared = [], set(), 0, 0
    for i, record in enumerate(_field(header, "tensors", list, "header")):
        if not isinstance(record, dict):
            raise _Corrupt(f"tensor {i} is not a JSON object")
        name = _field(record, "name", str, f"tensor {i}")
        where = f"tensor {name[:60]!r}"
        if name in names:
            raise _Corrupt(f"{where} appears twice")
        names.add(name)
        shape = _field(record, "shape", list, where)
        if len(shape) > MAX_NDIM or any(type(d) is not int or not 0 <= d <= MAX_ELEMENTS for d in shape):
            raise _Corrupt(f"{where}: 'shape' must be a list of at most {MAX_NDIM} integers in 0..{MAX_ELEMENTS}")
        numel = math.prod(shape)
        total += numel
        if total > MAX_ELEMENTS:
            raise _Corrupt(f"the tensors declare more than {MAX_ELEMENTS} elements")
        kind = record.get("kind")
        if kind == "raw":
            dtype = RAW_DTYPES[_choice(record, "dtype", RAW_DTYPES, where)]
            sizes = _sizes(record, ("data",), payload_size, where)
            expected = {"data": numel * dtype.itemsize}
        elif kind == "coded":
            k = _int(record, "codebook_len", 1, MAX_CODEBOOK, where)
            dtype = FLOAT_DTYPES[_choice(record, "codebook_dtype", FLOAT_DTYPES, where)]
            gap_bits = _int(record, "gap_bits", 1, MAX_GAP_BITS, where)
            _choice(record, "coder", CODERS, where)
            _int(record, "n_entries", 0, numel, where)  # every entry advances at least one position
            sizes = _sizes(record, CODED_BLOBS, payload_size, where)
            expected = {"codebook": k * dtype.itemsize, "index_freqs": 2 * (k + 1), "gap_freqs": 2 * 2**gap_bits}
        elif kind == "sparse":
            dtype = FLOAT_DTYPES[_choice(record, "value_dtype", FLOAT_DTYPES, where)]
            gap_bits = _int(record, "gap_bits", 1, MAX_GAP_BITS, where)
            _choice(record, "coder", CODERS, where)
            n = _int(record, "n_entries", 0, numel, where)
            sizes = _sizes(record, SPARSE_BLOBS, payload_size, where)
            expected = {"gap_freqs": 2 * 2**gap_bits, "values": n * dtype.itemsize}
        else:
            raise _Corrupt(f"{where}: 'kind' must be raw, coded or sparse, got {_show(kind)}")
        for key, size in expected.items():
            if sizes[key] != size:
                raise _Corrupt(f"{where}: {key} takes {sizes[key]} bytes, expected {size}")
        declared += sum(sizes.values())
        checked.append((record, sizes))
    if declared != payload_size:
        raise _Corrupt(f"the header declares {declared} payload bytes, the file holds {payload_size}")
    return checked


def _decode_coded(record: dict, blobs: dict[str, bytes]) -> CodedTensor:
    k, gap_bits, coder, n = record["codebook_len"], record["gap_bits"], record["coder"], record["n_entries"]
    shape = tuple(record["shape"])
    symbols = decode(blobs["indices"], np.frombuffer(blobs["index_freqs"], FREQ_DTYPE), k + 1, n, coder)
    gaps = decode(blobs["gaps"], np.frombuffer(blobs["gap_freqs"], FREQ_DTYPE), 2**gap_bits, n, coder)
    positions, values = sparse_decode(gaps, symbols, gap_bits, k, math.prod(shape))
    indices = np.full(math.prod(shape), -1, dtype=np.int64)
    indices[positions] = values
    # astype: native byte order and a writable copy of the read-only buffer
    codebook = np.frombuffer(blobs["codebook"], FLOAT_DTYPES[record["codebook_dtype"]]).astype(record["codebook_dtype"])
    return CodedTensor(record["name"], shape, codebook, indices.reshape(shape), gap_bits, coder)


def _decode_sparse(record: dict, blobs: dict[str, bytes]) -> SparseTensor:
    gap_bits, coder, n = record["gap_bits"], record["coder"], record["n_entries"]
    shape = tuple(record["shape"])
    gaps = decode(blobs["gaps"], np.frombuffer(blobs["gap_freqs"], FREQ_DTYPE), 2**gap_bits, n, coder)
    positions, _ = sparse_decode(gaps, np.zeros(n, dtype=np.int64), gap_bits, -1, math.prod(shape))
    dense = np.zeros(math.prod(shape), dtype=np.float32)
    dense[positions] = np.frombuffer(blobs["values"], FLOAT_DTYPES[record["value_dtype"]])
    return SparseTensor(record["name"], dense.reshape(shape), gap_bits, coder, record["value_dtype"])


def _decode_raw(record: dict, blobs: dict[str, bytes]) -> RawTensor:
    array = np.frombuffer(blobs["data"], RAW_DTYPES[record["dtype"]]).astype(record["dtype"])
    return RawTensor(record["name"], torch.from_numpy(array.reshape(record["shape"])), record["dtype"])


def _split(data: bytes, source: str) -> tuple[object, memoryview]:
    """Check magic, version and checksum; return the parsed header and the payload."""
    if data[: len(MAGIC)] != MAGIC:
        raise SqueezelabError(f"{source} is not a .sqz file (it does not start with {MAGIC!r})")
    if len(data) < _PREFIX.size + _CRC.size:
        raise _Corrupt(f"{len(data)} bytes is shorter than any .sqz file")
    _, version, header_size = _PREFIX.unpack_from(data)
    if version > VERSION:
        raise SqueezelabError(
            f"{source} was written by format version {version}; this squeezelab reads up to version {VERSION}: "
            "upgrade squeezelab"
        )
    if version < 1:
        raise _Corrupt(f"unknown format version {version}")
    view = memoryview(data)
    if zlib.crc32(view[: -_CRC.size]) != _CRC.unpack_from(data, len(data) - _CRC.size)[0]:
        raise _Corrupt("checksum mismatch")
    end = _PREFIX.size + header_size
    if end > len(data) - _CRC.size:
        raise _Corrupt(f"a header of {header_size} bytes runs past the end of the file")
    try:
        header = json.loads(bytes(view[_PREFIX.size : end]).decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested JSON
        raise _Corrupt(f"the header is not valid JSON: {exc}") from None
    return header, view[end : -_CRC.size]


def sqz_from_bytes(data: bytes, source: str = "<bytes>") -> SqzModel:
    """Parse a ``.sqz`` file's bytes; ``source`` names it in errors. Any malformed input is a SqueezelabError."""
    try:
        header, payload = _split(data, source)
        tensors, offset = [], 0
        for record, sizes in _check_header(header, len(payload)):
            blobs = {}
            for key, size in sizes.items():
                blobs[key] = bytes(payload[offset : offset + size])
                offset += size
            try:
                decoder = {"coded": _decode_coded, "sparse": _decode_sparse, "raw": _decode_raw}[record["kind"]]
                tensors.append(decoder(record, blobs))
            except SqueezelabError as exc:
                raise _Corrupt(f"tensor {record['name'][:60]!r}: {exc}") from None
    except _Corrupt as exc:
        raise SqueezelabError(f"{source} is corrupt ({exc}); re-create it with squeezelab compress") from None
    return SqzModel(model=header["model"], meta=header["meta"], tensors=tensors)


def read_sqz(path: str | os.PathLike) -> SqzModel:
    """Read a ``.sqz`` file, checking everything before decoding anything (see the module docstring)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SqueezelabError(f"{path} is {size} bytes, more than the {MAX_FILE_BYTES} a .sqz file may hold")
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # bounded even if the file grew since stat()
    except OSError as exc:
        raise SqueezelabError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SqueezelabError(f"{path} is more than the {MAX_FILE_BYTES} bytes a .sqz file may hold")
    return sqz_from_bytes(data, str(path))


def decode_state_dict(sqz: SqzModel) -> dict[str, torch.Tensor]:
    """Dense tensors: coded ones as float32 ``codebook[index]`` (0 where pruned), raw floats as float32.

    Raw integers keep their stored width.
    """
    state = {}
    for t in sqz.tensors:
        if isinstance(t, CodedTensor):
            values = torch.cat([torch.zeros(1), torch.from_numpy(np.asarray(t.codebook, dtype=np.float32))])
            state[t.name] = values[torch.from_numpy(np.asarray(t.indices, dtype=np.int64)) + 1].reshape(t.shape)
        elif isinstance(t, SparseTensor):
            state[t.name] = torch.from_numpy(np.asarray(t.dense, dtype=np.float32))
        else:
            tensor = t.tensor
            state[t.name] = tensor.float() if tensor.is_floating_point() else tensor.to(getattr(torch, t.dtype))
    return state
