import copy
import json
import math

import pytest
import torch
from torch import nn

from squeezelab.data import BatchTransform, DataSplits, ImageDataset, load_dataset, split_validation
from squeezelab.errors import SqueezelabError
from squeezelab.models import create_model
from squeezelab.train import TrainConfig, TrainingDiverged, fit, load_model
from squeezelab.train import trainer as trainer_module
from squeezelab.train.trainer import (
    Trainer,
    _schedule,
    create_model_for,
    evaluate_split,
    make_optimizer,
    resolve_device,
)

SMALL_SQUEEZENET = {"stem_channels": 16, "base_e": 32, "incr_e": 16, "stages": (1, 1, 2)}


def test_autoencoder_loss_goes_down(digits):
    history = fit("dense_ae", digits, epochs=15, batch_size=32, lr=1e-2, verbose=0)
    losses = history.history["val_loss"]
    assert len(losses) == 15
    train, val = split_validation(digits.train, 0.1, 0)
    mean_image = train.images.float().div(255).mean(0)
    predicting_the_mean = (val.images.float() / 255 - mean_image).pow(2).mean().item()
    assert losses[-1] < 0.5 * predicting_the_mean
    assert history.history["val_psnr"][-1] > history.history["val_psnr"][0]


def test_classifier_learns_digits(digits):
    history = fit(
        "squeezenet_cifar", digits, epochs=6, batch_size=32, lr=2e-3, model_kwargs=SMALL_SQUEEZENET, verbose=0
    )
    assert history.history["val_acc1"][-1] > 0.5  # chance is 0.1
    assert history.history["val_loss"][-1] < history.history["val_loss"][0]


def test_model_is_shaped_for_the_data(digits):
    fit("squeezenet_cifar", digits, epochs=1, model_kwargs=SMALL_SQUEEZENET, verbose=0)
    model = create_model("squeeze_ae", img_size=16)
    history = fit(model, digits, epochs=1, verbose=0)
    assert history.epochs[0]["val_mse"] > 0


def test_same_seed_same_history(digits):
    run = dict(epochs=2, batch_size=64, model_kwargs=SMALL_SQUEEZENET, crop_padding=2, flip=True, verbose=0)
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
        "plots",
    } <= names
    assert (run / "plots" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
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
    digits, tmp_path, optimizer, lookahead, swa_share, stop_after
):
    config = TrainConfig(
        model_kwargs=SMALL_SQUEEZENET,
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

    torch.manual_seed(config.seed)  # as fit() does before it builds a model by name
    model = create_model_for("squeezenet_cifar", SMALL_SQUEEZENET, digits.train)
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


def test_a_time_keyed_ramp_follows_the_share_of_the_budget_spent():
    digits24 = load_dataset("digits", image_size=24, progress=False)
    model = create_model("squeezenet_cifar", in_chans=1, **SMALL_SQUEEZENET)
    cfg = TrainConfig(low_res=(16, 20), low_res_share=0.5, max_time=100.0, time_schedule=True)
    trainer = Trainer(model, digits24, cfg, None, verbose=0)
    sizes = []
    for spent in (0.0, 0.24, 0.25, 0.49, 0.5, 0.9):
        trainer.share_done = spent
        sizes.append(trainer.epoch_transform(epoch=0).size)  # the epoch number does not count
    assert sizes == [16, 16, 20, 20, None, None]  # None: the images' own size


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


def test_bf16_and_label_smoothing_run(digits):
    history = fit(
        "squeezenet_cifar",
        digits,
        epochs=1,
        bf16=True,
        label_smoothing=0.1,
        grad_clip=1.0,
        optimizer="adamw",
        weight_decay=0.05,
        model_kwargs=SMALL_SQUEEZENET,
        verbose=0,
    )
    assert math.isfinite(history.epochs[0]["val_loss"])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"validation_split": 1.5}, "validation_split must be in"),
        ({"loss": "mse"}, "a classifier trains with cross_entropy"),
        ({"optimizer": "rmsprop"}, "unknown optimizer"),
        ({"monitor": "val_bogus"}, "monitor 'val_bogus' is not a metric"),
        ({"alternate_flip": True}, "alternate_flip says how to flip: add --flip"),
        ({"low_res": 0}, "low_res sizes must be >= 1"),
        ({"low_res": (16, 0)}, "low_res sizes must be >= 1"),
        ({"low_res": 16, "low_res_share": 1.5}, "low_res_share in \\[0, 1\\]"),
        ({"cutout": -1}, "cutout must be >= 0"),
        ({"crop_padding": -1}, "crop_padding must be >= 0"),
        ({"crop_padding_mode": "edge"}, "crop_padding_mode must be zeros or reflect"),
        ({"crop_padding": 16, "crop_padding_mode": "reflect"}, "crop_padding must be below its side \\(16\\)"),
        ({"max_time": 0}, "max_time must be positive"),
        ({"val_every": 0}, "val_every must be >= 1"),
        ({"time_schedule": True}, "time_schedule follows the time budget: add --max-time"),
        ({"time_schedule": True, "max_time": 9, "schedule": "step"}, "the step schedule counts epochs"),
        ({"time_schedule": True, "max_time": 9, "lookahead": True}, "lookahead counts steps"),
        ({"swa_share": 1.0}, "swa_share must be in \\[0, 1\\)"),
        ({"swa_share": 0.3, "swa_lr": 0}, "swa_lr must be positive"),
        ({"swa_share": 0.3, "lookahead": True}, "choose one of swa_share and lookahead"),
        ({"nonsense": 1}, "unknown training option"),
    ],
)
def test_bad_options_are_user_errors(digits, options, message):
    with pytest.raises(SqueezelabError, match=message):
        fit(
            "squeezenet_cifar",
            digits,
            epochs=options.pop("epochs", 1),
            model_kwargs=SMALL_SQUEEZENET,
            verbose=0,
            **options,
        )


def test_progressive_resizing_and_cutout_are_refused_for_autoencoders(digits):
    with pytest.raises(SqueezelabError, match="low_res applies to classifiers only"):
        fit("dense_ae", digits, epochs=1, low_res=8, verbose=0)
    with pytest.raises(SqueezelabError, match="cutout applies to classifiers only"):
        fit("dense_ae", digits, epochs=1, cutout=4, verbose=0)


def test_cutout_reaches_the_training_batches_only():
    bright = ImageDataset(
        torch.full((64, 1, 16, 16), 200, dtype=torch.uint8), torch.arange(64) % 10, [str(i) for i in range(10)], "x"
    )
    seen = {True: [], False: []}
    model = create_model("squeezenet_cifar", num_classes=10, in_chans=1, **SMALL_SQUEEZENET)
    model.register_forward_pre_hook(lambda m, args: seen[m.training].append(args[0]))
    fit(model, bright, epochs=1, batch_size=16, cutout=6, normalize="none", validation_split=0.25, verbose=0)
    # Every pixel is bright: a black one is the cutout, a 6 x 6 square clipped by the border when near it.
    cut = torch.cat(seen[True])[:, 0] == 0
    assert len(cut) == 48 and cut.flatten(1).any(1).all()
    assert (cut.flatten(1).sum(1) <= 36).all() and (cut.flatten(1).sum(1) == 36).any()
    assert not (torch.cat(seen[False]) == 0).any()


def _no_budget() -> float:
    raise AssertionError("a step-keyed schedule must not read the clock")


def test_schedules():
    cfg = TrainConfig(epochs=10, schedule="onecycle")
    f = _schedule(cfg, steps_per_epoch=10, share_done=_no_budget)
    assert f(0) == pytest.approx(1 / 30) and f(29) == pytest.approx(1.0) and f(99) == pytest.approx(1 / 70)
    cosine = _schedule(cfg.updated(schedule="cosine", warmup_epochs=1), 10, _no_budget)
    assert cosine(9) == pytest.approx(1.0) and cosine(55) == pytest.approx(0.5) and cosine(100) == pytest.approx(0)
    step = _schedule(cfg.updated(schedule="step", step_size=3, gamma=0.5), 10, _no_budget)
    assert [step(s) for s in (0, 29, 30, 60)] == [1.0, 1.0, 0.5, 0.25]
    assert _schedule(cfg.updated(schedule="none"), 10, _no_budget)(50) == 1.0


def test_time_keyed_schedules_follow_the_share_of_the_budget_spent():
    spent = [0.0]
    cfg = TrainConfig(epochs=1000, schedule="onecycle", warmup_epochs=1, max_time=60.0, time_schedule=True)
    f = _schedule(cfg, steps_per_epoch=10, share_done=lambda: spent[0])
    # The warm-up counts steps; after it the factor falls linearly with the time spent, to zero when it is up.
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5)
    spent[0] = 0.25
    assert f(9) == pytest.approx(0.75) and f(5000) == pytest.approx(0.75)
    spent[0] = 1.3  # the last step may overrun the budget
    assert f(6000) == 0.0
    cosine = _schedule(cfg.updated(schedule="cosine", warmup_epochs=0), 10, lambda: spent[0])
    spent[0] = 0.5
    assert cosine(123) == pytest.approx(0.5)
    no_warmup = _schedule(cfg.updated(warmup_epochs=0), 10, lambda: spent[0])
    spent[0] = 0.15
    assert no_warmup(7) == pytest.approx(0.5)  # the one-cycle split in time: 30% up, 70% down


def test_swa_schedule_decays_to_the_averaging_rate_and_holds_it():
    cfg = TrainConfig(epochs=10, lr=0.2, schedule="onecycle", warmup_epochs=1, swa_share=0.4, swa_lr=0.05)
    f = _schedule(cfg, steps_per_epoch=10, share_done=_no_budget)
    # The one-cycle runs its course in the first 60 steps, falling from 1 to 0.25 (0.05 / 0.2), not to 0.
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(35) == pytest.approx(0.25 + 0.75 * 0.5) and f(59) == pytest.approx(0.25, abs=0.02)
    assert [f(s) for s in (60, 80, 99)] == [0.25, 0.25, 0.25]
    spent = [0.0]
    timed = _schedule(cfg.updated(max_time=100.0, time_schedule=True), 10, lambda: spent[0])
    spent[0] = 0.3  # half of the 60% the one-cycle has
    assert timed(500) == pytest.approx(0.25 + 0.75 * 0.5)
    spent[0] = 0.61
    assert timed(600) == 0.25
    default = _schedule(TrainConfig(epochs=10, lr=0.2, schedule="cosine", swa_share=0.5), 10, _no_budget)
    assert default(99) == pytest.approx(0.25)  # a quarter of the peak rate unless swa_lr says otherwise


def test_swa_averages_the_epochs_of_its_phase_and_recomputes_batch_norm(digits, tmp_path, monkeypatch):
    snapshots = []
    train_epoch = Trainer.train_epoch

    def recording(self, epoch):
        result = train_epoch(self, epoch)
        snapshots.append({k: v.clone() for k, v in self.model.state_dict().items()})
        return result

    monkeypatch.setattr(Trainer, "train_epoch", recording)
    torch.manual_seed(0)
    model = create_model_for("squeezenet_cifar", {**SMALL_SQUEEZENET, "batch_norm": True}, digits.train)
    options = dict(epochs=4, batch_size=64, optimizer="sgd", lr=0.05, schedule="cosine", monitor="val_acc1")
    history = fit(model, digits, swa_share=0.5, run_dir=tmp_path / "run", verbose=0, **options)
    assert history.history["swa_epochs"] == [None, None, 1, 2]
    # After fit the model holds the mean of the weights after epochs 3 and 4 ...
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), (snapshots[2][name] + snapshots[3][name]) / 2, msg=name)
    # ... with BN statistics of its own: the stem's BN mean is the average over the training batches (in the
    # seeded order) of the mean of the stem's output.
    stem_bn = model.features[1]
    assert isinstance(stem_bn, nn.BatchNorm2d)
    train, _ = split_validation(digits.train, 0.1, 0)
    transform = BatchTransform(digits.mean, digits.std)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        inputs = transform(train.images[order], train=False)
        batch_means = [model.features[0](x).mean((0, 2, 3)) for x in inputs.split(64)]
    expected = torch.stack(batch_means).mean(0)
    torch.testing.assert_close(stem_bn.running_mean, expected)
    assert not torch.allclose(snapshots[3]["features.1.running_mean"], expected, atol=1e-3)
    # It is kept as swa.safetensors, and the last validation scored it.
    saved = load_model(tmp_path / "run" / "swa.safetensors")
    for (name, p), q in zip(model.state_dict().items(), saved.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
    val = split_validation(digits.train, 0.1, 0)[1]
    scored = evaluate_split(saved, trainer_module.task_for(saved), val, transform, 64, torch.device("cpu"))
    assert scored["acc1"] == pytest.approx(history.history["val_acc1"][-1], abs=1e-6)


def test_swa_batch_norm_statistics_do_not_depend_on_the_storage_order(digits):
    # Image folders store the classes one after the other; the recomputed statistics of the averaged weights
    # must come from mixed batches all the same, or they fit neither training nor validation inputs.
    by_class = torch.argsort(digits.train.labels, stable=True)
    shuffled = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = create_model_for("squeezenet_cifar", {**SMALL_SQUEEZENET, "batch_norm": True}, digits.train)
    cfg = TrainConfig(validation_split=0.0, batch_size=64, swa_share=0.5)
    stats = []
    for order in (by_class, shuffled):
        splits = DataSplits.from_train(digits.train.subset(order))
        trainer = Trainer(copy.deepcopy(model), splits, cfg, None, verbose=0)
        trainer.recompute_batch_norm(trainer.model)
        last_bn = [m for m in trainer.model.modules() if isinstance(m, nn.BatchNorm2d)][-1]
        stats.append(last_bn.running_var.clone())
    # Seeded: 4% apart in two mixed orders here, 14% with storage-order batches.
    torch.testing.assert_close(stats[0], stats[1], rtol=0.08, atol=1e-3)


def test_device_selection():
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto").type == expected
    with pytest.raises(SqueezelabError, match="unknown device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(SqueezelabError, match="no CUDA device"):
            resolve_device("cuda")


def test_jpeg_folder_is_decoded_once_for_all_epochs(tmp_path, monkeypatch):
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
        model_kwargs=SMALL_SQUEEZENET,
        verbose=0,
    )
    assert len(history.epochs) == 3
    assert len(decoded) == 24  # every file once, at load; no epoch decodes again


def test_weight_decay_can_spare_batch_norm_and_biases():
    model = create_model("squeezenet_cifar", batch_norm=True, **SMALL_SQUEEZENET)
    everything = make_optimizer(TrainConfig(optimizer="sgd", weight_decay=5e-4), model)
    assert [g["weight_decay"] for g in everything.param_groups] == [5e-4]
    spared = make_optimizer(TrainConfig(optimizer="sgd", weight_decay=5e-4, decay_norm_and_bias=False), model)
    decayed, free = spared.param_groups
    assert decayed["weight_decay"] == 5e-4 and free["weight_decay"] == 0.0
    assert all(p.dim() == 4 for p in decayed["params"])  # convolution kernels only
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {id(p) for p in free["params"]} >= {id(m.weight) for m in bn} | {id(m.bias) for m in bn}
    assert len(decayed["params"]) + len(free["params"]) == len(list(model.parameters()))


def test_validation_scores_a_batch_norm_model_folded_as_inference_runs_it(digits):
    torch.manual_seed(0)
    model = create_model("squeezenet_cifar", in_chans=1, batch_norm=True, **SMALL_SQUEEZENET)
    trainer = Trainer(model, digits, TrainConfig(epochs=1, batch_size=64, lr=2e-3), None, verbose=0)
    trainer.run()
    folded = trainer.evaluate(trainer.val_data, trainer.model)
    assert model.training  # scoring leaves the trained model as it was
    unfolded = evaluate_split(model, trainer.task, trainer.val_data, trainer.transform, 64, trainer.device)
    assert folded["acc1"] == unfolded["acc1"]
    assert folded["loss"] == pytest.approx(unfolded["loss"], rel=1e-4)


def test_alternating_flip_mirrors_each_image_once_in_every_two_epochs(digits, monkeypatch):
    import squeezelab.train.trainer as trainer_module

    indices, seen = [], []
    gather = trainer_module.gather_batch

    def recording_gather(images, labels, index, device):
        indices.append(index)
        return gather(images, labels, index, device)

    monkeypatch.setattr(trainer_module, "gather_batch", recording_gather)
    cfg = TrainConfig(epochs=2, batch_size=256, flip=True, alternate_flip=True, validation_split=0.1)
    model = create_model("squeezenet_cifar", in_chans=1, **SMALL_SQUEEZENET)
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


def test_low_res_sizes_survive_the_run_directory_json():
    ramp = TrainConfig(low_res=[16, 24])
    assert ramp.low_res == (16, 24)
    assert TrainConfig.from_dict(json.loads(json.dumps(ramp.to_dict()))) == ramp
    # Run directories written before ramps existed hold one size.
    assert TrainConfig.from_dict({"low_res": 24}).low_res == (24,)


@pytest.mark.parametrize(
    "low_res, epochs, expected",
    [
        # round(0.6 * 5) = 3 epochs at 16x16, then 24x24.
        (16, 5, [16, 16, 16, 24, 24]),
        # A ramp: round(0.6 * 7) = 4 low-resolution epochs, floor(i * 3 / 4) picks the size of the i-th.
        ((16, 18, 20), 7, [16, 16, 18, 20, 24, 24, 24]),
    ],
)
def test_progressive_resizing_trains_the_first_share_of_epochs_at_low_resolution(low_res, epochs, expected):
    digits24 = load_dataset("digits", image_size=24, progress=False)
    sizes: list[tuple[bool, int]] = []
    model = create_model("squeezenet_cifar", in_chans=1, **SMALL_SQUEEZENET)
    model.register_forward_pre_hook(lambda module, args: sizes.append((module.training, args[0].shape[-1])))
    cfg = TrainConfig(epochs=epochs, batch_size=512, low_res=low_res, low_res_share=0.6, channels_last=True)
    history = Trainer(model, digits24, cfg, None, verbose=0).run()
    assert len(history.epochs) == epochs
    steps = 4  # 1,617 training digits in batches of 512
    assert [size for training, size in sizes if training] == [size for size in expected for _ in range(steps)]
    # Validation always runs at the full size.
    assert {size for training, size in sizes if not training} == {24}
