"""Magnitude pruning (Deep Compression, stage 1): keep the largest weights, hold the rest at zero.

Masks are ``torch.nn.utils.parametrize`` parametrizations, so a pruned model stays a plain ``nn.Module``
that any training loop can fine-tune: the pruned weights read as zero in every forward pass and their
gradients are zero, whatever the optimizer does to the stored originals.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from squeezelab.errors import SqueezelabError

PRUNABLE = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers whose weights Deep Compression prunes and shares: convolutions and fully connected layers."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


def layer_weight(module: nn.Module) -> Tensor:
    """The weight as the network sees it (masked or shared), without the parametrization's bookkeeping."""
    return module.weight.detach()


class Mask(nn.Module):
    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.mask


def check_density(density: float) -> None:
    if not (isinstance(density, (int, float)) and 0 < density <= 1):
        raise SqueezelabError(f"density must be in (0, 1], got {density}")


def magnitude_masks(model: nn.Module, density: float, scope: str = "layer") -> dict[str, Tensor]:
    """Masks keeping the ``density`` largest-magnitude weights of every layer, or of all layers together.

    Weights already pruned stay pruned: they are zero, and zero never outranks a kept weight.
    """
    check_density(density)
    layers = prunable_layers(model)
    weights = {name: layer_weight(m).abs() for name, m in layers.items()}
    if scope == "layer":
        return {name: _top_mask(w, math.ceil(density * w.numel())) for name, w in weights.items()}
    if scope == "global":
        everything = torch.cat([w.flatten() for w in weights.values()])
        keep = math.ceil(density * everything.numel())
        threshold = torch.topk(everything, keep, sorted=True).values[-1]
        return {name: (w >= threshold) & (w > 0) for name, w in weights.items()}
    raise SqueezelabError(f"pruning scope must be 'layer' or 'global', got {scope!r}")


def _top_mask(magnitude: Tensor, keep: int) -> Tensor:
    flat = torch.zeros(magnitude.numel(), dtype=torch.bool, device=magnitude.device)
    flat[torch.topk(magnitude.flatten(), keep, sorted=False).indices] = True
    return flat.view_as(magnitude) & (magnitude > 0)


def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> nn.Module:
    """Mask each named layer's weight; a weight pruned before stays pruned."""
    layers = prunable_layers(model)
    for name, mask in masks.items():
        module = layers[name]
        if parametrize.is_parametrized(module, "weight"):
            for old in module.parametrizations.weight:
                if isinstance(old, Mask):
                    mask = mask & old.mask.bool()
        bake(module)
        with torch.no_grad():
            module.weight.mul_(mask)
        parametrize.register_parametrization(module, "weight", Mask(mask.to(module.weight.device)))
    return model


def bake(module: nn.Module) -> None:
    """Replace a parametrized weight by its current value, as a plain parameter."""
    if parametrize.is_parametrized(module, "weight"):
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)


def bake_all(model: nn.Module) -> nn.Module:
    for module in prunable_layers(model).values():
        bake(module)
    return model


def prune_schedule(density: float, steps: int) -> list[float]:
    """Densities of iterative pruning: a geometric walk from 1 to ``density`` in ``steps`` equal ratios.

    Han et al. prune, retrain and prune again; removing the same fraction of the survivors at every step
    keeps each step's damage alike.
    """
    check_density(density)
    if steps < 1:
        raise SqueezelabError(f"pruning steps must be at least 1, got {steps}")
    return [density ** ((i + 1) / steps) for i in range(steps)]


def model_density(model: nn.Module) -> float:
    """Fraction of non-zero weights over the prunable layers."""
    layers = prunable_layers(model).values()
    kept = sum(int(torch.count_nonzero(layer_weight(m))) for m in layers)
    total = sum(layer_weight(m).numel() for m in layers)
    return kept / max(total, 1)
