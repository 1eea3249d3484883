"""The optimizer of a run: which parameters decay, and airbench's Lookahead on top of it."""

import pytest
import torch
from torch import nn

from squeezelab.models import create_model
from squeezelab.train.config import OptimConfig
from squeezelab.train.optim import Lookahead, make_optimizer


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_decay_grows_with_the_cube_of_progress():
    lookahead = Lookahead(_model(), total_steps=100, final_decay=0.8)
    assert lookahead.decay(0) == 0
    assert lookahead.decay(50) == pytest.approx(0.8 / 8)
    assert lookahead.decay(100) == pytest.approx(0.8)
    assert lookahead.decay(150) == pytest.approx(0.8)  # capped at the final decay


def test_every_k_steps_the_weights_restart_from_the_slow_average():
    model = _model()
    lookahead = Lookahead(model, total_steps=10, step=8, every=2, final_decay=0.5)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.add_(2.0)
    lookahead.after_step()
    assert torch.equal(model[0].weight, start["0.weight"] + 1.0)  # one step: nothing averaged yet
    lookahead.after_step()
    # decay(10) = 0.5: the slow weights move half way, and the fast ones take their value.
    torch.testing.assert_close(model[0].weight, start["0.weight"] + 0.5)
    torch.testing.assert_close(model[1].running_mean, start["1.running_mean"] + 1.0)
    torch.testing.assert_close(model[0].bias, start["0.bias"])
    assert model[1].num_batches_tracked == start["1.num_batches_tracked"]  # integer state is left alone


def test_sync_ends_a_partial_period_and_is_idle_without_steps():
    model = _model()
    lookahead = Lookahead(model, total_steps=4, step=3, every=5, final_decay=0.5)
    with torch.no_grad():
        model[0].weight.mul_(3.0)
    fast = model[0].weight.clone()
    lookahead.sync()  # nothing pending: no change
    assert torch.equal(model[0].weight, fast)
    lookahead.after_step()  # step 4 of 4: decay 0.5
    lookahead.sync()
    torch.testing.assert_close(model[0].weight, (fast / 3 + fast) / 2)


def test_weight_decay_can_spare_batch_norm_and_biases(small_squeezenet):
    model = create_model("squeezenet_cifar", **small_squeezenet)
    everything = make_optimizer(OptimConfig(optimizer="sgd", weight_decay=5e-4), model)
    assert [g["weight_decay"] for g in everything.param_groups] == [5e-4]
    spared = make_optimizer(OptimConfig(optimizer="sgd", weight_decay=5e-4, decay_norm_and_bias=False), model)
    decayed, free = spared.param_groups
    assert decayed["weight_decay"] == 5e-4 and free["weight_decay"] == 0.0
    assert all(p.dim() == 4 for p in decayed["params"])  # convolution kernels only
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {id(p) for p in free["params"]} >= {id(m.weight) for m in bn} | {id(m.bias) for m in bn}
    assert len(decayed["params"]) + len(free["params"]) == len(list(model.parameters()))
