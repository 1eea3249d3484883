"""export(): every model family to ONNX and TorchScript, verified; dynamic batch; metadata; user errors."""

import importlib.util
import sys

import pytest
import torch

from squeezelab.errors import SqueezelabError
from squeezelab.export import SUFFIXES, VerificationError, export, open_exported
from squeezelab.models import create_model

ONNX_INSTALLED = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))
needs_onnx = pytest.mark.skipif(not ONNX_INSTALLED, reason="needs the onnx extra: pip install 'squeezelab[onnx]'")
FORMATS = [pytest.param("onnx", marks=needs_onnx), "torchscript"]

# Every registry model but the ImageNet AlexNet (61M parameters), kept small where that changes nothing the
# exporters see: squeezenet_cifar with two Fire modules has both an identity and a 1x1-conv bypass and the 5x5
# branch; conv_ae at 27x27 has an odd size its transposed convolutions must restore; alexnet_cifar at 20x20
# pools a 2x2 feature map adaptively to 4x4 (overlapping windows, which the TorchScript-based ONNX exporter
# refuses).
FAMILIES = [
    ("squeezenet_cifar", {"stages": (1, 1), "bypass": "complex", "expand_5x5": True}, None),
    ("squeezenet1_0", {"num_classes": 10}, (3, 48, 48)),
    ("squeezenet1_1", {"num_classes": 10}, (3, 64, 64)),
    ("alexnet_cifar", {}, (3, 20, 20)),
    ("dense_ae", {}, None),
    ("conv_ae", {"img_size": 27}, None),
    ("squeeze_ae", {}, None),
    ("contractive_ae", {}, None),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name, kwargs, size", FAMILIES, ids=lambda v: v if isinstance(v, str) else None)
def test_every_family_exports_and_verifies(tmp_path, fmt, name, kwargs, size):
    torch.manual_seed(0)
    result = export(create_model(name, **kwargs), tmp_path / f"model{SUFFIXES[fmt]}", format=fmt, input_size=size)
    assert result.verification.passed and result.verification.value <= 1e-4
    assert result.verification.batch_sizes == (1, 5)
    assert result.path.stat().st_size == result.file_bytes
    assert result.meta["model"] == {"name": name, "kwargs": kwargs}


@needs_onnx
def test_onnx_batch_dimension_is_dynamic_and_spatial_size_fixed(tmp_path):
    import onnx

    model = create_model("contractive_ae", img_size=16).eval()
    path = export(model, tmp_path / "ae.onnx").path
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [1, 16, 16]
    exported = open_exported(path)
    for batch in (1, 7):
        x = torch.rand(batch, 1, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(exported(x), model(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_round_trip_from_a_checkpoint(tmp_path, fmt, make_checkpoint):
    classes = [f"class-{i}" for i in range(4)]
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    run = make_checkpoint("squeezenet_cifar", (3, 32, 32), classes, mean, std, num_classes=4, stages=(1,))
    out = tmp_path / f"exported{SUFFIXES[fmt]}"
    export(run, out, format=fmt)
    meta = open_exported(out).meta
    assert meta["model"] == {"name": "squeezenet_cifar", "kwargs": {"num_classes": 4, "stages": [1]}}
    assert meta["kind"] == "classifier" and meta["precision"] == "fp32"
    assert meta["classes"] == classes
    assert meta["mean"] == mean and meta["std"] == std
    assert meta["input_shape"] == [3, 32, 32]


def test_height_and_width_alone_take_the_channels_from_the_model(tmp_path):
    result = export(create_model("squeezenet_cifar"), tmp_path / "m.pt", format="torchscript", input_size=(40, 40))
    assert result.input_shape == (3, 40, 40) and result.verification.passed


def test_meta_overrides_what_a_bare_model_lacks(tmp_path):
    digits = [str(i) for i in range(10)]
    result = export(
        create_model("squeezenet_cifar", in_chans=1),
        tmp_path / "m.pt",
        format="torchscript",
        meta={"classes": digits, "mean": [0.1307], "std": [0.3081]},
    )
    assert result.input_shape == (1, 32, 32)
    assert open_exported(result.path).classes == digits


@pytest.mark.parametrize(
    "name, size, message",
    [
        ("squeezenet1_1", (3, 16, 16), "squeezenet1_1 cannot take input 3x16x16"),
        ("dense_ae", (1, 16, 16), "dense_ae cannot take input 1x16x16"),
        ("squeezenet_cifar", (1, 32, 32), "squeezenet_cifar cannot take input 1x32x32"),
    ],
)
def test_an_input_the_model_cannot_take_is_a_clear_error(tmp_path, name, size, message):
    with pytest.raises(SqueezelabError, match=message):
        export(create_model(name), tmp_path / "m.pt", format="torchscript", input_size=size)
    assert not (tmp_path / "m.pt").exists()


def test_unsupported_format_and_missing_folder(tmp_path):
    model = create_model("dense_ae")
    with pytest.raises(SqueezelabError, match="unsupported export format 'tflite'; choose onnx or torchscript"):
        export(model, tmp_path / "m.tflite", format="tflite")
    with pytest.raises(SqueezelabError, match="the folder .*nowhere does not exist"):
        export(model, tmp_path / "nowhere" / "m.pt", format="torchscript")


@pytest.mark.parametrize("missing", ["onnx", "onnxscript"])
def test_missing_onnx_extra_names_the_install_command(tmp_path, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes "import onnx" raise ImportError
    with pytest.raises(SqueezelabError, match=r"ONNX export needs the onnx extra: pip install 'squeezelab\[onnx\]'"):
        export(create_model("dense_ae"), tmp_path / "m.onnx")


def test_failed_verification_raises_with_the_difference_and_writes_nothing(tmp_path, monkeypatch):
    import squeezelab.export as export_module

    real = export_module.load_runner

    def off_by_a_bit(fmt, source):
        runner = real(fmt, source)
        return lambda x: runner(x) + 0.01

    monkeypatch.setattr(export_module, "load_runner", off_by_a_bit)
    with pytest.raises(VerificationError, match=r"max abs difference 0\.01, over the limit 0\.0001") as error:
        export(create_model("dense_ae"), tmp_path / "m.pt", format="torchscript")
    assert error.value.exit_code == 1
    assert not (tmp_path / "m.pt").exists()
    result = export(create_model("dense_ae"), tmp_path / "m.pt", format="torchscript", verify=False)
    assert result.verification is None and result.path.exists()
