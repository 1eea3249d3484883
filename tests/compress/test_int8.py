import pytest
import torch

from squeezelab import create_model
from squeezelab.compress.int8 import quantize_int8
from squeezelab.errors import SqueezelabError


@pytest.mark.parametrize("name, shape", [("squeezenet_cifar", (3, 32, 32)), ("dense_ae", (1, 28, 28))])
def test_int8_model_tracks_fp32_and_leaves_the_original_alone(name, shape):
    torch.manual_seed(0)
    model = create_model(name).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calibration = [torch.rand(16, *shape) for _ in range(4)]
    int8 = quantize_int8(model, calibration)
    x = torch.rand(32, *shape)
    with torch.no_grad():
        reference, quantized = model(x), int8(x)
    assert quantized.shape == reference.shape
    error = (quantized - reference).abs().max() / reference.abs().max()
    assert error < 0.1
    assert any("quantized" in type(m).__module__ for m in int8.modules())  # really int8 kernels
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_int8_needs_calibration_data():
    with pytest.raises(SqueezelabError, match="calibration"):
        quantize_int8(create_model("dense_ae"), [])
