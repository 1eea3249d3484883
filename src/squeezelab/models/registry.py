"""One registry for every model, in the style of timm: builders register themselves by name.

``create_model("squeezenet1_1", num_classes=10)`` is the only way the rest of the package makes a model,
so the CLI, checkpoints and reports can refer to any model by its name and keyword arguments alone.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from squeezelab.errors import SqueezelabError, UnknownModelError

ModelKind = Literal["classifier", "autoencoder", "codec"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: ModelKind
    builder: Callable[..., nn.Module]
    default_input: tuple[int, int, int]  # (channels, height, width) the model is designed for
    description: str


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(kind: ModelKind, default_input: tuple[int, int, int]):
    """Register a builder under its function name; its docstring's first line describes it."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} is registered twice")
        doc = inspect.getdoc(builder) or ""
        _REGISTRY[name] = ModelInfo(name, kind, builder, default_input, doc.split("\n")[0])
        return builder

    return decorate


def list_models(kind: ModelKind | None = None) -> list[str]:
    return sorted(name for name, info in _REGISTRY.items() if kind is None or info.kind == kind)


def model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else f"known models: {', '.join(list_models())}"
        raise UnknownModelError(f"unknown model {name!r}; {hint}") from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name; keyword arguments go to its builder."""
    builder = model_info(name).builder
    accepted = inspect.signature(builder).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        options = ", ".join(p for p in accepted)
        raise SqueezelabError(f"{name} does not take {', '.join(unknown)}; its options are: {options}")
    model = builder(**kwargs)
    # Checkpoints record how to rebuild the model: its registry name and the arguments it was built with.
    model.squeezelab_spec = {"name": name, "kwargs": dict(kwargs)}
    return model


def resolved_options(spec: dict) -> dict:
    """Every option of a recorded spec's model: the builder's defaults updated with the recorded kwargs."""
    params = inspect.signature(model_info(spec["name"]).builder).parameters
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **spec.get("kwargs", {})}


def same_model(a: dict | None, b: dict | None) -> bool:
    """Whether two recorded specs build the same model: an option given at its default equals leaving it out."""
    if not a or not b or a.get("name") != b.get("name") or a.get("name") not in _REGISTRY:
        return a == b

    # Compared as JSON stores them: a checkpoint's tuples come back as lists.
    def resolved(spec: dict) -> str:
        return json.dumps(resolved_options(spec), sort_keys=True, default=str)

    return resolved(a) == resolved(b)
