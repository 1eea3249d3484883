"""The learning-rate factor of each step and the image size of each epoch, keyed to steps or to the time spent."""

import pytest

from squeezelab.data import load_dataset
from squeezelab.models import create_model
from squeezelab.train import TrainConfig, Trainer
from squeezelab.train.schedules import lr_lambda


def _no_budget() -> float:
    raise AssertionError("a step-keyed schedule must not read the clock")


def test_schedules():
    cfg = TrainConfig(epochs=10, schedule="onecycle")
    f = lr_lambda(cfg, steps_per_epoch=10, share_done=_no_budget)
    assert f(0) == pytest.approx(1 / 30) and f(29) == pytest.approx(1.0) and f(99) == pytest.approx(1 / 70)
    cosine = lr_lambda(cfg.updated(schedule="cosine", warmup_epochs=1), 10, _no_budget)
    assert cosine(9) == pytest.approx(1.0) and cosine(55) == pytest.approx(0.5) and cosine(100) == pytest.approx(0)
    step = lr_lambda(cfg.updated(schedule="step", step_size=3, gamma=0.5), 10, _no_budget)
    assert [step(s) for s in (0, 29, 30, 60)] == [1.0, 1.0, 0.5, 0.25]
    assert lr_lambda(cfg.updated(schedule="none"), 10, _no_budget)(50) == 1.0


def test_time_keyed_schedules_follow_the_share_of_the_budget_spent():
    spent = [0.0]
    cfg = TrainConfig(epochs=1000, schedule="onecycle", warmup_epochs=1, max_time=60.0, time_schedule=True)
    f = lr_lambda(cfg, steps_per_epoch=10, share_done=lambda: spent[0])
    # The warm-up counts steps; after it the factor falls linearly with the time spent, to zero when it is up.
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5)
    spent[0] = 0.25
    assert f(9) == pytest.approx(0.75) and f(5000) == pytest.approx(0.75)
    spent[0] = 1.3  # the last step may overrun the budget
    assert f(6000) == 0.0
    cosine = lr_lambda(cfg.updated(schedule="cosine", warmup_epochs=0), 10, lambda: spent[0])
    spent[0] = 0.5
    assert cosine(123) == pytest.approx(0.5)
    no_warmup = lr_lambda(cfg.updated(warmup_epochs=0), 10, lambda: spent[0])
    spent[0] = 0.15
    assert no_warmup(7) == pytest.approx(0.5)  # the one-cycle split in time: 30% up, 70% down


def test_swa_schedule_decays_to_the_averaging_rate_and_holds_it():
    cfg = TrainConfig(epochs=10, lr=0.2, schedule="onecycle", warmup_epochs=1, swa_share=0.4, swa_lr=0.05)
    f = lr_lambda(cfg, steps_per_epoch=10, share_done=_no_budget)
    # The one-cycle runs its course in the first 60 steps, falling from 1 to 0.25 (0.05 / 0.2), not to 0.
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(35) == pytest.approx(0.25 + 0.75 * 0.5) and f(59) == pytest.approx(0.25, abs=0.02)
    assert [f(s) for s in (60, 80, 99)] == [0.25, 0.25, 0.25]
    spent = [0.0]
    timed = lr_lambda(cfg.updated(max_time=100.0, time_schedule=True), 10, lambda: spent[0])
    spent[0] = 0.3  # half of the 60% the one-cycle has
    assert timed(500) == pytest.approx(0.25 + 0.75 * 0.5)
    spent[0] = 0.61
    assert timed(600) == 0.25
    default = lr_lambda(TrainConfig(epochs=10, lr=0.2, schedule="cosine", swa_share=0.5), 10, _no_budget)
    assert default(99) == pytest.approx(0.25)  # a quarter of the peak rate unless swa_lr says otherwise


def test_a_time_keyed_ramp_follows_the_share_of_the_budget_spent(tiny_squeezenet):
    digits24 = load_dataset("digits", image_size=24, progress=False)
    model = create_model("squeezenet_cifar", in_chans=1, **tiny_squeezenet)
    cfg = TrainConfig(low_res=(16, 20), low_res_share=0.5, max_time=100.0, time_schedule=True)
    trainer = Trainer(model, digits24, cfg, None, verbose=0)
    sizes = []
    for spent in (0.0, 0.24, 0.25, 0.49, 0.5, 0.9):
        trainer.share_done = spent
        sizes.append(trainer.epoch_transform(epoch=0).size)  # the epoch number does not count
    assert sizes == [16, 16, 20, 20, None, None]  # None: the images' own size


@pytest.mark.parametrize(
    "low_res, epochs, expected",
    [
        # round(0.6 * 5) = 3 epochs at 16x16, then 24x24.
        (16, 5, [16, 16, 16, 24, 24]),
        # A ramp: round(0.6 * 7) = 4 low-resolution epochs, floor(i * 3 / 4) picks the size of the i-th.
        ((16, 18, 20), 7, [16, 16, 18, 20, 24, 24, 24]),
    ],
)
def test_progressive_resizing_trains_the_first_share_of_epochs_at_low_resolution(
    low_res, epochs, expected, tiny_squeezenet
):
    digits24 = load_dataset("digits", image_size=24, progress=False)
    sizes: list[tuple[bool, int]] = []
    model = create_model("squeezenet_cifar", in_chans=1, **tiny_squeezenet)
    model.register_forward_pre_hook(lambda module, args: sizes.append((module.training, args[0].shape[-1])))
    cfg = TrainConfig(epochs=epochs, batch_size=512, low_res=low_res, low_res_share=0.6, channels_last=True)
    history = Trainer(model, digits24, cfg, None, verbose=0).run()
    assert len(history.epochs) == epochs
    steps = 4  # 1,617 training digits in batches of 512
    assert [size for training, size in sizes if training] == [size for size in expected for _ in range(steps)]
    # Validation always runs at the full size.
    assert {size for training, size in sizes if not training} == {24}
