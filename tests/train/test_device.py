"""Where training runs: device selection, mixed precision, and where the training data lives.

Only the CPU is needed: the CUDA paths are selection logic (what goes where, which autocast), tested here as
functions; a GPU run of the same code is recorded in BENCHMARKS.md when one is at hand.
"""

import warnings

import pytest
import torch

from squeezelab.errors import SqueezelabError
from squeezelab.train import TrainConfig, fit, resolve_device
from squeezelab.train.config import ComputeConfig
from squeezelab.train.device import DEVICE_DATA_SHARE, autocast_for, data_stays_on_host, gather_batch


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


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_autocast_selection():
    cpu = torch.device("cpu")
    assert autocast_for(TrainConfig(bf16=True).compute, cpu).fast_dtype == torch.bfloat16
    assert autocast_for(TrainConfig(fp16=True).compute, torch.device("cuda")).fast_dtype == torch.float16
    assert not isinstance(autocast_for(TrainConfig().compute, cpu), torch.autocast)


@pytest.mark.parametrize(
    "options, message",
    [({"fp16": True}, "fp16 autocast needs a CUDA device"), ({"bf16": True, "fp16": True}, "one of bf16 and fp16")],
)
def test_bad_precision_is_a_user_error(digits, tiny_squeezenet, options, message):
    with pytest.raises(SqueezelabError, match=message):
        fit("squeezenet_cifar", digits, epochs=1, model_kwargs=tiny_squeezenet, device="cpu", verbose=0, **options)


def test_cuda_without_a_gpu_is_a_user_error(digits, tiny_squeezenet):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SqueezelabError, match="no CUDA device"):
        fit("squeezenet_cifar", digits, epochs=1, model_kwargs=tiny_squeezenet, device="cuda", verbose=0)


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


def test_bf16_on_a_cpu_without_it_warns_once_with_the_fix(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.warns(UserWarning, match="several times slower than fp32: add --no-bf16"):
        autocast_for(ComputeConfig(bf16=True), torch.device("cpu"))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        autocast_for(ComputeConfig(bf16=True), torch.device("cpu"))
