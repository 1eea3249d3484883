import pytest
import torch
import torch.fx.experimental.optimization
import torch.nn.functional as F

from squeezelab.errors import InputShapeError, SqueezelabError
from squeezelab.models import Fire, create_model, load_torchvision_weights
from squeezelab.profile import count_parameters

# torchvision's SqueezeNet layouts, written out independently of our implementation:
# ("conv", index in features, out channels, kernel, stride), ("pool",), ("fire", index, squeeze, e1x1, e3x3).
TORCHVISION_LAYOUT = {
    "squeezenet1_0": [
        ("conv", 0, 96, 7, 2),
        ("pool",),
        ("fire", 3, 16, 64, 64),
        ("fire", 4, 16, 64, 64),
        ("fire", 5, 32, 128, 128),
        ("pool",),
        ("fire", 7, 32, 128, 128),
        ("fire", 8, 48, 192, 192),
        ("fire", 9, 48, 192, 192),
        ("fire", 10, 64, 256, 256),
        ("pool",),
        ("fire", 12, 64, 256, 256),
    ],
    "squeezenet1_1": [
        ("conv", 0, 64, 3, 2),
        ("pool",),
        ("fire", 3, 16, 64, 64),
        ("fire", 4, 16, 64, 64),
        ("pool",),
        ("fire", 6, 32, 128, 128),
        ("fire", 7, 32, 128, 128),
        ("pool",),
        ("fire", 9, 48, 192, 192),
        ("fire", 10, 48, 192, 192),
        ("fire", 11, 64, 256, 256),
        ("fire", 12, 64, 256, 256),
    ],
}


def torchvision_state_dict(arch: str, num_classes: int = 1000, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}

    def add(key: str, out_ch: int, in_ch: int, k: int) -> None:
        fan_in = in_ch * k * k
        state[f"{key}.weight"] = torch.randn(out_ch, in_ch, k, k, generator=gen) * (2 / fan_in) ** 0.5
        state[f"{key}.bias"] = torch.randn(out_ch, generator=gen) * 0.01

    channels = 3
    for layer in TORCHVISION_LAYOUT[arch]:
        if layer[0] == "conv":
            _, i, out, k, _ = layer
            add(f"features.{i}", out, channels, k)
            channels = out
        elif layer[0] == "fire":
            _, i, s, e1, e3 = layer
            add(f"features.{i}.squeeze", s, channels, 1)
            add(f"features.{i}.expand1x1", e1, s, 1)
            add(f"features.{i}.expand3x3", e3, s, 3)
            channels = e1 + e3
    add("classifier.1", num_classes, channels, 1)
    return state


def torchvision_forward(arch: str, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """torchvision's SqueezeNet forward pass in eval mode, written with torch.nn.functional only."""
    for layer in TORCHVISION_LAYOUT[arch]:
        if layer[0] == "conv":
            _, i, _, _, stride = layer
            x = F.relu(F.conv2d(x, state[f"features.{i}.weight"], state[f"features.{i}.bias"], stride=stride))
        elif layer[0] == "pool":
            x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        else:
            p = f"features.{layer[1]}"
            s = F.relu(F.conv2d(x, state[f"{p}.squeeze.weight"], state[f"{p}.squeeze.bias"]))
            e1 = F.relu(F.conv2d(s, state[f"{p}.expand1x1.weight"], state[f"{p}.expand1x1.bias"]))
            e3 = F.relu(F.conv2d(s, state[f"{p}.expand3x3.weight"], state[f"{p}.expand3x3.bias"], padding=1))
            x = torch.cat([e1, e3], 1)
    x = F.relu(F.conv2d(x, state["classifier.1.weight"], state["classifier.1.bias"]))
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


@pytest.mark.parametrize("arch, expected", [("squeezenet1_0", 1_248_424), ("squeezenet1_1", 1_235_496)])
def test_parameter_counts_match_published(arch, expected):
    assert count_parameters(create_model(arch))[0] == expected


@pytest.mark.parametrize("arch", ["squeezenet1_0", "squeezenet1_1"])
def test_torchvision_state_dict_loads_strictly_and_gives_same_outputs(arch):
    state = torchvision_state_dict(arch)
    model = create_model(arch).eval()
    assert set(model.state_dict()) == set(state)
    model.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x), torchvision_forward(arch, state, x))


def test_load_torchvision_weights_reads_pth_file(tmp_path):
    state = torchvision_state_dict("squeezenet1_1", seed=3)
    path = tmp_path / "squeezenet1_1.pth"
    torch.save(state, path)
    model = load_torchvision_weights(create_model("squeezenet1_1"), path)
    torch.testing.assert_close(
        model.state_dict()["features.12.expand3x3.weight"], state["features.12.expand3x3.weight"]
    )


class NotATensor:
    pass


def test_load_torchvision_weights_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": NotATensor()}, path)
    with pytest.raises(SqueezelabError, match="weights-only"):
        load_torchvision_weights(create_model("squeezenet1_1"), path)


def test_load_torchvision_weights_names_wrong_shape_and_missing_file(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(torchvision_state_dict("squeezenet1_1"), path)
    with pytest.raises(SqueezelabError, match="classifier.1.weight has shape"):
        load_torchvision_weights(create_model("squeezenet1_1", num_classes=10), path)
    with pytest.raises(SqueezelabError, match="not found"):
        load_torchvision_weights(create_model("squeezenet1_1"), tmp_path / "missing.pth")


def _fires(model):
    return [m for m in model.modules() if isinstance(m, Fire)]


def test_squeezenet_cifar_follows_the_design_space():
    model = create_model("squeezenet_cifar", base_e=64, incr_e=32, freq=2, squeeze_ratio=0.25, pct_3x3=0.75)
    fires = _fires(model)
    assert [f.out_channels for f in fires] == [64 + 32 * (i // 2) for i in range(8)]
    assert [f.squeeze.out_channels for f in fires] == [int(0.25 * f.out_channels) for f in fires]
    assert [f.expand3x3.out_channels for f in fires] == [round(0.75 * f.out_channels) for f in fires]


def test_simple_bypass_is_free_and_complex_bypass_adds_1x1_convs():
    plain = create_model("squeezenet_cifar")
    simple = create_model("squeezenet_cifar", bypass="simple")
    complex_ = create_model("squeezenet_cifar", bypass="complex")
    assert count_parameters(simple) == count_parameters(plain)
    # The paper's layout: identity shortcuts around fire3, fire5, fire7, fire9 (every second module).
    assert [f.bypass_kind for f in _fires(simple)] == ["none", "identity"] * 4
    assert [f.bypass_kind for f in _fires(complex_)] == ["conv", "identity"] * 4
    assert count_parameters(complex_)[0] > count_parameters(plain)[0]
    x = torch.rand(2, 3, 32, 32)
    simple.eval()
    out_with = simple(x)
    for f in _fires(simple):
        f.bypass_kind = "none"
    assert not torch.allclose(out_with, simple(x)), "the identity shortcut must change the output"


def test_expand_5x5_keeps_module_widths():
    plain = _fires(create_model("squeezenet_cifar"))
    wide = _fires(create_model("squeezenet_cifar", expand_5x5=True))
    assert [f.out_channels for f in wide] == [f.out_channels for f in plain]
    assert all(f.expand5x5 is not None and f.expand5x5.kernel_size == (5, 5) for f in wide)
    assert all(f.expand5x5 is None for f in plain)


def test_batch_norm_replaces_conv_biases_and_folds_into_eval():
    plain = create_model("squeezenet_cifar")
    normed = create_model("squeezenet_cifar", batch_norm=True)
    convs = [m for m in normed.features.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in normed.features.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == len(convs) and all(c.bias is None for c in convs)
    # Each conv trades its bias for a BN scale and shift: + one value per output channel.
    channels = sum(c.out_channels for c in convs)
    assert count_parameters(normed)[0] == count_parameters(plain)[0] + channels
    normed.train()(torch.rand(8, 3, 32, 32))  # moves the running statistics off their initial values
    normed.eval()
    x = torch.rand(2, 3, 32, 32)
    fused = torch.fx.experimental.optimization.fuse(normed)
    torch.testing.assert_close(fused(x), normed(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [16, 24, 32, 45, 64])
def test_squeezenet_cifar_takes_any_size_from_16(size):
    model = create_model("squeezenet_cifar", num_classes=7, in_chans=1)
    assert model(torch.rand(2, 1, size, size)).shape == (2, 7)


def test_bad_inputs_raise_value_error_naming_shapes():
    with pytest.raises(
        InputShapeError, match=r"expects input of shape \(N, 3, H, W\) with H, W >= 16, got \(2, 3, 8, 8\)"
    ):
        create_model("squeezenet_cifar")(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"got \(2, 1, 32, 32\)"):
        create_model("squeezenet_cifar")(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r">= 21"):
        create_model("squeezenet1_0")(torch.rand(1, 3, 20, 20))
    assert create_model("squeezenet1_0")(torch.rand(1, 3, 21, 21)).shape == (1, 1000)
    with pytest.raises(SqueezelabError, match="bypass must be"):
        create_model("squeezenet_cifar", bypass="sideways")
