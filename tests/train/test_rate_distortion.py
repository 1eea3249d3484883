"""The codec's rate-distortion task: its loss against the definition, and training that lowers it."""

import math

import pytest
import torch

from squeezelab.data import BatchTransform
from squeezelab.errors import ConfigError
from squeezelab.models import create_model
from squeezelab.train import fit
from squeezelab.train.tasks import RateDistortion, task_for


def test_the_loss_is_lambda_255_squared_mse_plus_bits_per_pixel():
    torch.manual_seed(0)
    model = create_model("squeeze_codec", channels=8, latent_channels=4).eval()
    images = torch.randint(0, 256, (3, 3, 16, 24), dtype=torch.uint8)
    task = RateDistortion(0.01)
    loss, stats, x_hat = task.batch(model, images, None, BatchTransform((0.0,) * 3, (1.0,) * 3), train=False)
    target = images.float() / 255
    with torch.no_grad():
        expected_x_hat, likelihoods = model(target)
    mse = ((expected_x_hat - target) ** 2).flatten(1).mean(1)
    bpp = -torch.log2(likelihoods).flatten(1).sum(1) / (16 * 24)
    assert loss.item() == pytest.approx((0.01 * 255**2 * mse + bpp).mean().item(), rel=1e-5)
    metrics = task.summarize(stats)
    assert metrics["bpp"] == pytest.approx(bpp.mean().item(), rel=1e-5)
    assert metrics["mse"] == pytest.approx(mse.mean().item(), rel=1e-5)
    psnr = 10 * torch.log10(1 / ((expected_x_hat.clamp(0, 1) - target) ** 2).flatten(1).mean(1))
    assert metrics["psnr"] == pytest.approx(psnr.mean().item(), rel=1e-4)
    assert torch.equal(x_hat, expected_x_hat)


def test_a_codec_needs_the_lambda_it_was_trained_with():
    with pytest.raises(ConfigError, match="rate_lambda"):
        task_for(create_model("conv_codec", channels=8, latent_channels=4))


def test_training_a_codec_lowers_its_rate_distortion_loss(digits):
    history = fit(
        "squeeze_codec",
        digits,
        epochs=6,
        batch_size=32,
        lr=3e-3,
        rate_lambda=0.01,
        verbose=0,
        model_kwargs={"channels": 16, "latent_channels": 8},
    )
    losses = history.history["val_loss"]
    assert losses[-1] < 0.8 * losses[0] and all(math.isfinite(v) for v in losses)
    assert {"val_bpp", "val_psnr", "val_mse"} <= set(history.history)


def test_codec_options_are_checked(digits):
    with pytest.raises(ConfigError, match="rate_lambda must be positive"):
        fit("squeeze_codec", digits, epochs=1, rate_lambda=0.0, verbose=0)
    with pytest.raises(ConfigError, match="a codec trains with"):
        fit("squeeze_codec", digits, epochs=1, loss="bce", verbose=0)
