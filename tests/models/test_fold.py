import copy

import pytest
import torch
from torch import nn

from squeezelab import create_model
from squeezelab.compress.load import load_sqz
from squeezelab.compress.pipeline import CompressConfig, compress
from squeezelab.compress.prune import apply_masks, magnitude_masks
from squeezelab.compress.run import fresh_meta
from squeezelab.models.fold import fold_batch_norm, foldable

SMALL = {"stem_channels": 16, "base_e": 32, "incr_e": 16, "stages": (1, 1, 2), "bypass": "complex"}


def trained_looking_bn_model(name: str = "squeezenet_cifar") -> nn.Module:
    """BN statistics and affine parameters away from their initial values, as after training."""
    torch.manual_seed(0)
    if name == "squeezenet_cifar":
        model = create_model(name, num_classes=10, batch_norm=True, **SMALL)
    else:  # batch norm is squeeze_ae's default: foldable without naming the option
        model = create_model(name, in_chans=3, img_size=32)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("name", ["squeezenet_cifar", "squeeze_ae"])
def test_folded_model_computes_the_same_without_batch_norm(name):
    model = trained_looking_bn_model(name)
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert folded.squeezelab_spec["kwargs"]["batch_norm"] is False and not folded.training
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["squeezenet_cifar", "squeeze_ae"])
def test_folding_keeps_pruned_weights_zero(name):
    model = trained_looking_bn_model(name)
    apply_masks(model, magnitude_masks(model, 0.4))
    folded = fold_batch_norm(model)
    before = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    after = [m.weight for m in folded.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    has_linear = any(isinstance(m, nn.Linear) for m in folded.modules())
    assert len(after) == len(before) and has_linear == (name == "squeeze_ae")
    for b, a in zip(before, after, strict=True):
        assert torch.equal(b == 0, a == 0)


def test_only_registered_batch_norm_models_fold():
    assert foldable(trained_looking_bn_model())
    assert not foldable(create_model("squeezenet_cifar"))
    assert foldable(create_model("squeeze_ae")) and not foldable(create_model("squeeze_ae", batch_norm=False))
    with pytest.raises(ValueError, match="batch_norm=True"):
        fold_batch_norm(create_model("squeezenet_cifar"))


def test_compressing_a_batch_norm_model_folds_it_and_the_file_holds_no_bn(tmp_path):
    model = trained_looking_bn_model()
    cfg = CompressConfig(density=0.5, prune_steps=1, conv_bits=6, fc_bits=6)
    meta = fresh_meta(model, "squeezenet_cifar")
    result = compress(model, None, cfg, meta=meta, out_dir=tmp_path, verbose=0)
    names = [s.name for s in result.stages]
    assert names[2] == "batch norm folded"
    assert result.stages[2].bytes < result.stages[1].bytes  # four BN values per channel become one bias
    decoded, meta = load_sqz(tmp_path / "model.sqz")
    assert meta["model"]["kwargs"]["batch_norm"] is False
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(decoded(x), result.model.eval()(x))


def test_inference_path_folds_batch_norm_and_keeps_the_outputs():
    from squeezelab.models import for_inference

    model = trained_looking_bn_model()
    fast = for_inference(copy.deepcopy(model))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert fast.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)
    training = trained_looking_bn_model().train()
    assert for_inference(training) is training  # a model in training mode keeps its BN
