import pytest
import torch

from squeezelab.checkpoint import Checkpoint
from squeezelab.codec.api import _loaded
from squeezelab.models import create_model


@pytest.fixture
def tiny_codec():
    """tiny_codec(name, in_chans, seed): an untrained small codec, loaded as a run's would be."""

    def make(name="squeeze_codec", in_chans=3, seed=0):
        torch.manual_seed(seed)
        model = create_model(name, in_chans=in_chans, channels=8, latent_channels=6)
        return _loaded(Checkpoint(model, {"model": model.squeezelab_spec}, None), 0, f"tiny {name}")

    return make
