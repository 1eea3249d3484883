import pytest
import torch
from torch import nn

from squeezelab.errors import SqueezelabError, UnknownModelError
from squeezelab.models import create_model, list_models, model_info, same_model

EXPECTED = {
    "conv_codec",
    "squeeze_codec",
    "squeezenet1_0",
    "squeezenet1_1",
    "squeezenet_cifar",
    "alexnet",
    "alexnet_cifar",
    "dense_ae",
    "conv_ae",
    "squeeze_ae",
    "contractive_ae",
}


def test_registry_holds_the_zoo():
    assert set(list_models()) == EXPECTED
    assert set(list_models("classifier")) | set(list_models("autoencoder")) | set(list_models("codec")) == EXPECTED


def _small_input(name):
    info = model_info(name)
    if info.kind == "autoencoder":
        return torch.rand(4, *info.default_input)
    # ImageNet-size classifiers at their smallest valid size keep this fast.
    size = {"alexnet": 63, "squeezenet1_0": 21, "squeezenet1_1": 17}.get(name, info.default_input[1])
    return torch.rand(2, info.default_input[0], size, size)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_forward_and_backward(name):
    torch.manual_seed(0)
    model = create_model(name)
    assert isinstance(model, nn.Module)
    x = _small_input(name)
    out = model(x)
    if model_info(name).kind == "classifier":
        assert out.shape == (x.shape[0], model.num_classes)
        loss = nn.functional.cross_entropy(out, torch.zeros(x.shape[0], dtype=torch.long))
    elif model_info(name).kind == "codec":
        x_hat, likelihoods = out
        assert x_hat.shape == x.shape
        loss = nn.functional.mse_loss(x_hat, x) - torch.log2(likelihoods).mean()
    else:
        assert out.shape == x.shape
        loss = nn.functional.mse_loss(out, x)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_unknown_name_lists_closest():
    with pytest.raises(UnknownModelError, match="did you mean squeezenet1_1") as err:
        create_model("squeezenet1.1")
    assert isinstance(err.value, ValueError)


def test_unknown_option_lists_options():
    with pytest.raises(SqueezelabError, match="does not take num_class; its options are: num_classes"):
        create_model("squeezenet1_1", num_class=10)


def test_register_model_rejects_duplicates():
    from squeezelab.models import register_model

    def squeezenet1_1():  # pragma: no cover
        pass

    with pytest.raises(RuntimeError, match="registered twice"):
        register_model("classifier", (3, 32, 32))(squeezenet1_1)
    assert model_info("squeezenet1_1").default_input == (3, 224, 224)


def test_an_option_given_at_its_default_is_the_same_model():
    explicit = create_model("conv_codec", downsamplings=3).squeezelab_spec
    implicit = create_model("conv_codec").squeezelab_spec
    assert explicit != implicit and same_model(explicit, implicit)
    assert not same_model(create_model("conv_codec", downsamplings=4).squeezelab_spec, implicit)
    assert not same_model(implicit, {"name": "squeeze_codec", "kwargs": {}})
    listed = {"name": "squeezenet_cifar", "kwargs": {"stages": [2, 2, 4]}}  # as JSON gives a default tuple back
    assert same_model(listed, create_model("squeezenet_cifar").squeezelab_spec)
