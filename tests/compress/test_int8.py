import pytest
import torch

from squeezelab import create_model
from squeezelab.compress.int8 import freeze, quantize_int8
from squeezelab.compress.pipeline import CompressConfig
from squeezelab.compress.run import compress_run
from squeezelab.errors import SqueezelabError
from squeezelab.train import fit


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


def test_frozen_int8_model_computes_what_the_eager_one_does():
    torch.manual_seed(0)
    model = create_model("squeezenet_cifar", num_classes=10, batch_norm=True, stages=(1, 1, 2)).eval()
    int8 = quantize_int8(model, [torch.rand(16, 3, 32, 32) for _ in range(2)])
    frozen = freeze(int8, torch.rand(4, 3, 32, 32))
    assert isinstance(frozen, torch.jit.ScriptModule)
    for batch in (1, 7):  # traced at batch 4, run at others
        x = torch.rand(batch, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(frozen(x), int8(x))


def test_compress_int8_reports_fp32_and_int8_paths(tmp_path):
    run = tmp_path / "run"
    small = {"stem_channels": 16, "base_e": 32, "incr_e": 16, "stages": (1, 1, 2), "batch_norm": True}
    fit("squeezenet_cifar", "digits", epochs=2, batch_size=64, lr=0.01, image_size=16, model_kwargs=small,
        tta_flip=True, run_dir=run, verbose=0)  # fmt: skip
    cfg = CompressConfig(density=0.5, prune_steps=1, finetune_epochs=0, centroid_epochs=0)
    _, summary = compress_run(str(run), tmp_path / "out", cfg, int8=True, verbose=0)
    paths = summary["int8"]
    assert list(paths)[1:] == ["fp32_channels_last", "fp32_torchscript", "int8"]
    assert paths["int8"]["val_acc1"] == pytest.approx(paths["fp32_channels_last"]["val_acc1"], abs=0.1)
    assert all(v > 0 for p in paths.values() if isinstance(p, dict) for k, v in p.items() if "latency" in k)
