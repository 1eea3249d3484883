"""``fit`` and its Trainer: learning, run directories, exact resume, stopping rules and the batches it feeds."""

import json
import math

import pytest
import torch
from torch import nn

from squeezelab import load_model
from squeezelab.data import ImageDataset, split_validation
from squeezelab.models import create_model
from squeezelab.train import TrainConfig, Trainer, TrainingDiverged, create_model_for, evaluate_split, fit
from squeezelab.train import trainer as trainer_module


def test_autoencoder_loss_goes_down(digits):
    history = fit("dense_ae", digits, epochs=15, batch_size=32, lr=1e-2, verbose=0)
    losses = history.history["val_loss"]
    assert len(losses) == 15
    train, val = split_validation(digits.train, 0.1, 0)
    mean_image = train.images.float().div(255).mean(0)
    predicting_the_mean = (val.images.float() / 255 - mean_image).pow(2).mean().item()
    assert losses[-1] < 0.5 * predicting_the_mean
    assert history.history["val_psnr"][-1] > history.history["val_psnr"][0]


def test_classifier_learns_digits(digits, tiny_squeezenet):
    history = fit("squeezenet_cifar", digits, epochs=6, batch_size=32, lr=2e-3, model_kwargs=tiny_squeezenet, verbose=0)
    assert history.history["val_acc1"][-1] > 0.5  # chance is 0.1
    assert history.history["val_loss"][-1] < history.history["val_loss"][0]


def test_model_is_shaped_for_the_data(digits, tiny_squeezenet):
    fit("squeezenet_cifar", digits, epochs=1, model_kwargs=tiny_squeezenet, verbose=0)
    model = create_model("squeeze_ae", img_size=16)
    history = fit(model, digits, epochs=1, verbose=0)
    assert history.epochs[0]["val_mse"] > 0


def test_same_seed_same_history(digits, tiny_squeezenet):
    run = dict(epochs=2, batch_size=64, model_kwargs=tiny_squeezenet, crop_padding=2, flip=True, verbose=0)
    first = fit("squeezenet_cifar", digits, **run).history
    second = fit("squeezenet_cifar", digits, **run).history
    for key in ("train_loss", "val_loss", "val_acc1"):
        assert first[key] == second[key]


def test_run_directory_contents(digits, tmp_path):
    history = fit("dense_ae", digits, epochs=2, run_dir=tmp_path / "run", verbose=0)
    run = tmp_path / "run"
    names = {p.name for p in run.iterdir()}
    assert {
        "config.json",
        "metrics.jsonl",
        "last.safetensors",
        "last.json",
        "last.optim.safetensors",
        "best.safetensors",
        "best.json",
    } <= names
    # The curves are drawn from metrics.jsonl by the layer above (tests/cli/test_cli_train.py checks the PNG).
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [epoch["epoch"] for epoch in epochs] == [1, 2]
    assert epochs == history.epochs and all({"train_loss", "val_loss", "lr", "time"} <= set(e) for e in epochs)
    sidecar = json.loads((run / "last.json").read_text())
    assert sidecar["model"] == {"name": "dense_ae", "kwargs": {"in_chans": 1, "img_size": [16, 16]}}
    assert sidecar["data"]["spec"] == "digits" and sidecar["data"]["classes"] == [str(d) for d in range(10)]
    assert sidecar["epoch"] == 2 and history.run_dir == run
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*"))
    model = load_model(run)
    assert not model.training and model(torch.rand(2, 1, 16, 16)).shape == (2, 1, 16, 16)


def _interrupt_after(model: nn.Module, calls: int) -> None:
    """Make the model raise KeyboardInterrupt on its forward pass number ``calls + 1``, as Ctrl-C would."""
    count = iter(range(calls))

    def hook(module, args):
        if next(count, None) is None:
            raise KeyboardInterrupt

    model.register_forward_pre_hook(hook)


# An epoch is 26 training and 3 validation batches, so 30 forward calls stop inside epoch 2, and 65 inside
# epoch 3: with SWA over the last two epochs, after the average has begun, so the resumed run must restore it.
@pytest.mark.parametrize(
    "optimizer, lookahead, swa_share, stop_after",
    [("sgd", False, 0.0, 30), ("adam", False, 0.0, 30), ("sgd", True, 0.0, 30), ("sgd", False, 0.7, 65)],
)
def test_resume_gives_the_same_metrics_as_an_uninterrupted_run(
    digits, tmp_path, optimizer, lookahead, swa_share, stop_after, tiny_squeezenet
):
    config = TrainConfig(
        model_kwargs=tiny_squeezenet,
        epochs=3,
        batch_size=64,
        optimizer=optimizer,
        lookahead=lookahead,
        swa_share=swa_share,
        lr=0.01,
        schedule="cosine",
        warmup_epochs=1,
        crop_padding=2,
        flip=True,
    )
    straight = fit("squeezenet_cifar", digits, config, run_dir=tmp_path / "a", verbose=0)

    torch.manual_seed(config.run.seed)  # as fit() does before it builds a model by name
    model = create_model_for("squeezenet_cifar", tiny_squeezenet, digits.train)
    _interrupt_after(model, stop_after)
    with pytest.raises(KeyboardInterrupt):
        fit(model, digits, config, run_dir=tmp_path / "b", verbose=0)
    stopped = json.loads((tmp_path / "b" / "last.json").read_text())
    assert stopped["epoch"] == (2 if swa_share else 1) and stopped.get("average", False) == bool(swa_share)
    resumed = fit("squeezenet_cifar", digits, config, run_dir=tmp_path / "b", resume=True, verbose=0)

    for key in ("train_loss", "val_loss", "val_acc1", "lr"):
        assert resumed.history[key] == pytest.approx(straight.history[key], rel=1e-6, abs=1e-9)
    for name in ("last", "swa") if swa_share else ("last",):
        a, b = load_model(tmp_path / "a" / f"{name}.safetensors"), load_model(tmp_path / "b" / f"{name}.safetensors")
        for (key, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            torch.testing.assert_close(p, q, msg=f"{name}: {key}")


class FailAfter(nn.Module):
    """Stands in for a sigmoid; after ``calls`` forward passes it produces NaN or raises."""

    def __init__(self, calls: int, error: type[BaseException] | None = None) -> None:
        super().__init__()
        self.calls, self.error = calls, error

    def forward(self, x):
        self.calls -= 1
        if self.calls < 0:
            if self.error is not None:
                raise self.error()
            return x * float("nan")
        return torch.sigmoid(x)


def _dense_ae_failing_after(calls, error=None):
    model = create_model("dense_ae", img_size=16)
    model.decoder[-1] = FailAfter(calls, error)
    return model


def test_nan_loss_stops_and_keeps_last_good_checkpoint(digits, tmp_path):
    steps = math.ceil(len(digits.train) * 0.9 / 64) + math.ceil(len(digits.train) * 0.1 / 64)
    model = _dense_ae_failing_after(steps + 3)  # fails early in epoch 2
    with pytest.raises(TrainingDiverged, match="the loss became nan at epoch 2.*last good checkpoint"):
        fit(model, digits, epochs=5, batch_size=64, run_dir=tmp_path / "run", verbose=0)
    assert json.loads((tmp_path / "run" / "last.json").read_text())["epoch"] == 1
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_ctrl_c_keeps_checkpoint_and_prints_resume_command(digits, tmp_path, capsys):
    steps = math.ceil(len(digits.train) * 0.9 / 64) + math.ceil(len(digits.train) * 0.1 / 64)
    model = _dense_ae_failing_after(steps + 3, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(model, digits, epochs=5, batch_size=64, run_dir=tmp_path / "run", verbose=0)
    err = capsys.readouterr().err
    assert "the checkpoint of epoch 1 is kept" in err
    assert f"squeezelab train --resume {tmp_path / 'run'}" in err


def test_max_time_stops_between_batches(digits):
    history = fit("dense_ae", digits, epochs=50, max_time=1e-6, verbose=0)
    assert history.stop_reason == "max_time" and len(history.epochs) == 1


class _SteadyClock:
    """The trainer's clock, advancing 10 ms at every reading: a time budget then lasts the same number of steps
    however loaded the machine is."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.01
        return self.now


def test_a_time_keyed_run_ends_with_its_budget_and_a_complete_schedule(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "time", _SteadyClock())
    # An epoch cap far beyond what fits: the schedule is keyed to the second, not to the epochs.
    options = {"epochs": 100_000, "batch_size": 256, "schedule": "cosine", "time_schedule": True, "verbose": 0}
    history = fit("dense_ae", digits, max_time=1.0, lr=0.01, run_dir=tmp_path / "run", **options)
    assert history.stop_reason == "max_time" and 5 < len(history.epochs) < 100
    lrs, seconds = history.history["lr"], history.history["time"]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] > 0.009 and lrs[-1] == 0.0
    assert 1.0 <= seconds[-1] < 1.02
    # More time for the same run: it resumes at the share already spent of the new budget and decays again.
    resumed = fit("dense_ae", digits, max_time=2.0, lr=0.01, run_dir=tmp_path / "run", resume=True, **options)
    later = resumed.epochs[len(history.epochs) :]
    # (the logged rate is set at the epoch's last step, a clock reading before its logged time)
    expected = 0.01 * 0.5 * (1 + math.cos(math.pi * later[0]["time"] / 2.0))
    assert later[0]["lr"] == pytest.approx(expected, abs=2e-4) and expected > 0.003
    assert later[-1]["lr"] == 0.0 and 2.0 <= later[-1]["time"] < 2.02
    # On a machine fast enough to reach the epoch cap first, the schedule completes with the epochs instead.
    capped = fit("dense_ae", digits, **{**options, "epochs": 3}, max_time=1000.0, lr=0.01)
    assert capped.stop_reason == "completed" and capped.history["lr"][-1] == 0.0


def test_early_stopping_when_nothing_improves(digits):
    history = fit("dense_ae", digits, epochs=10, lr=1e-30, early_stopping=2, verbose=0)
    assert history.stop_reason == "early_stopping"
    assert len(history.epochs) == 3 and history.best_epoch == 1


def test_val_every_validates_every_nth_epoch_and_the_last(digits):
    history = fit("dense_ae", digits, epochs=5, val_every=2, verbose=0)
    assert [e["epoch"] for e in history.epochs if "val_loss" in e] == [2, 4, 5]
    assert history.best_epoch in (2, 4, 5)
    assert history.history["val_loss"][0] is None
    out_of_time = fit("dense_ae", digits, epochs=5, val_every=3, max_time=1e-9, verbose=0)
    assert len(out_of_time.epochs) == 1 and "val_loss" in out_of_time.epochs[0]  # the last, ended by the clock


def test_early_stopping_counts_validations(digits):
    history = fit("dense_ae", digits, epochs=12, lr=1e-30, val_every=2, early_stopping=2, verbose=0)
    assert history.stop_reason == "early_stopping"
    assert len(history.epochs) == 6 and history.best_epoch == 2


def test_contractive_training_for_any_autoencoder(digits):
    exact = fit("contractive_ae", digits, epochs=1, contractive_weight=0.1, verbose=0)
    estimated = fit("squeeze_ae", digits, epochs=1, contractive_weight=0.1, n_projections=2, verbose=0)
    assert exact.epochs[0]["train_loss"] > exact.epochs[0]["train_mse"] * 0  # trained, finite
    assert math.isfinite(estimated.epochs[0]["train_loss"])


def test_bf16_and_label_smoothing_run(digits, tiny_squeezenet):
    history = fit(
        "squeezenet_cifar",
        digits,
        epochs=1,
        bf16=True,
        label_smoothing=0.1,
        grad_clip=1.0,
        optimizer="adamw",
        weight_decay=0.05,
        model_kwargs=tiny_squeezenet,
        verbose=0,
    )
    assert math.isfinite(history.epochs[0]["val_loss"])


def test_cutout_reaches_the_training_batches_only(tiny_squeezenet):
    bright = ImageDataset(
        torch.full((64, 1, 16, 16), 200, dtype=torch.uint8), torch.arange(64) % 10, [str(i) for i in range(10)], "x"
    )
    seen = {True: [], False: []}
    model = create_model("squeezenet_cifar", num_classes=10, in_chans=1, **tiny_squeezenet)
    model.register_forward_pre_hook(lambda m, args: seen[m.training].append(args[0]))
    fit(model, bright, epochs=1, batch_size=16, cutout=6, normalize="none", validation_split=0.25, verbose=0)
    # Every pixel is bright: a black one is the cutout, a 6 x 6 square clipped by the border when near it.
    cut = torch.cat(seen[True])[:, 0] == 0
    assert len(cut) == 48 and cut.flatten(1).any(1).all()
    assert (cut.flatten(1).sum(1) <= 36).all() and (cut.flatten(1).sum(1) == 36).any()
    assert not (torch.cat(seen[False]) == 0).any()


def test_jpeg_folder_is_decoded_once_for_all_epochs(tmp_path, monkeypatch, tiny_squeezenet):
    import numpy as np
    from PIL import Image

    from squeezelab.data import folder as folder_module

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
                tmp_path / "images" / label / f"{i}.jpg"
            )
    decoded = []
    decode = folder_module.decode_image
    monkeypatch.setattr(folder_module, "decode_image", lambda *a, **k: decoded.append(1) or decode(*a, **k))
    history = fit(
        "squeezenet_cifar",
        f"folder:{tmp_path / 'images'}",
        epochs=3,
        batch_size=8,
        image_size=16,
        model_kwargs=tiny_squeezenet,
        verbose=0,
    )
    assert len(history.epochs) == 3
    assert len(decoded) == 24  # every file once, at load; no epoch decodes again


def test_validation_scores_a_batch_norm_model_folded_as_inference_runs_it(digits, small_squeezenet):
    torch.manual_seed(0)
    model = create_model("squeezenet_cifar", in_chans=1, **small_squeezenet)
    trainer = Trainer(model, digits, TrainConfig(epochs=1, batch_size=64, lr=2e-3), None, verbose=0)
    trainer.run()
    folded = trainer.evaluate(trainer.val_data, trainer.model)
    assert model.training  # scoring leaves the trained model as it was
    unfolded = evaluate_split(model, trainer.task, trainer.val_data, trainer.transform, 64, trainer.device)
    assert folded["acc1"] == unfolded["acc1"]
    assert folded["loss"] == pytest.approx(unfolded["loss"], rel=1e-4)


def test_alternating_flip_mirrors_each_image_once_in_every_two_epochs(digits, monkeypatch, tiny_squeezenet):
    indices, seen = [], []
    gather = trainer_module.gather_batch

    def recording_gather(images, labels, index, device):
        indices.append(index)
        return gather(images, labels, index, device)

    monkeypatch.setattr(trainer_module, "gather_batch", recording_gather)
    cfg = TrainConfig(epochs=2, batch_size=256, flip=True, alternate_flip=True, validation_split=0.1)
    model = create_model("squeezenet_cifar", in_chans=1, **tiny_squeezenet)
    trainer = Trainer(model, digits, cfg, None, verbose=0)
    assert not trainer.transform.flip  # the loop mirrors, not the random transform
    batch = trainer.task.batch

    def spy(model, images, labels, transform, train, *rest):
        if train:
            seen.append(images)
        return batch(model, images, labels, transform, train, *rest)

    monkeypatch.setattr(trainer.task, "batch", spy)
    trainer.run()
    steps = trainer.steps_per_epoch
    mirrored = torch.zeros(2, len(trainer.train_data), dtype=torch.bool)
    for step, (index, images) in enumerate(zip(indices, seen, strict=True)):
        plain = trainer.train_data.images[index]
        flipped = (images != plain).flatten(1).any(1)
        # Symmetric digits look the same mirrored, so only images that change count as evidence either way.
        assert torch.equal(images[flipped], plain[flipped].flip(-1))
        mirrored[step // steps, index] = flipped
    asymmetric = (trainer.train_data.images != trainer.train_data.images.flip(-1)).flatten(1).any(1)
    assert torch.equal(mirrored[0][asymmetric], trainer.flip_parity[asymmetric])
    assert torch.equal(mirrored[1][asymmetric], ~trainer.flip_parity[asymmetric])
