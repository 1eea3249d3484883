"""Fold batch norm into the convolution before it: one layer fewer at inference, and no BN in a compressed file.

In eval mode ``BN(conv(x))`` is a convolution with weight ``w * s`` and bias ``beta + (b - mean) * s``, where
``s = gamma / sqrt(var + eps)`` per output channel. Folded, each channel keeps one fp16 bias instead of four
fp16 BN values plus its share of the coded weights, and a pruned (zero) weight stays zero, so folding after
pruning keeps the sparsity pattern that the entropy coder stores.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from squeezelab.errors import ConfigError
from squeezelab.models.registry import create_model, resolved_options


def foldable(model: nn.Module) -> bool:
    """Whether ``model`` is a registered model built with ``batch_norm=True``: what ``fold_batch_norm`` takes."""
    spec = getattr(model, "squeezelab_spec", None)
    return spec is not None and bool(resolved_options(spec).get("batch_norm"))


def _conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Every convolution, in registration order, with the BatchNorm registered right after it (or None)."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    pairs = []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            following = layers[i + 1] if i + 1 < len(layers) else None
            pairs.append((layer, following if isinstance(following, nn.BatchNorm2d) else None))
    return pairs


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """The registered model rebuilt with ``batch_norm=False`` and every BN folded into its convolution.

    The result computes what ``model`` computes in eval mode (up to float rounding). ``model`` must be built
    by ``create_model`` with a ``batch_norm`` option; its other layers (squeeze_ae's linear code maps) are
    copied as they are.
    """
    if not foldable(model):
        raise ConfigError("fold_batch_norm takes a registered model built with batch_norm=True")
    spec = model.squeezelab_spec
    device = next(model.parameters()).device
    plain = create_model(spec["name"], **{**spec["kwargs"], "batch_norm": False}).to(device)
    pairs = _conv_bn_pairs(model)
    targets = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    others = [m for m in _layers_with_parameters(model) if not isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    other_targets = [m for m in _layers_with_parameters(plain) if not isinstance(m, nn.Conv2d)]
    same_layers = len(others) == len(other_targets) and all(
        isinstance(a, type(b))
        for a, b in zip(others, other_targets, strict=True)  # a pruned layer subclasses its own
    )
    if len(pairs) != len(targets) or not same_layers:
        raise ConfigError(f"{spec['name']} without batch norm is not the same network with conv biases")
    with torch.no_grad():
        for source, target in zip(others, other_targets, strict=True):
            for name, param in target.named_parameters(recurse=False):
                param.copy_(getattr(source, name))  # as the network sees it, also when pruning parametrizes it
        for (conv, bn), target in zip(pairs, targets, strict=True):
            weight = conv.weight.detach()  # as the network sees it, also when pruning parametrizes it
            bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(weight.shape[0])
            if bn is not None:
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                weight = weight * scale.view(-1, *[1] * (weight.dim() - 1))
                bias = bn.bias + (bias - bn.running_mean) * scale
            target.weight.copy_(weight)
            target.bias.copy_(bias)
    return plain.train(model.training)


def _layers_with_parameters(model: nn.Module) -> list[nn.Module]:
    """Layers that hold parameters, a pruned one included (its weight then lives in a ParametrizationList)."""
    return [
        m
        for m in model.modules()
        if not isinstance(m, parametrize.ParametrizationList)
        and (parametrize.is_parametrized(m) or next(m.parameters(recurse=False), None) is not None)
    ]


def for_inference(model: nn.Module) -> nn.Module:
    """``model`` for eval-mode inference: batch norm folded into its convolutions, channels-last on the CPU.

    oneDNN's CPU convolutions run NHWC natively: in eval mode that made squeezenet1_1 1.8x faster at
    224x224 (batch 1) and 2.2x at 32x32 (batch 256), squeeze_ae 1.8x and alexnet
    1.1-1.3x (docs/journal/benchmarks-history.md).
    The first convolution converts the NCHW input. Models without convolutions are unchanged (2-D weights
    have no such format, and dense_ae measured the same either way), as are CUDA models: not measured.
    A model built with ``batch_norm=True`` comes back as a new, BN-free model that computes the same.
    """
    if foldable(model) and not model.training:
        model = fold_batch_norm(model)
    if all(p.device.type == "cpu" for p in model.parameters()):
        model.to(memory_format=torch.channels_last)
    return model
