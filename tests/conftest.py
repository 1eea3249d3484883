from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from squeezelab.checkpoint import save_checkpoint
from squeezelab.models import create_model


@pytest.fixture
def make_checkpoint(tmp_path):
    """make_checkpoint(model name, input_shape, classes, mean, std, **kwargs) saves an untrained model as a run."""

    def make(name, input_shape, classes=(), mean=None, std=None, **kwargs) -> Path:
        torch.manual_seed(0)
        model = create_model(name, **kwargs)
        channels = input_shape[0]
        meta = {
            "epoch": 0,
            "model": model.squeezelab_spec,
            "data": {
                "spec": "digits",
                "image_size": input_shape[1],
                "grayscale": channels == 1,
                "input_shape": list(input_shape),
                "classes": list(classes),
                "mean": list(mean or [0.5] * channels),
                "std": list(std or [0.25] * channels),
            },
        }
        run = tmp_path / f"run-{name}"
        run.mkdir()
        save_checkpoint(run / "best", model, meta)
        return run

    return make


@pytest.fixture
def write_images(tmp_path):
    """write_images(folder, names, size, mode) writes random PNGs; returns their paths."""

    def write(folder: Path, names, size=40, mode="RGB") -> list[Path]:
        rng = np.random.default_rng(0)
        paths = []
        for name in names:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            shape = (size, size, 3) if mode == "RGB" else (size, size)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
            paths.append(path)
        return paths

    return write
