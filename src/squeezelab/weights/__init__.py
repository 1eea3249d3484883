"""Pretrained weights shipped in the package, sha256-checked, each with a model card (see ``registry``)."""

from squeezelab.weights.load import create_model, open_pretrained
from squeezelab.weights.package import package_weights
from squeezelab.weights.registry import (
    WEIGHTS_DIR,
    WeightsCard,
    get_weights,
    list_weights,
    parse_weights_spec,
    verify_weights,
)

__all__ = [
    "WEIGHTS_DIR",
    "WeightsCard",
    "create_model",
    "get_weights",
    "list_weights",
    "open_pretrained",
    "package_weights",
    "parse_weights_spec",
    "verify_weights",
]
