"""The contractive autoencoder (收缩自编码器; Rifai et al. 2011) and the Jacobian penalty.

Training adds ``weight * ||J_f(x)||_F^2`` to the reconstruction loss, where J_f is the Jacobian of the
encoder at x: codes that barely move under small input changes are robust to noise. For a sigmoid dense
encoder h = sigmoid(Wx + b) the norm has a closed form, ``sum_j (h_j (1 - h_j))^2 sum_i W_ji^2``;
for any other encoder ``jacobian_penalty`` estimates it from vector-Jacobian products.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from squeezelab.errors import ConfigError
from squeezelab.models.autoencoders import _FlatInputAutoencoder, _mlp
from squeezelab.models.registry import register_model


class ContractiveAutoencoder(_FlatInputAutoencoder):
    def __init__(
        self, in_chans: int, img_size: int | tuple[int, int], code_size: int, decoder_sizes: Sequence[int]
    ) -> None:
        super().__init__("contractive_ae", in_chans, img_size, code_size)
        self.encoder = nn.Linear(self.in_features, code_size)
        hidden = [code_size, *decoder_sizes]
        self.decoder = nn.Sequential(*_mlp(hidden), nn.Linear(hidden[-1], self.in_features), nn.Sigmoid())

    def encode(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.encoder(self._flatten(x)))

    def decode(self, code: Tensor) -> Tensor:
        return self._unflatten(self.decoder(code))

    def penalty(self, x: Tensor) -> Tensor:
        """Exact squared Frobenius norm of the encoder Jacobian, one value per sample, shape (N,)."""
        h = self.encode(x)
        row_norms = self.encoder.weight.pow(2).sum(1)  # sum_i W_ji^2 for each code unit j
        return (h * (1 - h)).pow(2) @ row_norms


@register_model("autoencoder", (1, 28, 28))
def contractive_ae(
    in_chans: int = 1,
    img_size: int | tuple[int, int] = 28,
    code_size: int = 32,
    decoder_sizes: Sequence[int] = (),
) -> ContractiveAutoencoder:
    """Contractive autoencoder: sigmoid dense encoder with an exact Jacobian-norm penalty."""
    return ContractiveAutoencoder(in_chans, img_size, code_size, decoder_sizes)


def jacobian_penalty(
    encode_fn: Callable[[Tensor], Tensor],
    x: Tensor,
    n_projections: int = 8,
    create_graph: bool | None = None,
) -> Tensor:
    """Unbiased estimate of ||J||_F^2 per sample for any encoder, shape (N,).

    Projects the Jacobian onto ``n_projections`` random orthonormal directions of the code space
    (||J||_F^2 = (k / n) E[sum_i ||J^T q_i||^2] for a k-dimensional code); all directions go through one
    batched backward pass. With ``n_projections >= k`` the directions span the code space and the result
    is exact. The result is differentiable (``create_graph``) whenever gradients are enabled, so it can be
    added to a training loss.
    """
    if n_projections < 1:
        raise ConfigError(f"n_projections must be >= 1, got {n_projections}")
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        code = encode_fn(x).flatten(1)
        n, k = code.shape
        if n_projections >= k:
            directions, scale = torch.eye(k, dtype=code.dtype, device=code.device), 1.0
        else:
            gaussian = torch.randn(k, n_projections, dtype=code.dtype, device=code.device)
            directions, scale = torch.linalg.qr(gaussian).Q.T, k / n_projections
        grad_outputs = directions[:, None, :].expand(-1, n, k)
        (grads,) = torch.autograd.grad(code, x, grad_outputs, create_graph=create_graph, is_grads_batched=True)
    return grads.pow(2).flatten(2).sum(2).sum(0) * scale
