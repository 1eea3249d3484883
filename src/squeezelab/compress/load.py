"""A ``.sqz`` file back into a working model."""

from __future__ import annotations

import os

import torch
from torch import nn

from squeezelab.checkpoint import load_weights
from squeezelab.compress.container import SqzModel, decode_state_dict, read_sqz
from squeezelab.errors import SqueezelabError
from squeezelab.models import create_model


def load_sqz(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """(model in eval mode, metadata with its ``model`` spec); outputs equal the shared-weight model's exactly."""
    return model_from_sqz(read_sqz(path), str(path))


def model_from_sqz(sqz: SqzModel, source: str) -> tuple[nn.Module, dict]:
    """``load_sqz`` for a container already parsed (e.g. from bytes whose hash was checked); ``source`` names it."""
    name, kwargs = sqz.model["name"], sqz.model["kwargs"]
    try:
        # The file is untrusted: build on the meta device first, so absurd kwargs cost no memory.
        with torch.device("meta"):
            skeleton = create_model(name, **kwargs)
    except (SqueezelabError, TypeError, ValueError) as exc:
        raise SqueezelabError(f"{source} names a model that cannot be built ({exc})") from None
    state = decode_state_dict(sqz)
    load_weights(skeleton, {k: v.to("meta") for k, v in state.items()}, source)
    model = create_model(name, **kwargs)
    load_weights(model, state, source)
    return model.eval(), {**sqz.meta, "model": sqz.model}
