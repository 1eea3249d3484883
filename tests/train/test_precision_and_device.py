"""Mixed precision, memory format, torch.compile, test-time flips and where training data lives.

Only the CPU is needed: the CUDA paths are selection logic (what goes where, which autocast), tested here as
functions; a GPU run of the same code is recorded in BENCHMARKS.md when one is at hand.
"""

import math

import pytest
import torch
from torch import nn

from squeezelab.data import BatchTransform, load_dataset
from squeezelab.errors import SqueezelabError
from squeezelab.models import create_model
from squeezelab.train import TrainConfig, fit, preset
from squeezelab.train.tasks import Classification
from squeezelab.train.trainer import DEVICE_DATA_SHARE, Trainer, autocast_for, data_stays_on_host, gather_batch

SMALL = {"stem_channels": 16, "base_e": 32, "incr_e": 16, "stages": (1, 1, 2)}


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_autocast_selection():
    cpu = torch.device("cpu")
    assert autocast_for(TrainConfig(bf16=True), cpu).fast_dtype == torch.bfloat16
    assert autocast_for(TrainConfig(fp16=True), torch.device("cuda")).fast_dtype == torch.float16
    assert not isinstance(autocast_for(TrainConfig(), cpu), torch.autocast)


@pytest.mark.parametrize(
    "options, message",
    [({"fp16": True}, "fp16 autocast needs a CUDA device"), ({"bf16": True, "fp16": True}, "one of bf16 and fp16")],
)
def test_bad_precision_is_a_user_error(digits, options, message):
    with pytest.raises(SqueezelabError, match=message):
        fit("squeezenet_cifar", digits, epochs=1, model_kwargs=SMALL, device="cpu", verbose=0, **options)


def test_cuda_without_a_gpu_is_a_user_error(digits):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SqueezelabError, match="no CUDA device"):
        fit("squeezenet_cifar", digits, epochs=1, model_kwargs=SMALL, device="cuda", verbose=0)


def test_data_placement():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    gib = 1 << 30
    assert not data_stays_on_host(100 * gib, cpu, None)  # on the CPU the data is where it already is
    assert not data_stays_on_host(150_000_000, cuda, 80 * gib)  # CIFAR-10 fits a GPU easily
    assert data_stays_on_host(int(DEVICE_DATA_SHARE * 80 * gib) + 1, cuda, 80 * gib)


def test_gather_batch_on_the_data_device():
    images = torch.arange(5 * 3 * 2 * 2, dtype=torch.uint8).view(5, 3, 2, 2)
    labels = torch.tensor([0, 1, 2, 3, 4])
    batch, batch_labels = gather_batch(images, labels, torch.tensor([4, 1]), torch.device("cpu"))
    assert torch.equal(batch, images[[4, 1]]) and batch_labels.tolist() == [4, 1]


def _small_model():
    torch.manual_seed(0)
    return create_model("squeezenet_cifar", num_classes=10, in_chans=1, **SMALL)  # digits: 1 channel


def test_channels_last_training_keeps_the_format_and_learns_the_same(digits):
    run = dict(epochs=1, batch_size=64, verbose=0)
    plain = fit(_small_model(), digits, **run)
    model = _small_model()
    channels_last = fit(model, digits, channels_last=True, **run)
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    # The same arithmetic in another order: rounding differs, so trajectories drift apart slowly.
    assert channels_last.epochs[0]["train_loss"] == pytest.approx(plain.epochs[0]["train_loss"], rel=1e-2)


def test_transform_gives_channels_last_batches():
    transform = BatchTransform((0.5,) * 3, (0.5,) * 3, channels_last=True)
    x = transform(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), train=False)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_compile_option_trains_through_torch_compile(digits):
    splits = digits
    trainer = Trainer(_small_model(), splits, TrainConfig(compile=True, epochs=1), run_dir=None, verbose=0)
    assert isinstance(trainer.train_model, torch._dynamo.eval_frame.OptimizedModule)
    assert trainer.train_model._orig_mod is trainer.model  # checkpoints save the plain module's weights


class _LeftHeavy(nn.Module):
    """Logits that depend on which half of the image is bright: a mirror changes them."""

    def forward(self, x):
        left = x[..., : x.shape[-1] // 2].mean((1, 2, 3))
        right = x[..., x.shape[-1] // 2 :].mean((1, 2, 3))
        return torch.stack([left, right], 1)


def test_tta_flip_averages_an_image_and_its_mirror():
    images = torch.zeros(4, 1, 4, 4, dtype=torch.uint8)
    images[..., :2] = 255
    labels = torch.zeros(4, dtype=torch.long)
    transform = BatchTransform((0.0,), (1.0,))
    _, _, plain = Classification().batch(_LeftHeavy(), images, labels, transform, train=False)
    _, _, averaged = Classification(tta_flip=True).batch(_LeftHeavy(), images, labels, transform, train=False)
    assert plain[0].tolist() == [1.0, 0.0]
    assert averaged[0].tolist() == [0.5, 0.5]
    # Training never averages: the augmentation already flips.
    _, _, train = Classification(tta_flip=True).batch(_LeftHeavy(), images, labels, transform, train=True)
    assert train[0].tolist() == [1.0, 0.0]


class _TwoPixels(nn.Module):
    """Logits that read two fixed pixels: a one-pixel shift changes them."""

    def forward(self, x):
        return torch.stack([x[:, 0, 0, 0], x[:, 0, 2, 2]], 1)


def test_tta_translate_weights_the_centre_half_and_each_reflect_padded_shift_a_quarter():
    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    images[:, :, 1, 1] = 255
    labels = torch.zeros(2, dtype=torch.long)
    transform = BatchTransform((0.0,), (1.0,))
    task = Classification(tta_translate=True)
    _, _, averaged = task.batch(_TwoPixels(), images, labels, transform, train=False)
    # Centre reads (0, 0); shifted down-right, pixel (0, 0) is the reflection of (1, 1): (1, 1); shifted
    # up-left, (0, 0) is (1, 1) and (2, 2) is (3, 3): (1, 0). Half of the first, a quarter of each other.
    assert averaged[0].tolist() == [0.5, 0.25]
    _, _, train = task.batch(_TwoPixels(), images, labels, transform, train=True)
    assert train[0].tolist() == [0.0, 0.0]


def test_fast_cifar10_preset_trains_with_all_its_options():
    cfg = preset("fast-cifar10")
    assert cfg.bf16 and cfg.channels_last and cfg.tta_flip and cfg.alternate_flip and cfg.model_kwargs["batch_norm"]
    assert cfg.tta_translate and all(size < 32 for size in cfg.low_res) and cfg.lookahead is False
    assert cfg.time_schedule and cfg.max_time == 30 * 60  # the budget: 30 minutes of training
    digits = load_dataset("digits", image_size=32, progress=False)  # CIFAR's size: the ramp's sizes are downscales
    full = create_model(cfg.model, **cfg.model_kwargs)
    assert sum(p.numel() for p in full.parameters()) == 939_722  # the limit: 1M
    assert full(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    small = {**cfg.model_kwargs, **SMALL}
    history = fit(cfg.model, digits, cfg, epochs=3, batch_size=64, lr=0.05, model_kwargs=small, verbose=0)
    assert math.isfinite(history.epochs[-1]["val_loss"])
    assert history.epochs[-1]["val_acc1"] > 0.2  # chance is 0.1
    assert history.epochs[-1]["lr"] == 0.0  # three epochs are far inside 30 minutes: they complete the schedule
