"""The weights registry: model cards as JSON files beside the weights they describe, shipped in the package.

Each ``files/<model>.<weights>.json`` card names its weights file (``.sqz`` or ``.safetensors``, next to it),
the file's sha256 and size, how to build and feed the model (registry kwargs, input shape, classes,
normalisation), what data it saw, the held-out figures with the command that measured them, and the recipe
that trained it. A card is data, so adding weights never touches code.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from squeezelab.errors import ConfigError, FileFormatError
from squeezelab.models import list_models, model_info

CARD_FORMAT = "squeezelab-weights-card"
CARD_VERSION = 1
WEIGHTS_DIR = Path(__file__).parent / "files"
REINSTALL = "reinstall squeezelab (pip install --force-reinstall .) to restore the shipped files"


@dataclass(frozen=True)
class WeightsCard:
    """One set of shipped weights and everything a user needs to trust and use it."""

    model: str
    name: str
    file: str
    sha256: str
    bytes: int
    kwargs: dict
    data: dict  # spec, image_size, grayscale, input_shape, classes, mean, std: what the loaders and inference read
    config: dict  # the training run's validation_split, seed and test-time views, so --split val is its held-out part
    trained_on: str
    metrics: dict
    metrics_command: str
    recipe: list[str]
    training: dict
    default: bool = False
    notes: str = ""
    path: Path = field(default=Path(), compare=False)  # the weights file itself

    @property
    def spec(self) -> str:
        return f"{self.model}:{self.name}"

    @property
    def card_path(self) -> Path:
        return self.path.with_suffix(".json")

    def read_verified(self) -> bytes:
        """The weights file's bytes, refused unless their sha256 is the card's (read once: no check-then-use gap)."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise FileFormatError(
                f"cannot read the weights file {self.path} ({exc.strerror or exc}); {REINSTALL}"
            ) from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise FileFormatError(
                f"the weights file {self.path} does not match the sha256 on its card (damaged or changed); {REINSTALL}"
            )
        return data


_FIELDS = {
    "model": str,
    "name": str,
    "file": str,
    "sha256": str,
    "bytes": int,
    "kwargs": dict,
    "data": dict,
    "config": dict,
    "trained_on": str,
    "metrics": dict,
    "metrics_command": str,
    "recipe": list,
    "training": dict,
}


def _read_card(path: Path) -> WeightsCard:
    broken = f"the weights card {path} is damaged"
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"{broken} ({exc}); {REINSTALL}") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise FileFormatError(f"{broken}: it is not a {CARD_FORMAT}; {REINSTALL}")
    if card.get("version") != CARD_VERSION:
        raise FileFormatError(
            f"{path} is a version {card.get('version')!r} card, this squeezelab reads version {CARD_VERSION}; "
            "install the squeezelab the card came with"
        )
    for key, kind in _FIELDS.items():
        if not isinstance(card.get(key), kind):
            raise FileFormatError(f"{broken}: {key!r} is missing or not a {kind.__name__}; {REINSTALL}")
    weights = path.parent / card["file"]
    if weights.parent != path.parent or weights.suffix not in (".sqz", ".safetensors"):
        raise FileFormatError(f"{broken}: its file {card['file']!r} is not a .sqz or .safetensors beside it")
    fields = {key: card[key] for key in _FIELDS}
    return WeightsCard(**fields, default=bool(card.get("default")), notes=str(card.get("notes", "")), path=weights)


@functools.cache
def _cards(root: Path) -> dict[tuple[str, str], WeightsCard]:
    cards = {}
    for path in sorted(root.glob("*.json")):
        card = _read_card(path)
        if (card.model, card.name) in cards:
            raise FileFormatError(f"two cards in {root} describe {card.spec}; {REINSTALL}")
        cards[card.model, card.name] = card
    return cards


def list_weights(model: str | None = None) -> list[WeightsCard]:
    """Every shipped set of weights (of one model, if given), sorted by model and weights name."""
    cards = _cards(WEIGHTS_DIR)
    return [card for (name, _), card in sorted(cards.items()) if model is None or name == model]


def get_weights(model: str, weights: str | bool = True) -> WeightsCard:
    """The card of ``model``'s weights ``weights``; ``True`` (or ``"default"``) is the model's default weights."""
    model_info(model)  # an unknown name is refused with the registry's own suggestions
    available = list_weights(model)
    if not available:
        raise ConfigError(f"{model} has no shipped weights; models with weights: {_with_weights()}")
    if weights is True or weights == "default":
        defaults = [card for card in available if card.default] or available
        return defaults[0]
    for card in available:
        if card.name == weights:
            return card
    names = ", ".join(card.name for card in available)
    raise ConfigError(f"{model} has no weights {weights!r}; it has: {names} (see 'squeezelab weights list')")


def _with_weights() -> str:
    return ", ".join(sorted({card.model for card in list_weights()})) or "none"


def parse_weights_spec(text: str) -> tuple[str, str] | None:
    """``("squeezenet_cifar", "cifar10")`` for ``"squeezenet_cifar:cifar10"``; None if ``text`` names no
    registered model before a colon (then it is a path). A file or folder of that name wins over the spec."""
    model, colon, weights = str(text).partition(":")
    if not colon or not weights or model not in list_models() or Path(text).exists():
        return None
    return model, weights


def verify_weights() -> list[tuple[WeightsCard, str | None]]:
    """Every card with None if its file matches its sha256, else the one-line reason it does not."""
    results = []
    for card in list_weights():
        try:
            card.read_verified()
            results.append((card, None))
        except FileFormatError as exc:
            results.append((card, str(exc)))
    return results
