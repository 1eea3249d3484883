"""Weight sharing (Deep Compression, stage 2): each layer's kept weights take one of 2**bits shared values.

Centroids start spread linearly over the layer's weight range, which Han et al. found best because it
keeps a few centroids for the rare large weights that matter most; 1-D k-means then refines them. A
shared layer is a ``SharedWeight`` parametrization, ``weight = codebook[indices]`` (zero where pruned), so
fine-tuning trains the codebook: autograd's gather backward sums the gradients of every weight in a
cluster, the paper's centroid update. That sum is then divided by the cluster's size, so a centroid moves
by its weights' mean gradient: a summed step grows with the cluster, and on squeezenet_cifar at 3 bits
(tens of thousands of weights per centroid) it took validation accuracy from 52% to chance in two epochs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from squeezelab.compress.prune import bake, layer_weight, prunable_layers
from squeezelab.errors import SqueezelabError


def check_bits(bits: int) -> None:
    if not (isinstance(bits, int) and 1 <= bits <= 16):
        raise SqueezelabError(f"bits must be an integer in 1..16, got {bits}")


def kmeans_1d(values: Tensor, k: int, iterations: int = 50) -> tuple[Tensor, Tensor]:
    """Cluster scalars into at most ``k`` centroids from a linear initialisation; return (codebook, assignment).

    In one dimension the nearest centroid is found by bucketing against the midpoints of the sorted
    centroids, so every iteration is O(n log k) with no n x k distance matrix. Centroids that end up with
    no weights are dropped: they would only cost codebook entries.
    """
    values = values.double()
    lo, hi = values.min(), values.max()
    centroids = torch.linspace(lo.item(), hi.item(), k, dtype=torch.float64, device=values.device)
    for _ in range(iterations):
        assignment = torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, values)
        counts = torch.zeros_like(centroids).index_add_(0, assignment, torch.ones_like(values))
        updated = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        converged = torch.equal(updated, centroids)
        centroids = updated
        if converged:
            break
    assignment = torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)
    used = torch.unique(assignment)
    remap = torch.full((k,), -1, dtype=torch.long, device=values.device)
    remap[used] = torch.arange(len(used), device=values.device)
    return centroids[used].float(), remap[assignment]


class _ScaleGradient(torch.autograd.Function):
    """Identity forward (so outputs stay bit-exact), gradient multiplied by ``scale`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor) -> Tensor:
        ctx.save_for_backward(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (scale,) = ctx.saved_tensors
        return grad * scale, None


class SharedWeight(nn.Module):
    """``weight = codebook[indices]``, with index -1 meaning a pruned (zero) weight."""

    def __init__(self, codebook: Tensor, indices: Tensor) -> None:
        super().__init__()
        self.codebook = nn.Parameter(codebook)
        self.register_buffer("indices", indices)
        kept = indices[indices >= 0]
        sizes = torch.bincount(kept, minlength=len(codebook)).clamp(min=1)
        self.register_buffer("inverse_sizes", 1.0 / sizes.to(codebook.dtype), persistent=False)

    def forward(self, original: Tensor) -> Tensor:
        # The stored original is ignored: the codebook is the only trainable state of a shared layer.
        codebook = _ScaleGradient.apply(self.codebook, self.inverse_sizes)
        values = torch.cat([codebook.new_zeros(1), codebook])
        return values[self.indices + 1].to(original.dtype)


def share_layer(module: nn.Module, bits: int) -> SharedWeight:
    weight = layer_weight(module)
    kept = weight != 0
    indices = torch.full(weight.shape, -1, dtype=torch.long, device=weight.device)
    if kept.any():
        codebook, assignment = kmeans_1d(weight[kept], 2**bits)
        indices[kept] = assignment
    else:
        codebook = weight.new_zeros(1)
    bake(module)
    shared = SharedWeight(codebook.to(weight.device), indices)
    parametrize.register_parametrization(module, "weight", shared, unsafe=True)
    return shared


def share_weights(model: nn.Module, conv_bits: int = 8, fc_bits: int = 5) -> dict[str, SharedWeight]:
    """Share the weights of every convolution (``conv_bits``) and fully connected layer (``fc_bits``)."""
    check_bits(conv_bits)
    check_bits(fc_bits)
    return {
        name: share_layer(module, fc_bits if isinstance(module, nn.Linear) else conv_bits)
        for name, module in prunable_layers(model).items()
    }


def shared_layers(model: nn.Module) -> dict[str, SharedWeight]:
    found = {}
    for name, module in prunable_layers(model).items():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations.weight:
                if isinstance(p, SharedWeight):
                    found[name] = p
    return found
