"""Fine-tuning: a run that starts from the weights of a trained run of the same model."""

import json

import pytest
import torch

from squeezelab.errors import SqueezelabError
from squeezelab.inference import open_checkpoint
from squeezelab.models import create_model
from squeezelab.train import TrainConfig, Trainer, fit
from squeezelab.train.prepare import as_splits

OPTIONS = dict(batch_size=64, optimizer="sgd", lr=0.05, schedule="onecycle", verbose=0)


def test_the_model_starts_from_the_checkpoints_weights(digits, small_squeezenet, trained_classifier):
    cfg = TrainConfig(data="digits", image_size=16, model_kwargs=small_squeezenet, init_from=str(trained_classifier))
    fresh = create_model("squeezenet_cifar", in_chans=1, num_classes=10, **small_squeezenet)
    trainer = Trainer(fresh, as_splits(digits, cfg.dataset, progress=False), cfg, None, verbose=0)
    saved = open_checkpoint(trained_classifier).model.state_dict()
    loaded = trainer.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[name], loaded[name]) for name in saved)


def test_a_fine_tuned_run_begins_where_its_checkpoint_ended(digits, small_squeezenet, trained_classifier, tmp_path):
    best = json.loads((trained_classifier / "best.json").read_text())["metrics"]["val_acc1"]
    options = {**OPTIONS, "model_kwargs": small_squeezenet, "lr": 0.005, "epochs": 1}
    tuned = fit("squeezenet_cifar", digits, init_from=str(trained_classifier), **options)
    scratch = fit("squeezenet_cifar", digits, **options)
    assert tuned.history["val_acc1"][0] > best - 0.05
    assert tuned.history["val_acc1"][0] > scratch.history["val_acc1"][0] + 0.3
    fit("squeezenet_cifar", digits, init_from=str(trained_classifier), run_dir=tmp_path, **options)
    assert json.loads((tmp_path / "config.json").read_text())["init_from"] == str(trained_classifier)


def test_a_checkpoint_of_another_model_is_a_user_error(digits, small_squeezenet, trained_classifier):
    with pytest.raises(SqueezelabError, match="init_from: checkpoint not found: /nonexistent/run"):
        fit("squeezenet_cifar", digits, epochs=1, init_from="/nonexistent/run", verbose=0)
    wider = {**small_squeezenet, "base_e": 48}
    with pytest.raises(SqueezelabError, match="start from a checkpoint of the same model and options"):
        fit("squeezenet_cifar", digits, epochs=1, model_kwargs=wider, init_from=str(trained_classifier), verbose=0)
