"""Lossless entropy coding of symbol streams (cluster indices, index gaps) with ``constriction``.

Both coders model a stream as i.i.d. symbols drawn from its own empirical distribution. That distribution is
stored beside the coded bytes as a table of ``uint16`` frequencies (``quantize_frequencies``), and encoder and
decoder build their model from that table alone, so they agree bit for bit.

- ``"ans"``: asymmetric numeral systems (``constriction.stream.stack.AnsCoder``), within a fraction of a
  percent of the empirical entropy on long streams.
- ``"huffman"``: a Huffman code (``constriction.symbol``), the paper's choice: at least 1 bit per symbol, up to
  1 bit per symbol above the entropy.

A stream whose table holds a single symbol costs no bytes: the decoder repeats that symbol ``n`` times.
Coded bytes are the coder's 32-bit words in little-endian order.

``encode_latents`` / ``decode_latents`` code a codec's quantised latents instead: one integer frequency table
per channel (a learned density, stored with the model), covering a range of values plus an escape symbol for
values outside it, whose raw value follows under a uniform model.
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from squeezelab.errors import ConfigError, InputShapeError, SqueezelabError

CODERS = ("ans", "huffman")
MAX_ALPHABET = 2**16 + 1  # a 16-bit codebook plus the filler symbol
FREQ_DTYPE = np.dtype("<u2")
_FREQ_MAX = np.iinfo(FREQ_DTYPE).max

# constriction's Python modules are attributes of the extension, not importable submodules.
_Categorical = constriction.stream.model.Categorical
_AnsCoder = constriction.stream.stack.AnsCoder
_huffman = constriction.symbol.huffman
_Uniform = constriction.stream.model.Uniform
ESCAPE_RANGE = 2**16  # escaped latents are coded raw as int16


def _check_alphabet(alphabet_size: int) -> None:
    if not 1 <= alphabet_size <= MAX_ALPHABET:
        raise ConfigError(f"alphabet size must be in 1..{MAX_ALPHABET}, got {alphabet_size}")


def _check_symbols(symbols: np.ndarray, alphabet_size: int) -> np.ndarray:
    symbols = np.asarray(symbols)
    if symbols.ndim != 1 or not np.issubdtype(symbols.dtype, np.integer):
        raise InputShapeError(f"symbols must be a 1-D integer array, got {symbols.dtype} of shape {symbols.shape}")
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet_size):
        raise ConfigError(f"symbols must lie in 0..{alphabet_size - 1}")
    return symbols.astype(np.int64, copy=False)


def _check_coder(coder: str) -> None:
    if coder not in CODERS:
        raise SqueezelabError(f"coder must be one of {', '.join(CODERS)}, got {coder!r}")


def empirical_entropy_bits(symbols: np.ndarray, alphabet_size: int) -> float:
    """``n * H(p)`` with ``p`` the symbols' own frequencies: no i.i.d. code for this stream can be shorter."""
    _check_alphabet(alphabet_size)
    symbols = _check_symbols(symbols, alphabet_size)
    counts = np.bincount(symbols, minlength=alphabet_size)
    counts = counts[counts > 0].astype(np.float64)
    n = counts.sum()
    return float(-(counts * np.log2(counts / n)).sum()) if n else 0.0


def quantize_frequencies(symbols: np.ndarray, alphabet_size: int) -> np.ndarray:
    """The stored model: symbol counts as ``uint16``, scaled so the largest is 65535 when any count is larger.

    Only ratios matter to the coders. Every symbol that occurs keeps a frequency >= 1; absent symbols get 0.
    """
    _check_alphabet(alphabet_size)
    symbols = _check_symbols(symbols, alphabet_size)
    counts = np.bincount(symbols, minlength=alphabet_size)
    if counts.max(initial=0) > _FREQ_MAX:
        scaled = np.rint(counts * (_FREQ_MAX / counts.max())).astype(np.int64)
        counts = np.where(counts > 0, np.maximum(scaled, 1), 0)
    return counts.astype(FREQ_DTYPE)


def _only_symbol(freqs: np.ndarray) -> int | None:
    present = np.flatnonzero(freqs)
    return int(present[0]) if len(present) == 1 else None


def encode(symbols: np.ndarray, alphabet_size: int, coder: str) -> bytes:
    """Entropy-code ``symbols`` under the model of ``quantize_frequencies(symbols, alphabet_size)``."""
    _check_coder(coder)
    freqs = quantize_frequencies(symbols, alphabet_size)
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.size == 0 or _only_symbol(freqs) is not None:
        return b""
    probabilities = freqs.astype(np.float64)
    if coder == "ans":
        ans = _AnsCoder()
        ans.encode_reverse(symbols.astype(np.int32), _Categorical(probabilities, perfect=False))
        words = ans.get_compressed()
    else:
        encoder = constriction.symbol.QueueEncoder()
        tree = _huffman.EncoderHuffmanTree(probabilities)
        for symbol in symbols.tolist():  # constriction's symbol codes take one symbol per call
            encoder.encode_symbol(symbol, tree)
        words, _ = encoder.get_compressed_and_bitrate()
    return words.astype("<u4").tobytes()


def decode(data: bytes, freqs: np.ndarray, alphabet_size: int, n: int, coder: str) -> np.ndarray:
    """Decode ``n`` symbols (int64). ``data`` may be anything: every failure is a ``SqueezelabError``."""
    _check_coder(coder)
    _check_alphabet(alphabet_size)
    freqs = np.asarray(freqs)
    if freqs.shape != (alphabet_size,):
        raise SqueezelabError(f"frequency table has {freqs.size} entries, expected {alphabet_size}")
    if n < 0:
        raise SqueezelabError(f"symbol count cannot be negative, got {n}")
    only = _only_symbol(freqs)
    if n == 0 or only is not None:
        if data:
            raise SqueezelabError(f"{len(data)} coded bytes for a stream that needs none")
        return np.full(n, only or 0, dtype=np.int64)
    if not freqs.any():
        raise SqueezelabError(f"frequency table is empty but {n} symbols are coded")
    if len(data) % 4:
        raise SqueezelabError(f"coded stream is {len(data)} bytes, not a whole number of 32-bit words")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    probabilities = freqs.astype(np.float64)
    try:
        if coder == "ans":
            ans = _AnsCoder(words)
            symbols = ans.decode(_Categorical(probabilities, perfect=False), n).astype(np.int64)
            # Decoding exactly what was encoded returns the coder to its initial state.
            if not ans.is_empty():
                raise SqueezelabError(f"coded stream does not end after {n} symbols")
        else:
            if n > 8 * len(data):  # every Huffman code word is at least 1 bit long
                raise SqueezelabError(f"{len(data)} coded bytes cannot hold {n} Huffman-coded symbols")
            decoder = constriction.symbol.QueueDecoder(words)
            tree = _huffman.DecoderHuffmanTree(probabilities)
            symbols = np.fromiter((decoder.decode_symbol(tree) for _ in range(n)), dtype=np.int64, count=n)
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__  # constriction's messages span lines
        raise SqueezelabError(f"coded stream cannot be decoded ({reason})") from None
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet_size):
        raise SqueezelabError(f"decoded symbol outside the alphabet 0..{alphabet_size - 1}")
    return symbols


@dataclass(frozen=True)
class CodingStats:
    """How close a coded stream lands to its empirical entropy (coded bits count whole stored bytes)."""

    symbols: int
    coded_bits: int
    entropy_bits: float

    @property
    def ratio(self) -> float:
        if self.entropy_bits == 0:
            return 1.0 if self.coded_bits == 0 else float("inf")
        return self.coded_bits / self.entropy_bits


def coding_stats(symbols: np.ndarray, alphabet_size: int, data: bytes) -> CodingStats:
    return CodingStats(len(symbols), 8 * len(data), empirical_entropy_bits(symbols, alphabet_size))


def _check_tables(offsets: np.ndarray, lengths: np.ndarray, frequencies: np.ndarray, channels: int) -> None:
    if offsets.shape != (channels,) or lengths.shape != (channels,) or frequencies.shape[0] != channels:
        raise SqueezelabError(f"entropy tables cover {len(offsets)} channels, the latents have {channels}")
    if lengths.min(initial=1) < 1 or lengths.max(initial=0) >= frequencies.shape[1]:
        raise SqueezelabError("entropy tables are malformed: a range is empty or longer than its table")


def _channel_model(frequencies: np.ndarray, length: int):
    # Integer frequencies, exact in float64: encoder and decoder quantise the same numbers the same way.
    return _Categorical(frequencies[: length + 1].astype(np.float64), perfect=False)


def encode_latents(latents: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, frequencies: np.ndarray) -> bytes:
    """ANS-code integer latents (channels, n): channel ``c`` covers ``offsets[c] .. offsets[c] + lengths[c] - 1``
    with ``frequencies[c, :lengths[c]]``; ``frequencies[c, lengths[c]]`` is the escape of values outside it."""
    latents = np.asarray(latents, dtype=np.int64)
    offsets, lengths, frequencies = (np.asarray(a, dtype=np.int64) for a in (offsets, lengths, frequencies))
    _check_tables(offsets, lengths, frequencies, latents.shape[0])
    if np.abs(latents).max(initial=0) >= ESCAPE_RANGE // 2:
        raise SqueezelabError(f"a latent exceeds the coder's range of +-{ESCAPE_RANGE // 2 - 1}")
    symbols = latents - offsets[:, None]
    escaped = (symbols < 0) | (symbols >= lengths[:, None])
    symbols = np.where(escaped, lengths[:, None], symbols).astype(np.int32)
    ans = _AnsCoder()
    # A stack: what is pushed first is read last, so the escaped values go in before the channels they follow.
    raw = (latents[escaped] + ESCAPE_RANGE // 2).astype(np.int32)
    if raw.size:
        ans.encode_reverse(raw, _Uniform(ESCAPE_RANGE))
    for c in reversed(range(latents.shape[0])):
        ans.encode_reverse(symbols[c], _channel_model(frequencies[c], int(lengths[c])))
    return ans.get_compressed().astype("<u4").tobytes()


def decode_latents(
    data: bytes, offsets: np.ndarray, lengths: np.ndarray, frequencies: np.ndarray, n: int
) -> np.ndarray:
    """The (channels, n) int64 latents ``encode_latents`` coded; any failure is a ``SqueezelabError``."""
    offsets, lengths, frequencies = (np.asarray(a, dtype=np.int64) for a in (offsets, lengths, frequencies))
    _check_tables(offsets, lengths, frequencies, len(offsets))
    if len(data) % 4:
        raise SqueezelabError(f"coded latents are {len(data)} bytes, not a whole number of 32-bit words")
    ans = _AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    try:
        symbols = np.stack(
            [ans.decode(_channel_model(frequencies[c], int(lengths[c])), n) for c in range(len(offsets))]
        ).astype(np.int64)
        escaped = symbols == lengths[:, None]
        latents = symbols + offsets[:, None]
        count = int(escaped.sum())
        if count:
            latents[escaped] = ans.decode(_Uniform(ESCAPE_RANGE), count).astype(np.int64) - ESCAPE_RANGE // 2
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise SqueezelabError(f"coded latents cannot be decoded ({reason})") from None
    if not ans.is_empty():
        raise SqueezelabError(f"coded latents do not end after {n} values per channel")
    return latents
