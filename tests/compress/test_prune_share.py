import math

import pytest
import torch
from torch import nn

from squeezelab import create_model
from squeezelab.compress.prune import (
    apply_masks,
    bake_all,
    magnitude_masks,
    model_density,
    prunable_layers,
    prune_schedule,
)
from squeezelab.compress.share import kmeans_1d, share_weights, shared_layers
from squeezelab.errors import SqueezelabError


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))


def test_layer_masks_keep_the_largest_weights_of_every_layer():
    net = small_net()
    masks = magnitude_masks(net, 0.25, "layer")
    for name, layer in prunable_layers(net).items():
        w = layer.weight.detach().abs().flatten()
        kept = masks[name].flatten()
        assert int(kept.sum()) == math.ceil(0.25 * w.numel())
        assert w[kept].min() >= w[~kept].max()


def test_global_masks_reach_the_density_overall_not_per_layer():
    net = small_net()
    apply_masks(net, magnitude_masks(net, 0.3, "global"))
    assert model_density(net) == pytest.approx(0.3, abs=0.01)


def test_pruned_weights_stay_zero_through_fine_tuning_with_weight_decay():
    net = small_net()
    apply_masks(net, magnitude_masks(net, 0.5))
    pruned = {n: (m.weight == 0).clone() for n, m in prunable_layers(net).items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    for _ in range(5):
        opt.zero_grad()
        net(torch.randn(4, 3, 6, 6)).square().mean().backward()
        opt.step()
    for name, layer in prunable_layers(net).items():
        assert torch.all(layer.weight[pruned[name]] == 0)
        assert torch.any(layer.weight[~pruned[name]] != 0)


def test_iterative_pruning_never_revives_a_weight():
    net = small_net()
    for density in prune_schedule(0.2, 3):
        before = {n: m.weight != 0 for n, m in prunable_layers(net).items()}
        apply_masks(net, magnitude_masks(net, density))
        for name, layer in prunable_layers(net).items():
            assert not torch.any((layer.weight != 0) & ~before[name])
    assert model_density(net) == pytest.approx(0.2, abs=0.01)
    bake_all(net)
    assert set(net.state_dict()) == set(small_net().state_dict())


def test_prune_schedule_is_geometric_and_ends_at_the_target():
    assert prune_schedule(0.125, 3) == pytest.approx([0.5, 0.25, 0.125])
    with pytest.raises(SqueezelabError, match="density"):
        prune_schedule(1.5, 2)
    with pytest.raises(SqueezelabError, match="density"):
        magnitude_masks(small_net(), 0.0)


def test_kmeans_finds_well_separated_clusters_from_a_linear_start():
    torch.manual_seed(0)
    centres = torch.tensor([-1.0, 0.2, 3.0])
    values = (centres[torch.randint(0, 3, (3000,))] + 0.01 * torch.randn(3000)).float()
    codebook, assignment = kmeans_1d(values, 4)
    assert len(codebook) <= 4
    for c in centres:
        assert (codebook - c).abs().min() < 0.01
    # every value sits with its nearest centroid
    nearest = (values[:, None] - codebook[None, :]).abs().argmin(1)
    assert torch.equal(assignment, nearest)


def test_shared_model_uses_at_most_2_to_the_bits_values_per_layer_and_zero_where_pruned():
    net = small_net()
    apply_masks(net, magnitude_masks(net, 0.5))
    zeros = {n: m.weight == 0 for n, m in prunable_layers(net).items()}
    share_weights(net, conv_bits=3, fc_bits=2)
    for name, layer in prunable_layers(net).items():
        values = torch.unique(layer.weight[~zeros[name]])
        assert len(values) <= (8 if isinstance(layer, nn.Conv2d) else 4)
        assert torch.all(layer.weight[zeros[name]] == 0)


def test_centroid_gradient_is_the_mean_of_its_weights_gradients():
    net = small_net()
    share_weights(net, conv_bits=4, fc_bits=4)
    x = torch.randn(2, 3, 6, 6)
    layer = prunable_layers(net)["3"]
    shared = shared_layers(net)["3"]
    weight = layer.weight  # one materialisation, so its gradient can be read
    weight.retain_grad()
    out = nn.functional.linear(nn.functional.relu(net[0](x)).flatten(1), weight, layer.bias)
    out.square().sum().backward()
    flat = shared.indices.flatten()
    summed = torch.zeros_like(shared.codebook).index_add_(0, flat, weight.grad.flatten())
    sizes = torch.bincount(flat, minlength=len(shared.codebook))
    assert torch.allclose(shared.codebook.grad, summed / sizes, atol=1e-6)


def test_sharing_a_registry_model_keeps_its_outputs_close():
    model = create_model("squeezenet_cifar", num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    before = model(x)
    share_weights(model, conv_bits=8, fc_bits=8)
    after = model(x)
    assert torch.allclose(before, after, atol=0.05 * before.abs().max().item())
