"""Deep Compression (Han et al.): pruning, weight sharing and entropy coding into ``.sqz`` files."""

from squeezelab.compress.container import (
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
from squeezelab.compress.load import load_sqz
from squeezelab.compress.pipeline import CompressConfig, Compressed, compress
from squeezelab.compress.sparse import sparse_decode, sparse_encode
from squeezelab.entropy import (
    CodingStats,
    coding_stats,
    decode,
    empirical_entropy_bits,
    encode,
    quantize_frequencies,
)

__all__ = [
    "CompressConfig",
    "Compressed",
    "compress",
    "load_sqz",
    "CodedTensor",
    "CodingStats",
    "RawTensor",
    "SparseTensor",
    "SqzModel",
    "coding_stats",
    "decode",
    "decode_state_dict",
    "empirical_entropy_bits",
    "encode",
    "quantize_frequencies",
    "read_sqz",
    "sparse_decode",
    "sparse_encode",
    "sqz_from_bytes",
    "sqz_to_bytes",
    "write_sqz",
]
