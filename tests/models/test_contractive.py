import pytest
import torch
from torch.autograd.functional import jacobian

from squeezelab.models import create_model, jacobian_penalty


def exact_frobenius(encode, x):
    """||J||_F^2 per sample, from the full autograd Jacobian of one sample at a time."""
    return torch.stack([jacobian(lambda v: encode(v[None])[0], xi).pow(2).sum() for xi in x])


def test_closed_form_penalty_equals_autograd_jacobian():
    torch.manual_seed(0)
    model = create_model("contractive_ae", img_size=12).double()
    x = torch.rand(6, 1, 12, 12, dtype=torch.float64)
    reference = exact_frobenius(model.encode, x)
    penalty = model.penalty(x)
    assert penalty.shape == (6,)
    assert ((penalty - reference).abs() / reference).max() < 1e-5


def test_penalty_is_differentiable_and_training_with_it_contracts():
    torch.manual_seed(0)
    model = create_model("contractive_ae", img_size=8)
    x = torch.rand(32, 1, 8, 8)
    before = model.penalty(x).mean().item()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        model.penalty(x).mean().backward()
        opt.step()
    assert model.penalty(x).mean().item() < 0.5 * before


@pytest.mark.parametrize("code_size", [32, 128])
def test_estimator_within_10_percent_at_64_projections(code_size):
    torch.manual_seed(0)
    model = create_model("contractive_ae", img_size=12, code_size=code_size).double()
    x = torch.rand(8, 1, 12, 12, dtype=torch.float64)
    exact = model.penalty(x)
    estimate = jacobian_penalty(model.encode, x, n_projections=64)
    assert estimate.shape == (8,)
    assert ((estimate - exact).abs() / exact).max() < 0.10


def test_estimator_is_unbiased_with_few_projections():
    torch.manual_seed(0)
    model = create_model("contractive_ae", img_size=8, code_size=48).double()
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    estimates = torch.stack([jacobian_penalty(model.encode, x, n_projections=2) for _ in range(400)])
    rel = (estimates.mean(0) - model.penalty(x)).abs() / model.penalty(x)
    assert rel.max() < 0.05
    assert (estimates.std(0) > 0).all(), "with fewer directions than code units the estimate is random"


def test_estimator_works_for_squeeze_ae_and_carries_gradients():
    torch.manual_seed(0)
    model = create_model("squeeze_ae", img_size=12).double().eval()  # train-mode BN would mix the batch
    x = torch.rand(3, 1, 12, 12, dtype=torch.float64)
    reference = exact_frobenius(model.encode, x)
    full = jacobian_penalty(model.encode, x, n_projections=model.code_size)
    torch.testing.assert_close(full, reference)
    full.sum().backward()
    assert model.stem[0].weight.grad is not None and model.stem[0].weight.grad.abs().sum() > 0
