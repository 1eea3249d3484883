"""``compare --weights NAME``: the comparison measured on the shipped weights, in seconds and without training.

Each model of the comparison whose label is a registry model with shipped weights ``NAME`` is loaded from its
card and measured exactly as a trained contender would be, on the images every card held out (or the
dataset's own test split). The cards must agree on that split and on the input, so that no model is scored
on images another one trained on; the epochs each card records go into the table, and a model trained for
fewer epochs than the others is marked cut short, so its claims are not measured.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from squeezelab.data import load_dataset, split_validation
from squeezelab.errors import ConfigError, SqueezelabError
from squeezelab.experiments.compare import (
    CompareConfig,
    machine_description,
    measure_cost,
    prepare_out,
    write_results,
)
from squeezelab.experiments.measure import measure_autoencoder, measure_classifier
from squeezelab.models import list_models
from squeezelab.train import resolve_device
from squeezelab.weights import list_weights, open_pretrained

# The comparison's options that only training uses; given with --weights they would be silently ignored.
_TRAINING_ONLY = ("epochs", "max_time", "code_size", "sweep", "image_size", "grayscale")


def compare_shipped(cfg: CompareConfig, out: Path, overwrite: bool = False, verbose: int = 1) -> dict:
    """Measure and report the shipped weights ``cfg.weights`` of every model of the comparison that has them."""
    started = time.perf_counter()
    untouched = CompareConfig(cfg.kind, cfg.data)
    ignored = [name for name in _TRAINING_ONLY if getattr(cfg, name) != getattr(untouched, name)]
    if ignored:
        flags = ", ".join("--" + name.replace("_", "-") for name in ignored)
        raise ConfigError(
            f"{flags} set(s) how models train; --weights {cfg.weights} measures trained ones: drop {flags}"
        )
    cards = _cards(cfg)
    prepare_out(out, list(cards), overwrite)
    first = next(iter(cards.values()))
    for card in cards.values():
        if _split_and_input(card) != _split_and_input(first):
            raise SqueezelabError(
                f"{card.spec} and {first.spec} were trained on different splits or inputs "
                f"({_split_and_input(card)} vs {_split_and_input(first)}), so no images are unseen by both; "
                "leave one out with --models"
            )
    splits = load_dataset(
        cfg.data, image_size=first.data["image_size"], grayscale=first.data["grayscale"], progress=verbose == 1
    )
    held_out = first.config.get("validation_split")
    if not held_out:
        raise SqueezelabError(f"{first.spec} trained on all of its data: no held-out images to compare on")
    seed = first.config["seed"]
    pool, test = split_validation(splits.train, held_out, seed)
    test_source = f"held out: {held_out:.0%} of the training set (seed {seed}), which no card's weights trained on"
    if splits.test is not None:
        test, test_source = splits.test, "the dataset's own test split"
    device = resolve_device(cfg.device)
    out.mkdir(parents=True, exist_ok=True)
    most_epochs = max(int(card.training.get("epochs") or 0) for card in cards.values())
    rows, samples = {}, {}
    for label, card in cards.items():
        ckpt = open_pretrained(card.model, card.name)
        if tuple(test.images.shape[1:]) != ckpt.input_shape:
            raise SqueezelabError(
                f"{card.spec} expects images of shape {ckpt.input_shape}, "
                f"{splits.spec} has {tuple(test.images.shape[1:])}"
            )
        model = ckpt.model.to(device)
        measure = measure_autoencoder if cfg.kind == "autoencoders" else measure_classifier
        measured, samples[label] = measure(model, ckpt.transform, pool, test, device, cfg.seed)
        epochs = int(card.training.get("epochs") or 0)
        cut_short = epochs < most_epochs
        rows[label] = {
            **measure_cost(model, label, pool),
            "epochs_planned": most_epochs,
            "status": "ok",
            "epochs": epochs,
            "cut_short": cut_short,
            "trained": f"{epochs}, shipped" + (f" (others: {most_epochs})" if cut_short else ""),
            "train_seconds": card.training.get("seconds"),
            "weights": card.spec,
            **measured,
        }
    results = {
        "title": f"{cfg.kind.capitalize()} on {splits.spec}, shipped weights {cfg.weights}",
        "kind": cfg.kind,
        "summary": (
            f"The shipped weights '{cfg.weights}' of {', '.join(cards)}, measured without training; each model's "
            "recipe is on its card (squeezelab weights recipe MODEL:" + cfg.weights + ")."
        ),
        "data": {
            "spec": splits.spec,
            "train": len(pool),
            "test": len(test),
            "test_source": test_source,
            "image_shape": list(test.images.shape[1:]),
        },
        "machine": {"description": machine_description(), "device": str(device)},
        "budget": {"epochs": most_epochs},
        "config": asdict(cfg),
        "recipe": {card.spec: card.recipe for card in cards.values()},
    }
    return write_results(results, cfg.kind, out, rows, {}, samples, test, started)


def _split_and_input(card) -> dict:
    return {
        "validation_split": card.config.get("validation_split"),
        "seed": card.config.get("seed"),
        "image_size": card.data.get("image_size"),
        "grayscale": card.data.get("grayscale"),
        "input_shape": list(card.data.get("input_shape") or ()),
    }


def _cards(cfg: CompareConfig) -> dict:
    """Label -> card for the contenders that are registry models with weights ``cfg.weights``."""
    shipped = {card.model: card for card in list_weights() if card.name == cfg.weights}
    plain = [c for c in cfg.contenders() if c.label in list_models()]
    if cfg.models:
        missing = [c.label for c in cfg.contenders() if c.label not in shipped]
        if missing:
            raise ConfigError(
                f"no shipped weights {cfg.weights!r} for {', '.join(missing)}; "
                f"models with them: {', '.join(sorted(shipped)) or 'none'} (squeezelab weights list)"
            )
    cards = {c.label: shipped[c.label] for c in plain if c.label in shipped}
    if len(cards) < 1:
        raise ConfigError(
            f"no model of compare {cfg.kind} has shipped weights {cfg.weights!r}; see squeezelab weights list"
        )
    return cards
