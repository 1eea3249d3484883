import pytest
import torch

from squeezelab.errors import ConfigError, InputShapeError
from squeezelab.models import Autoencoder, create_model, list_models
from squeezelab.profile import count_macs, count_parameters

AUTOENCODERS = list_models("autoencoder")


def test_all_four_autoencoders_are_registered():
    assert set(AUTOENCODERS) == {"dense_ae", "conv_ae", "squeeze_ae", "contractive_ae"}


def test_dense_ae_is_the_keras_tutorial_784_64_32():
    model = create_model("dense_ae")
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(784, 64), (64, 32), (32, 32), (32, 64), (64, 784)]
    assert isinstance(model.decoder[-1], torch.nn.Sigmoid)


@pytest.mark.parametrize("name", AUTOENCODERS)
@pytest.mark.parametrize("chans, size", [(1, 8), (1, 28), (3, 32), (3, 15)])
def test_code_and_reconstruction_shapes(name, chans, size):
    model = create_model(name, in_chans=chans, img_size=size, code_size=12)
    assert isinstance(model, Autoencoder)
    x = torch.rand(3, chans, size, size)
    code = model.encode(x)
    assert code.shape == (3, 12)
    x_hat = model.decode(code)
    assert x_hat.shape == x.shape
    assert model(x).shape == x.shape
    assert 0 <= x_hat.min() and x_hat.max() <= 1


@pytest.mark.parametrize("name", ["dense_ae", "contractive_ae"])
def test_dense_models_take_flattened_images(name):
    model = create_model(name)
    flat = torch.rand(5, 784)
    assert model(flat).shape == (5, 784)
    torch.testing.assert_close(model(flat), model(flat.view(5, 1, 28, 28)).flatten(1))


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_wrong_shape_names_expected_and_given(name):
    model = create_model(name)
    with pytest.raises(InputShapeError, match=r"expects input of shape \(N, 1, 28, 28\), got \(2, 3, 32, 32\)"):
        model(torch.rand(2, 3, 32, 32))


def test_squeeze_ae_costs_less_than_its_convolutional_counterpart():
    squeeze, conv = create_model("squeeze_ae"), create_model("conv_ae")
    assert count_parameters(squeeze)[0] == 35_938 and count_parameters(conv)[0] == 111_521
    assert count_parameters(squeeze)[0] <= count_parameters(conv)[0] / 3  # issue 32's size goal
    assert count_macs(squeeze, (1, 28, 28)) < count_macs(conv, (1, 28, 28))


def test_squeeze_ae_without_its_new_options_is_the_first_layout():
    """The shipped squeeze_ae:mnist card builds this layout; its keys must stay those of the saved file."""
    old = create_model("squeeze_ae", encoder_channels=4, decoder_channels=8, unfold_expand=0, batch_norm=False)
    assert count_parameters(old)[0] == 29_360
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in old.modules())
    assert {"up.0.squeeze.weight", "up.0.expand1x1.weight", "up.0.expand3x3.weight"} <= set(old.state_dict())


def test_squeeze_ae_has_fire_modules_on_both_sides():
    from squeezelab.models import Fire, FireUp

    model = create_model("squeeze_ae", fire_channels=(16, 32, 64))
    assert sum(isinstance(m, Fire) for m in model.encoder.modules()) == 3
    assert sum(isinstance(m, FireUp) for m in model.modules()) == 2


@pytest.mark.parametrize("size", [7, 8, 28, 32])
@pytest.mark.parametrize("chans", [1, 3])
def test_squeeze_ae_restores_any_size(size, chans):
    x = torch.rand(2, chans, size, size)
    assert create_model("squeeze_ae", in_chans=chans, img_size=size)(x).shape == x.shape


def test_squeeze_ae_levers_move_its_cost():
    base = count_parameters(create_model("squeeze_ae"))[0]
    assert count_parameters(create_model("squeeze_ae", squeeze_ratio=0.5))[0] > base
    assert count_parameters(create_model("squeeze_ae", pct_3x3=0.25))[0] < base
    with pytest.raises(ConfigError, match="at least one Fire module"):
        create_model("squeeze_ae", fire_channels=())
    with pytest.raises(ConfigError, match=r"pct_3x3 in \[0, 1\]"):
        create_model("squeeze_ae", pct_3x3=1.5)
