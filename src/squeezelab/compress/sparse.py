"""Sparse positions as relative index gaps with filler entries (Deep Compression's CSR variant, Han et al.).

The kept weights of a flattened tensor become a list of entries ``(gap, symbol)``. An entry lies ``gap + 1``
positions after the previous one (the first counts from position -1), so a gap fits in ``gap_bits`` bits. A
jump longer than ``2**gap_bits`` is bridged by filler entries, each jumping the maximum ``2**gap_bits`` and
holding ``pad_symbol`` (a zero weight). Zeros after the last entry need no entries: the tensor's size is known.
"""

from __future__ import annotations

import numpy as np

from squeezelab.errors import ConfigError, InputShapeError, SqueezelabError

MAX_GAP_BITS = 16


def check_gap_bits(gap_bits: int) -> None:
    if not 1 <= gap_bits <= MAX_GAP_BITS:
        raise SqueezelabError(f"gap bits must be in 1..{MAX_GAP_BITS}, got {gap_bits}")


def sparse_encode(
    values: np.ndarray, positions: np.ndarray, gap_bits: int, pad_symbol: int
) -> tuple[np.ndarray, np.ndarray]:
    """(gaps, symbols) for the weights ``values`` at the sorted flat ``positions``, fillers included."""
    check_gap_bits(gap_bits)
    values = np.asarray(values, dtype=np.int64)
    positions = np.asarray(positions, dtype=np.int64)
    if values.ndim != 1 or values.shape != positions.shape:
        raise InputShapeError(f"values {values.shape} and positions {positions.shape} must be equal-length 1-D arrays")
    jumps = np.diff(positions, prepend=-1)
    if jumps.size and jumps.min() < 1:
        raise ConfigError("positions must be non-negative, sorted and distinct")
    span = 2**gap_bits
    fillers = (jumps - 1) // span
    last = np.cumsum(fillers + 1) - 1  # each weight's own entry comes after its fillers
    n_entries = int(last[-1]) + 1 if last.size else 0
    gaps = np.full(n_entries, span - 1, dtype=np.int64)
    gaps[last] = jumps - fillers * span - 1
    symbols = np.full(n_entries, pad_symbol, dtype=np.int64)
    symbols[last] = values
    return gaps, symbols


def sparse_decode(
    gaps: np.ndarray, symbols: np.ndarray, gap_bits: int, pad_symbol: int, numel: int
) -> tuple[np.ndarray, np.ndarray]:
    """(positions, values) of the non-filler entries; entries past ``numel`` are a ``SqueezelabError``."""
    check_gap_bits(gap_bits)
    gaps = np.asarray(gaps, dtype=np.int64)
    symbols = np.asarray(symbols, dtype=np.int64)
    if gaps.ndim != 1 or gaps.shape != symbols.shape:
        raise SqueezelabError(f"{gaps.size} gaps for {symbols.size} sparse entries")
    if gaps.size and (gaps.min() < 0 or gaps.max() >= 2**gap_bits):
        raise SqueezelabError(f"a gap lies outside 0..{2**gap_bits - 1}")
    positions = np.cumsum(gaps + 1) - 1
    if positions.size and positions[-1] >= numel:
        raise SqueezelabError(f"sparse entries run past the end of the tensor ({positions[-1]} >= {numel})")
    kept = symbols != pad_symbol
    return positions[kept], symbols[kept]
