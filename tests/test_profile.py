import pytest
import torch
from torch import nn

from squeezelab.models import create_model
from squeezelab.profile import _PeakMemory, count_macs, profile_model


@pytest.mark.parametrize("arch, gmacs", [("squeezenet1_0", 0.819), ("squeezenet1_1", 0.349)])
def test_macs_match_torchvision_published_figures(arch, gmacs):
    with torch.device("meta"):
        model = create_model(arch)
    assert count_macs(model, (3, 224, 224)) / 1e9 == pytest.approx(gmacs, rel=0.03)


def test_macs_of_a_linear_layer_are_exact():
    assert count_macs(nn.Sequential(nn.Flatten(), nn.Linear(784, 64)), (1, 28, 28)) == 784 * 64


def test_profile_reports_consistent_figures():
    model = create_model("squeezenet_cifar")
    p = profile_model(model, (3, 32, 32), batch_size=8, warmup=1, repeats=3)
    assert p.params == p.trainable_params == sum(t.numel() for t in model.parameters())
    assert p.fp32_bytes == 4 * p.params
    assert p.fp32_bytes < p.file_bytes < p.fp32_bytes + 20_000  # safetensors adds a small JSON header
    assert p.flops == 2 * p.macs and p.macs == count_macs(model, (3, 32, 32))
    assert p.latency_ms > 0 and p.throughput > 0
    assert model.training, "profiling must leave the model's mode as it was"


def test_peak_memory_counts_live_tensors_only():
    a = torch.ones(1000)  # 4000 bytes, allocated before tracking
    with _PeakMemory() as tracker:
        b = a * 2  # +4000
        c = b * 2  # +4000 -> 8000 alive
        del b  # back to 4000
        d = c * 2  # +4000 -> 8000 again, never 12000
        e = d.view(10, 100)  # a view shares storage: nothing new
    assert tracker.peak == 8000
    assert e.shape == (10, 100)


def test_peak_activation_memory_grows_with_batch():
    model = create_model("squeezenet_cifar")
    small = profile_model(model, (3, 32, 32), batch_size=4, warmup=0, repeats=1)
    large = profile_model(model, (3, 32, 32), batch_size=16, warmup=0, repeats=1)
    assert large.peak_activation_bytes == pytest.approx(4 * small.peak_activation_bytes, rel=0.05)
