import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squeezelab.compress.sparse import sparse_decode, sparse_encode
from squeezelab.entropy import (
    MAX_ALPHABET,
    coding_stats,
    decode,
    decode_latents,
    empirical_entropy_bits,
    encode,
    encode_latents,
    quantize_frequencies,
)
from squeezelab.errors import SqueezelabError

CODERS = ["ans", "huffman"]


def fuzz(examples: int) -> settings:
    # No deadline: a loaded CI machine makes single examples slow without anything being wrong.
    return settings(max_examples=examples, deadline=None)


def skewed(n: int, alphabet: int, seed: int, concentration: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(alphabet, n, p=rng.dirichlet(np.full(alphabet, concentration)))


def round_trip(symbols: np.ndarray, alphabet: int, coder: str) -> np.ndarray:
    data = encode(symbols, alphabet, coder)
    return decode(data, quantize_frequencies(symbols, alphabet), alphabet, len(symbols), coder)


@pytest.mark.parametrize("coder", CODERS)
@fuzz(60)  # 60 examples per coder
@given(
    alphabet=st.integers(1, 300),
    n=st.integers(0, 3000),
    seed=st.integers(0, 2**32 - 1),
    concentration=st.sampled_from([0.01, 0.3, 5.0]),
)
def test_round_trip_random_distributions(coder, alphabet, n, seed, concentration):
    symbols = skewed(n, alphabet, seed, concentration)
    decoded = round_trip(symbols, alphabet, coder)
    assert decoded.dtype == np.int64
    np.testing.assert_array_equal(decoded, symbols)


@pytest.mark.parametrize("coder", CODERS)
@pytest.mark.parametrize(
    "symbols, alphabet",
    [
        ([], 1),
        ([], 7),
        ([0, 0, 0], 1),
        ([3] * 50, 5),  # one distinct symbol: no Huffman tree is needed
        ([0, 1], 2),
        ([MAX_ALPHABET - 1, 0, MAX_ALPHABET - 1], MAX_ALPHABET),
    ],
)
def test_round_trip_edge_cases(coder, symbols, alphabet):
    symbols = np.array(symbols, dtype=np.int64)
    np.testing.assert_array_equal(round_trip(symbols, alphabet, coder), symbols)


@pytest.mark.parametrize("coder", CODERS)
def test_single_symbol_streams_cost_nothing(coder):
    assert encode(np.full(1000, 4), 9, coder) == b""
    assert encode(np.array([], dtype=np.int64), 9, coder) == b""


def test_frequency_table_is_small_and_keeps_rare_symbols():
    symbols = np.concatenate([np.zeros(200_000, dtype=np.int64), [2], np.full(70_000, 3)])
    freqs = quantize_frequencies(symbols, 5)
    assert freqs.dtype == np.dtype("<u2") and freqs.nbytes == 10
    assert freqs[0] == 65535 and freqs[1] == 0 and freqs[2] == 1 and freqs[4] == 0
    assert abs(freqs[3] / 65535 - 70_000 / 200_000) < 1e-4

    small = np.array([0, 0, 1, 4])
    np.testing.assert_array_equal(quantize_frequencies(small, 5), [2, 1, 0, 0, 1])  # small counts stay exact


def test_empirical_entropy():
    assert empirical_entropy_bits(np.tile(np.arange(4), 100), 4) == pytest.approx(800)
    assert empirical_entropy_bits(np.full(10, 2), 3) == 0
    assert empirical_entropy_bits(np.array([], dtype=np.int64), 3) == 0


def test_coded_sizes_against_entropy():
    # 100k symbols from a geometric-like, non-dyadic distribution over 64 cluster indices.
    rng = np.random.default_rng(0)
    p = 0.8 ** np.arange(64)
    symbols = rng.choice(64, 100_000, p=p / p.sum())
    ans = coding_stats(symbols, 64, encode(symbols, 64, "ans"))
    huffman = coding_stats(symbols, 64, encode(symbols, 64, "huffman"))
    assert ans.entropy_bits == pytest.approx(empirical_entropy_bits(symbols, 64))
    assert ans.symbols == 100_000
    assert 1 <= ans.ratio < 1.02
    assert huffman.coded_bits >= huffman.entropy_bits
    assert huffman.coded_bits <= huffman.entropy_bits + len(symbols) + 32  # at most 1 bit per symbol above
    assert ans.coded_bits < huffman.coded_bits


def test_low_entropy_stream_beats_one_bit_per_symbol_with_ans_only():
    symbols = (np.random.default_rng(1).random(20_000) < 0.02).astype(np.int64)
    ans = coding_stats(symbols, 2, encode(symbols, 2, "ans"))
    huffman = coding_stats(symbols, 2, encode(symbols, 2, "huffman"))
    assert ans.coded_bits < 0.2 * len(symbols) and ans.ratio < 1.05
    assert huffman.coded_bits >= len(symbols)


def test_encode_rejects_bad_input():
    with pytest.raises(SqueezelabError, match="coder"):
        encode(np.zeros(3, dtype=np.int64), 2, "zip")
    with pytest.raises(ValueError, match="0..1"):
        encode(np.array([0, 2]), 2, "ans")
    with pytest.raises(ValueError, match="alphabet"):
        encode(np.array([0]), 0, "ans")


@pytest.mark.parametrize("coder", CODERS)
def test_decode_rejects_malformed_streams(coder):
    freqs = np.array([5, 3, 1], dtype=np.uint16)
    good = encode(np.array([0, 1, 0, 2, 0]), 3, coder)
    cases = [
        (good[:-1], freqs, 5, "whole number"),
        (good, freqs[:2], 5, "entries"),
        (good, np.zeros(3, dtype=np.uint16), 5, "empty"),
        (good, np.array([0, 9, 0], dtype=np.uint16), 5, "needs none"),
        (good, freqs, -1, "negative"),
    ]
    for data, table, n, message in cases:
        with pytest.raises(SqueezelabError, match=message):
            decode(data, table, 3, n, coder)


def test_decode_rejects_streams_that_do_not_end_where_they_should():
    symbols = skewed(500, 6, seed=3)
    freqs = quantize_frequencies(symbols, 6)
    with pytest.raises(SqueezelabError, match="zero word"):
        decode(b"\x01\x00\x00\x00\x00\x00\x00\x00", freqs, 6, 10, "ans")
    with pytest.raises(SqueezelabError, match="does not end"):
        decode(encode(symbols, 6, "ans"), freqs, 6, 400, "ans")
    with pytest.raises(SqueezelabError, match="cannot hold"):
        decode(b"\xff" * 4, freqs, 6, 33, "huffman")
    with pytest.raises(SqueezelabError, match="cannot be decoded"):
        decode(b"\x00" * 4, np.array([1, 1, 1, 1, 0, 0], dtype=np.uint16), 6, 20, "huffman")  # 2 bits each


@pytest.mark.parametrize("coder", CODERS)
@fuzz(150)  # 150 examples per coder
@given(
    data=st.binary(max_size=64),
    freqs=st.lists(st.integers(0, 65535), min_size=1, max_size=40),
    n=st.integers(0, 600),
)
def test_decode_of_arbitrary_bytes_fails_cleanly(coder, data, freqs, n):
    freqs = np.array(freqs, dtype=np.uint16)
    try:
        symbols = decode(data, freqs, len(freqs), n, coder)
    except SqueezelabError:
        return
    assert symbols.shape == (n,) and (symbols < len(freqs)).all() and (symbols >= 0).all()


def test_sparse_encode_matches_the_paper_scheme():
    # 3-bit gaps: jumps of 1, 3 and 17 positions; the last needs two fillers of 8.
    gaps, symbols = sparse_encode(np.array([5, 6, 7]), np.array([0, 3, 20]), gap_bits=3, pad_symbol=9)
    np.testing.assert_array_equal(gaps, [0, 2, 7, 7, 0])
    np.testing.assert_array_equal(symbols, [5, 6, 9, 9, 7])
    positions, values = sparse_decode(gaps, symbols, 3, 9, numel=21)
    np.testing.assert_array_equal(positions, [0, 3, 20])
    np.testing.assert_array_equal(values, [5, 6, 7])


@fuzz(200)  # 200 examples
@given(
    numel=st.integers(0, 20_000),
    density=st.floats(0, 1),
    gap_bits=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_sparse_round_trip(numel, density, gap_bits, seed):
    rng = np.random.default_rng(seed)
    positions = np.flatnonzero(rng.random(numel) < density**3)  # cubed: long runs of zeros need fillers
    values = rng.integers(0, 16, len(positions))
    gaps, symbols = sparse_encode(values, positions, gap_bits, pad_symbol=16)
    assert len(gaps) == len(symbols) >= len(positions)
    assert gaps.min(initial=0) >= 0 and gaps.max(initial=0) < 2**gap_bits
    jumps = np.diff(positions, prepend=-1)
    assert len(gaps) == len(positions) + ((jumps - 1) // 2**gap_bits).sum()
    decoded_positions, decoded_values = sparse_decode(gaps, symbols, gap_bits, 16, numel)
    np.testing.assert_array_equal(decoded_positions, positions)
    np.testing.assert_array_equal(decoded_values, values)


def test_sparse_rejects_bad_input():
    with pytest.raises(ValueError, match="sorted"):
        sparse_encode(np.array([1, 2]), np.array([4, 4]), 4, 0)
    with pytest.raises(ValueError, match="sorted"):
        sparse_encode(np.array([1]), np.array([-1]), 4, 0)
    with pytest.raises(SqueezelabError, match="gap bits"):
        sparse_encode(np.array([1]), np.array([1]), 17, 0)
    with pytest.raises(SqueezelabError, match="past the end"):
        sparse_decode(np.array([3, 3]), np.array([1, 1]), 2, 0, numel=7)
    with pytest.raises(SqueezelabError, match="outside"):
        sparse_decode(np.array([4]), np.array([1]), 2, 0, numel=8)
    with pytest.raises(SqueezelabError, match="gaps for"):
        sparse_decode(np.array([0, 1]), np.array([1]), 2, 0, numel=8)


def _laplace_tables(channels: int, reach: int):
    values = np.arange(-reach, reach + 1)
    pmf = np.exp(-np.abs(values) / 2.0)
    freqs = np.rint(pmf / pmf.sum() * (2**16 - 200)).astype(np.int64) + 1
    table = np.zeros((channels, len(values) + 2), dtype=np.int64)
    table[:, : len(values)] = freqs
    table[:, len(values)] = 2**16 - freqs.sum()  # the escape
    return np.full(channels, -reach), np.full(channels, len(values)), table


def test_latents_round_trip_with_escapes_in_both_directions():
    rng = np.random.default_rng(0)
    latents = np.rint(rng.laplace(0, 2, (3, 500))).astype(np.int64)
    latents[0, 3], latents[2, 499], latents[1, 0] = 400, -32000, 9
    offsets, lengths, freqs = _laplace_tables(3, 8)
    data = encode_latents(latents, offsets, lengths, freqs)
    assert np.array_equal(decode_latents(data, offsets, lengths, freqs, 500), latents)


def test_coded_latents_cost_their_information_content_under_the_tables():
    rng = np.random.default_rng(1)
    latents = np.clip(np.rint(rng.laplace(0, 2, (2, 4000))), -8, 8).astype(np.int64)
    offsets, lengths, freqs = _laplace_tables(2, 8)
    bits = -np.log2(freqs[0, latents + 8] / 2**16).sum()
    coded = 8 * len(encode_latents(latents, offsets, lengths, freqs))
    assert bits <= coded <= bits * 1.002 + 64


def test_corrupted_latents_are_refused_or_decode_to_something_else_never_an_exception():
    rng = np.random.default_rng(2)
    latents = np.rint(rng.laplace(0, 2, (2, 64))).astype(np.int64)
    offsets, lengths, freqs = _laplace_tables(2, 8)
    data = bytearray(encode_latents(latents, offsets, lengths, freqs))
    for _ in range(50):
        broken = bytearray(data)
        broken[rng.integers(len(broken))] ^= 1 << rng.integers(8)
        try:
            decode_latents(bytes(broken), offsets, lengths, freqs, 64)
        except SqueezelabError:
            pass
    with pytest.raises(SqueezelabError, match="32-bit words"):
        decode_latents(bytes(data[:-1]), offsets, lengths, freqs, 64)
    with pytest.raises(SqueezelabError, match="cover 2 channels"):
        encode_latents(latents[:1], offsets, lengths, freqs)
