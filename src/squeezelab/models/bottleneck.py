"""The learned parts of a transform codec that are not convolutions: GDN and the entropy bottleneck.

- ``GDN`` / inverse GDN (Ballé et al. 2016): a divisive normalisation whose denominator mixes the squares of
  all channels, the nonlinearity of the Ballé codecs.
- ``EntropyBottleneck`` (Ballé et al. 2018, appendix 6.1): a learned univariate density per channel, the
  "factorized prior". It gives the likelihood of quantised latents, hence the rate term of the training
  loss, and once trained it is turned into integer frequency tables (``update_tables``) that the entropy
  coder uses, so encoder and decoder build the same model from stored integers alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LIKELIHOOD_BOUND = 1e-9  # keeps log2 of a rounded-away tail finite
TABLE_PRECISION = 16  # each channel's frequencies sum to 2**16
TABLE_TAIL = 1e-9  # mass beyond a table's range, coded through the escape symbol
TABLE_REACH = 1024  # the largest |latent| a table may cover; beyond it values escape


class GDN(nn.Module):
    """``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``; ``inverse=True`` multiplies instead (IGDN).

    ``beta`` and ``gamma`` are kept non-negative by squaring, ``beta`` bounded away from zero so the division
    stays defined; initialised to identity-like (beta 1, gamma 0.1 I) as in the paper.
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1**0.5 * torch.eye(channels))

    def forward(self, x: Tensor) -> Tensor:
        beta = self.beta.pow(2) + 1e-6
        gamma = self.gamma.pow(2)
        norm = torch.sqrt(F.conv2d(x.pow(2), gamma[:, :, None, None], beta))
        return x * norm if self.inverse else x / norm


class EntropyBottleneck(nn.Module):
    """Per-channel cumulative densities ``c(x) = sigmoid(f_K(...f_1(x)))`` with monotone layers.

    ``f_k(x) = h_k(H_k x + b_k)`` with ``H_k`` positive (softplus) and ``h_k(x) = x + tanh(a_k) tanh(x)``
    (``tanh(a_k) > -1`` keeps it monotone), widths ``1 -> 3 -> 3 -> 3 -> 1``. A rounded latent ``v`` has
    likelihood ``c(v + 1/2) - c(v - 1/2)``.
    """

    variable_buffers = ("offsets", "lengths", "frequencies")  # shaped by the trained densities

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        self.channels = channels
        widths = (1, *filters, 1)
        scale = init_scale ** (1 / (len(widths) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for k in range(len(widths) - 1):
            fan_in, fan_out = widths[k], widths[k + 1]
            init = math.log(math.expm1(1 / scale / fan_out))  # softplus(init) = 1 / scale / fan_out
            self.matrices.append(nn.Parameter(torch.full((channels, fan_out, fan_in), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, fan_out, 1) - 0.5))
            if k < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, fan_out, 1)))
        # The coder's model: channel c covers latents offsets[c] .. offsets[c] + lengths[c] - 1, and
        # frequencies[c, lengths[c]] is its escape symbol. Empty until ``update_tables``.
        self.register_buffer("offsets", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("lengths", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("frequencies", torch.zeros(0, 0, dtype=torch.int32))
        self.tables_current = False  # False once a training step may have moved the densities

    def logits_cumulative(self, x: Tensor) -> Tensor:
        """``x`` (channels, 1, n) -> logits of ``c(x)``, same shape."""
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases, strict=True)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if k < len(self.factors):
                x = x + torch.tanh(self.factors[k]) * torch.tanh(x)
        return x

    def likelihood(self, values: Tensor) -> Tensor:
        """Likelihood of each (rounded or noisy) latent in ``values`` (N, C, H, W) under its channel's density."""
        n, c, h, w = values.shape
        flat = values.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self.logits_cumulative(flat - 0.5)
        upper = self.logits_cumulative(flat + 0.5)
        # Difference of sigmoids on the side of the median where they are not both close to 1: stable tails.
        sign = -torch.sign(lower + upper).detach()
        likelihood = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        likelihood = likelihood.clamp_min(LIKELIHOOD_BOUND)
        return likelihood.reshape(c, n, h, w).permute(1, 0, 2, 3)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(quantised latents, their likelihoods): additive uniform noise in training, rounding otherwise."""
        if self.training:
            self.tables_current = False
            y_hat = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        else:
            y_hat = torch.round(y)
        return y_hat, self.likelihood(y_hat)

    @torch.no_grad()
    def update_tables(self) -> None:
        """Integer frequency tables from the learned densities: each channel's range where ``c`` lies within
        ``TABLE_TAIL`` of 0 and 1, every value in it at least frequency 1, the tails folded into an escape."""
        grid = torch.arange(-TABLE_REACH, TABLE_REACH + 1, dtype=torch.float32)
        edges = torch.sigmoid(
            self.logits_cumulative(torch.cat([grid - 0.5, grid[-1:] + 0.5]).expand(self.channels, 1, -1))
        )
        edges = edges[:, 0].double()  # (C, 2 * reach + 2): c at every half-integer of the grid
        lows, lengths, tables = [], [], []
        for cdf in edges:
            inside = torch.nonzero((cdf[1:] > TABLE_TAIL) & (cdf[:-1] < 1 - TABLE_TAIL)).flatten()
            first, last = (int(inside[0]), int(inside[-1])) if len(inside) else (TABLE_REACH, TABLE_REACH)
            pmf = cdf[first + 1 : last + 2] - cdf[first : last + 1]
            escape = cdf[first] + (1 - cdf[last + 1])
            lows.append(first - TABLE_REACH)
            tables.append(quantize_pmf(torch.cat([pmf, escape.reshape(1)])))
            lengths.append(len(pmf))
        width = max(len(t) for t in tables)
        self.offsets = torch.tensor(lows, dtype=torch.int32)
        self.lengths = torch.tensor(lengths, dtype=torch.int32)
        self.frequencies = torch.stack([F.pad(t, (0, width - len(t))) for t in tables])
        self.tables_current = True

    @property
    def has_tables(self) -> bool:
        return len(self.lengths) == self.channels

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        # Saved weights always carry the tables of their own densities. Loaded tables are kept as they are,
        # never recomputed: a decoder elsewhere, in its own floating point, could shift a frequency by one and
        # derail the decoding (and the weights' fingerprint, taken over the state dict, would change). A model
        # built on the meta device, to be filled from a file, has no densities to tabulate yet.
        if not self.tables_current and not any(p.is_meta for p in self.parameters()):
            self.update_tables()
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # The tables' shapes depend on the trained densities: take them from the stored weights.
        for name in self.variable_buffers:
            stored = state_dict.get(prefix + name)
            if stored is not None:
                setattr(self, name, torch.empty_like(stored))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.tables_current = self.has_tables


def quantize_pmf(pmf: Tensor, precision: int = TABLE_PRECISION) -> Tensor:
    """Integer frequencies summing to exactly ``2**precision``, each at least 1, proportional to ``pmf``."""
    total = 2**precision
    if len(pmf) > total:
        raise ValueError(f"{len(pmf)} symbols do not fit a {precision}-bit table")
    freqs = torch.clamp(torch.round(pmf / pmf.sum() * (total - len(pmf))), min=0).long() + 1
    # Rounding leaves the sum off by a few: settle the difference on the most frequent symbol, which has room.
    freqs[torch.argmax(freqs)] += total - int(freqs.sum())
    return freqs.int()
