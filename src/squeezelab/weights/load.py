"""Shipped weights into working models: ``create_model(name, weights=...)`` and the ``MODEL:WEIGHTS`` spec."""

from __future__ import annotations

from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import nn

from squeezelab import models
from squeezelab.checkpoint import Checkpoint, check_data_meta, load_weights
from squeezelab.compress.container import sqz_from_bytes
from squeezelab.compress.load import model_from_sqz
from squeezelab.errors import ConfigError, FileFormatError
from squeezelab.weights.registry import REINSTALL, WeightsCard, get_weights


def _build(card: WeightsCard) -> nn.Module:
    data = card.read_verified()
    if card.path.suffix == ".sqz":
        model, _ = model_from_sqz(sqz_from_bytes(data, str(card.path)), str(card.path))
        if model.squeezelab_spec != {"name": card.model, "kwargs": card.kwargs}:
            raise FileFormatError(f"{card.path} holds another model than its card describes; {REINSTALL}")
    else:
        try:
            state = load_safetensors(data)
        except SafetensorError as exc:
            raise FileFormatError(f"{card.path} is not a readable safetensors file ({exc}); {REINSTALL}") from None
        model = load_weights(models.create_model(card.model, **card.kwargs), state, str(card.path))
    check_data_meta(card.data, model, card.card_path)
    model.weights_card = card  # the card travels with the model, as timm's pretrained_cfg does
    return model.eval()


def open_pretrained(model: str, weights: str | bool = True) -> Checkpoint:
    """Shipped weights as a ``Checkpoint`` (on the CPU, eval mode), as a run directory would give them."""
    card = get_weights(model, weights)
    meta = {"model": {"name": card.model, "kwargs": card.kwargs}, "data": card.data, "weights": card.spec}
    if card.config:  # the held-out split (--split val) of the run that trained them
        meta["config"] = card.config
    return Checkpoint(_build(card), meta, card.path)


def create_model(name: str, weights: str | bool | None = None, **kwargs) -> nn.Module:
    """A registered model by name, untrained, or with ``weights`` (a name from ``list_weights``, or True for
    the model's default) ready for inference, its card at ``model.weights_card``.

    Options that change the architecture cannot go with weights trained for another one: ``kwargs`` given
    with ``weights`` must be the card's own.
    """
    if weights is None or weights is False:
        return models.create_model(name, **kwargs)
    card = get_weights(name, weights)
    differ = sorted(key for key, value in kwargs.items() if key not in card.kwargs or card.kwargs[key] != value)
    if differ:
        raise ConfigError(
            f"{card.spec} was trained with {', '.join(f'{k}={card.kwargs.get(k)!r}' for k in differ)}; "
            f"drop {', '.join(differ)} to use these weights, or create the model without weights"
        )
    return _build(card)
