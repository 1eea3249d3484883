"""The options that make steps faster (channels-last, torch.compile), and the preset that trains with them all."""

import math

import pytest
import torch

from squeezelab.data import BatchTransform, load_dataset
from squeezelab.models import create_model
from squeezelab.train import TrainConfig, Trainer, fit, preset


def _small_model(options):
    torch.manual_seed(0)
    return create_model("squeezenet_cifar", num_classes=10, in_chans=1, **options)  # digits: 1 channel


def test_channels_last_training_keeps_the_format_and_learns_the_same(digits, tiny_squeezenet):
    run = dict(epochs=1, batch_size=64, verbose=0)
    plain = fit(_small_model(tiny_squeezenet), digits, **run)
    model = _small_model(tiny_squeezenet)
    channels_last = fit(model, digits, channels_last=True, **run)
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    # The same arithmetic in another order: rounding differs, so trajectories drift apart slowly.
    assert channels_last.epochs[0]["train_loss"] == pytest.approx(plain.epochs[0]["train_loss"], rel=1e-2)


def test_transform_gives_channels_last_batches():
    transform = BatchTransform((0.5,) * 3, (0.5,) * 3, channels_last=True)
    x = transform(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), train=False)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_compile_option_trains_through_torch_compile(digits, tiny_squeezenet):
    splits = digits
    trainer = Trainer(
        _small_model(tiny_squeezenet), splits, TrainConfig(compile=True, epochs=1), run_dir=None, verbose=0
    )
    assert isinstance(trainer.train_model, torch._dynamo.eval_frame.OptimizedModule)
    assert trainer.train_model._orig_mod is trainer.model  # checkpoints save the plain module's weights


def test_fast_cifar10_preset_trains_with_all_its_options(tiny_squeezenet):
    cfg = preset("fast-cifar10")
    compute, ev = cfg.compute, cfg.evaluation
    assert compute.bf16 and compute.channels_last and ev.tta_flip and cfg.augment.alternate_flip
    assert cfg.run.model_kwargs["batch_norm"] and ev.tta_translate and cfg.optim.lookahead is False
    assert all(size < 32 for size in cfg.augment.low_res)
    assert cfg.sched.time_schedule and cfg.sched.max_time == 30 * 60  # the budget: 30 minutes of training
    digits = load_dataset("digits", image_size=32, progress=False)  # CIFAR's size: the ramp's sizes are downscales
    full = create_model(cfg.run.model, **cfg.run.model_kwargs)
    assert sum(p.numel() for p in full.parameters()) == 939_722  # the limit: 1M
    assert full(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    small = {**cfg.run.model_kwargs, **tiny_squeezenet}
    history = fit(cfg.run.model, digits, cfg, epochs=3, batch_size=64, lr=0.05, model_kwargs=small, verbose=0)
    assert math.isfinite(history.epochs[-1]["val_loss"])
    assert history.epochs[-1]["val_acc1"] > 0.2  # chance is 0.1
    assert history.epochs[-1]["lr"] == 0.0  # three epochs are far inside 30 minutes: they complete the schedule
