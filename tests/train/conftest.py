"""Data and a trained run that several training tests share: loaded and trained once per session."""

import pytest

from squeezelab.data import load_dataset
from squeezelab.train import fit


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", image_size=16, progress=False)


@pytest.fixture(scope="session")
def tiny_squeezenet():
    """squeezenet_cifar options small enough for a test to train in seconds."""
    return {"stem_channels": 16, "base_e": 32, "incr_e": 16, "stages": (1, 1, 2)}


@pytest.fixture(scope="session")
def small_squeezenet(tiny_squeezenet):
    """The same with BatchNorm, as fast-cifar10."""
    return {**tiny_squeezenet, "batch_norm": True}


@pytest.fixture(scope="session")
def trained_classifier(digits, small_squeezenet, tmp_path_factory):
    """A run directory of that model trained on the digits: a teacher, or a checkpoint to fine-tune."""
    run = tmp_path_factory.mktemp("trained") / "run"
    options = dict(epochs=6, batch_size=64, optimizer="sgd", lr=0.05, schedule="onecycle", verbose=0)
    history = fit("squeezenet_cifar", digits, model_kwargs=small_squeezenet, run_dir=run, **options)
    assert max(history.history["val_acc1"]) > 0.8
    return run
