import pytest
import torch

from squeezelab.errors import InputShapeError
from squeezelab.models import Autoencoder, create_model, list_models
from squeezelab.profile import count_parameters

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


def test_squeeze_ae_is_at_most_a_quarter_of_dense_ae():
    squeeze, dense = (count_parameters(create_model(n))[0] for n in ("squeeze_ae", "dense_ae"))
    assert squeeze * 4 <= dense


def test_squeeze_ae_uses_fire_modules_in_encoder():
    from squeezelab.models import Fire

    model = create_model("squeeze_ae")
    assert sum(isinstance(m, Fire) for m in model.encoder.modules()) == 2
