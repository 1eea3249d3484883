import math

import pytest
import torch

from squeezelab.checkpoint import load_weights
from squeezelab.errors import ConfigError
from squeezelab.models import create_model
from squeezelab.models.bottleneck import GDN, TABLE_PRECISION, EntropyBottleneck, quantize_pmf


@pytest.mark.parametrize("name", ["conv_codec", "squeeze_codec"])
@pytest.mark.parametrize("channels", [1, 3])
def test_a_codec_takes_any_size_and_returns_that_size(name, channels):
    model = create_model(name, in_chans=channels, channels=16, latent_channels=8)
    x = torch.rand(2, channels, 37, 20)
    x_hat, likelihoods = model(x)
    assert x_hat.shape == x.shape
    assert likelihoods.shape == (2, 8, 5, 3)  # ceil(37 / 8) x ceil(20 / 8) latents
    assert ((likelihoods > 0) & (likelihoods <= 1)).all()


@pytest.mark.parametrize("name", ["conv_codec", "squeeze_codec"])
def test_each_downsampling_halves_the_latents(name):
    model = create_model(name, channels=8, latent_channels=4, downsamplings=4)
    assert model.stride == 16
    assert model(torch.rand(1, 3, 37, 20))[1].shape == (1, 4, 3, 2)
    with pytest.raises(ConfigError, match="at least 2 downsamplings"):
        create_model(name, downsamplings=1)


def test_the_squeeze_codec_is_a_fraction_of_the_conv_codec():
    def count(model):
        return sum(p.numel() for p in model.parameters())

    conv, squeeze = count(create_model("conv_codec")), count(create_model("squeeze_codec"))
    # Ballé's layout at N=64, M=96: three 5x5 convolutions each way (2 x 25 x (3 x 64 + 64 x 64 + 64 x 96)) and GDN.
    assert 530_000 < conv < 550_000
    assert squeeze < conv / 4


def test_a_codec_refuses_images_of_the_wrong_channels():
    with pytest.raises(ConfigError, match=r"\(N, 3, H, W\)"):
        create_model("conv_codec")(torch.rand(1, 1, 32, 32))
    with pytest.raises(ConfigError, match="grayscale"):
        create_model("conv_codec", in_chans=2)


def test_igdn_inverts_gdn_at_initialisation_for_small_inputs():
    x = torch.randn(1, 4, 5, 5) * 0.1
    gdn, igdn = GDN(4), GDN(4, inverse=True)
    assert torch.allclose(igdn(gdn(x)), x, atol=1e-3)
    # Divisive normalisation: y = x / sqrt(1 + 0.1 x^2) for one channel at initialisation.
    one = torch.tensor([[[[2.0]]]])
    assert GDN(1)(one).item() == pytest.approx(2 / math.sqrt(1 + 1e-6 + 0.1 * 4), rel=1e-5)


def test_the_bottleneck_density_is_a_probability_over_the_integers():
    torch.manual_seed(0)
    bottleneck = EntropyBottleneck(3)
    values = torch.arange(-300, 301, dtype=torch.float32).reshape(1, 1, 1, -1).expand(1, 3, 1, -1).contiguous()
    total = bottleneck.likelihood(values).sum(-1)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-4)


def test_training_adds_noise_and_evaluation_rounds():
    bottleneck = EntropyBottleneck(2)
    y = torch.full((1, 2, 4, 4), 0.3)
    bottleneck.train()
    noisy, _ = bottleneck(y)
    assert not torch.equal(noisy, y) and (noisy - y).abs().max() <= 0.5
    bottleneck.eval()
    rounded, _ = bottleneck(y)
    assert torch.equal(rounded, torch.zeros_like(y))


def test_tables_sum_to_the_precision_and_follow_the_density():
    torch.manual_seed(0)
    bottleneck = EntropyBottleneck(4)
    bottleneck.update_tables()
    frequencies = bottleneck.frequencies.long()
    for c in range(4):
        length = int(bottleneck.lengths[c])
        assert int(frequencies[c, : length + 1].sum()) == 2**TABLE_PRECISION
        assert (frequencies[c, :length] >= 1).all()
        values = torch.arange(length, dtype=torch.float32) + int(bottleneck.offsets[c])
        density = bottleneck.likelihood(values.reshape(1, 1, 1, -1).expand(1, 4, 1, -1).contiguous())[0, c, 0]
        table = frequencies[c, :length].double() / 2**TABLE_PRECISION
        assert (table - density.double()).abs().max() < 1e-3


def test_quantize_pmf_keeps_every_symbol_and_the_exact_total():
    freqs = quantize_pmf(torch.tensor([0.5, 1e-12, 0.25, 0.25], dtype=torch.float64), precision=8)
    assert int(freqs.sum()) == 256 and int(freqs.min()) >= 1
    assert freqs.tolist()[0] == pytest.approx(128, abs=2)


def test_saved_weights_carry_their_tables_and_load_into_a_fresh_codec():
    torch.manual_seed(0)
    model = create_model("squeeze_codec", channels=8, latent_channels=4)
    state = model.state_dict()
    assert state["bottleneck.frequencies"].shape[0] == 4
    fresh = create_model("squeeze_codec", channels=8, latent_channels=4)
    load_weights(fresh, {k: v.clone() for k, v in state.items()}, "test")
    for name in ("offsets", "lengths", "frequencies"):
        assert torch.equal(getattr(fresh.bottleneck, name), state[f"bottleneck.{name}"])


def test_loaded_tables_are_kept_until_a_training_step():
    torch.manual_seed(0)
    state = create_model("squeeze_codec", channels=8, latent_channels=4).state_dict()
    loaded = create_model("squeeze_codec", channels=8, latent_channels=4)
    load_weights(loaded, {k: v.clone() for k, v in state.items()}, "test")
    with torch.no_grad():  # stands in for another machine's rounding of the same densities
        for bias in loaded.bottleneck.biases:
            bias.add_(0.5)
    assert torch.equal(loaded.state_dict()["bottleneck.frequencies"], state["bottleneck.frequencies"])
    loaded.train()(torch.rand(1, 3, 16, 16))
    assert not torch.equal(loaded.state_dict()["bottleneck.frequencies"], state["bottleneck.frequencies"])
