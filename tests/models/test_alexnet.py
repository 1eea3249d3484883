import pytest
import torch

from squeezelab.models import create_model
from squeezelab.profile import count_parameters


def test_alexnet_matches_torchvision_parameter_count():
    with torch.device("meta"):
        assert count_parameters(create_model("alexnet"))[0] == 61_100_840


def test_alexnet_has_torchvision_keys():
    with torch.device("meta"):
        keys = set(create_model("alexnet").state_dict())
    expected = {f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")}
    expected |= {f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")}
    assert keys == expected


def test_alexnet_cifar_is_the_50x_baseline_of_squeezenet_cifar():
    with torch.device("meta"):
        ratio = (
            count_parameters(create_model("alexnet_cifar"))[0] / count_parameters(create_model("squeezenet_cifar"))[0]
        )
    assert 30 <= ratio <= 60


@pytest.mark.parametrize("size", [16, 32, 40])
def test_alexnet_cifar_sizes(size):
    assert create_model("alexnet_cifar", num_classes=4)(torch.rand(2, 3, size, size)).shape == (2, 4)
