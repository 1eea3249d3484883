"""int8 ONNX export: QDQ by onnxruntime, calibrated on the run's training images, checked on its held-out ones."""

import importlib.util
import json
import re

import pytest
import torch

from squeezelab.cli import main
from squeezelab.errors import SqueezelabError
from squeezelab.export import VerificationError, export, open_exported
from squeezelab.export.int8 import weight_bits
from squeezelab.models import create_model
from squeezelab.train import fit

ONNX_INSTALLED = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))
pytestmark = pytest.mark.skipif(not ONNX_INSTALLED, reason="needs the onnx extra: pip install 'squeezelab[onnx]'")

# Small models on scikit-learn's digits at 16x16: a few seconds of training each.
DIGITS = dict(data="digits", image_size=16, grayscale=True, validation_split=0.2, seed=3, batch_size=64)


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    """A SqueezeNet trained to about 99% on digits: margins between its logits wide enough for int8 to keep its answers.

    An 85% model (narrower, no BN, 12 epochs) agreed with its int8 file on 97.2-99.4% of the held-out images,
    depending on the seed and the CPU it trained on; this one agreed on 99.2-100% over four seeds.
    """
    run = tmp_path_factory.mktemp("runs") / "digits-squeezenet"
    torch.manual_seed(0)
    model = create_model(
        "squeezenet_cifar",
        in_chans=1,
        stages=(1, 1),
        stem_channels=32,
        base_e=64,
        incr_e=64,
        batch_norm=True,
        dropout=0.0,
    )
    fit(model, epochs=30, optimizer="adam", lr=3e-3, schedule="onecycle", run_dir=run, verbose=0, **DIGITS)
    return run


@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "digits-squeeze-ae"
    fit("squeeze_ae", epochs=3, optimizer="adam", lr=3e-3, run_dir=run, verbose=0, **DIGITS)
    return run


def test_cli_writes_a_verified_qdq_file_beside_the_checkpoint(classifier_run, capsys):
    import onnx

    assert main(["export", str(classifier_run), "--int8"]) == 0
    out = capsys.readouterr().out.splitlines()
    path = classifier_run / "best-int8.onnx"
    assert out[0].startswith(f"wrote {path} (onnx, int8, ")
    assert out[1].startswith("verified with onnxruntime against PyTorch: max abs difference")
    assert out[2].startswith("verified with onnxruntime against PyTorch: int8 top-1 agreement")
    assert "at or above the limit 0.99 (359 held-out images, " in out[2]

    proto = onnx.load(str(path))
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    int8_weights = [t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert sum(name.endswith(".weight_quantized") for name in int8_weights) == 8  # every convolution
    assert next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    exported = open_exported(path)
    assert exported.meta["precision"] == "int8"
    assert exported.meta["quantization"]["calibration_images"] == 512  # 16 batches of 32, of 1,437 training images
    assert exported.classes == [str(d) for d in range(10)]


def test_api_reports_both_checks(classifier_run, tmp_path):
    result = export(classifier_run, tmp_path / "m.onnx", int8=True)
    fp32_check, int8_check = result.checks
    assert fp32_check.metric == "max abs difference" and fp32_check.passed
    assert int8_check is result.verification and int8_check.lower_bound
    assert int8_check.value >= 0.99 and sum(int8_check.batch_sizes) == 359  # digits: 1,797 images, 20% held out


def test_failed_int8_check_exits_1_with_the_agreement_and_writes_nothing(classifier_run, monkeypatch, capsys):
    monkeypatch.setattr("squeezelab.export.verify.INT8_MIN_AGREEMENT", 1.01)
    out = classifier_run / "strict.onnx"
    assert main(["export", str(classifier_run), "--int8", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert re.search(r"int8 top-1 agreement [\d.]+, below the limit 1\.01 \(359 held-out images, \d+ with another", err)
    assert f"{out} was not written" in err
    assert not out.exists()


def test_autoencoder_check_is_the_reconstruction_error(autoencoder_run, tmp_path, monkeypatch):
    result = export(autoencoder_run, tmp_path / "ae.onnx", int8=True)
    check = result.verification
    assert check.metric == "int8 / fp32 reconstruction MSE" and not check.lower_bound
    assert check.passed and 0.9 < check.value <= 1.1
    assert "359 held-out images: MSE " in check.describe()
    assert open_exported(result.path).kind == "autoencoder"

    monkeypatch.setattr("squeezelab.export.verify.INT8_MAX_MSE_RATIO", 0.5)
    with pytest.raises(
        VerificationError, match=r"reconstruction MSE [\d.]+, over the limit 0\.5 \(359 held-out images: MSE "
    ) as error:
        export(autoencoder_run, tmp_path / "strict.onnx", int8=True)
    assert error.value.exit_code == 1 and not (tmp_path / "strict.onnx").exists()


def test_a_checkpoint_without_a_run_is_checked_on_a_seeded_tenth_of_its_data(make_checkpoint, tmp_path):
    run = make_checkpoint("dense_ae", (1, 28, 28))  # records its dataset (digits) but no training run
    check = export(run, tmp_path / "ae.onnx", int8=True).verification
    assert check.passed and "180 held-out images" in check.describe()  # 10% of 1,797


def test_int8_needs_the_runs_data(make_checkpoint, tmp_path):
    with pytest.raises(SqueezelabError, match="int8 export calibrates on the model's training images: export a run"):
        export(create_model("dense_ae"), tmp_path / "m.onnx", int8=True)
    run = make_checkpoint("dense_ae", (1, 28, 28))
    sidecar = run / "best.json"
    meta = json.loads(sidecar.read_text())
    meta["data"]["spec"] = None  # as for a model compressed fresh, never trained
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(SqueezelabError, match="records no dataset"):
        export(run, tmp_path / "m.onnx", int8=True)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--int8", "--format", "torchscript"], "--int8 writes ONNX (QDQ, run by onnxruntime) only"),
        (["--int8", "--input", "32x32"], "at the size the model was trained at (1x16x16); leave the input size out"),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(classifier_run, args, message, capsys):
    assert main(["export", str(classifier_run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "machine, flags, bits",
    [
        ("x86_64", "flags : fpu sse2 avx2 avx512f avx512_vnni", 8),
        ("x86_64", "flags : fpu sse2 avx2 avx_vnni", 8),
        ("x86_64", "flags : fpu sse2 avx2 avx512f", 7),
        ("aarch64", "Features : fp asimd", 8),
    ],
)
def test_weights_use_7_bits_on_x86_cpus_without_vnni(machine, flags, bits, monkeypatch):
    monkeypatch.setattr("squeezelab.export.int8.platform.machine", lambda: machine)
    assert weight_bits(flags) == bits
